"""Correcting the sampler/trainer gap: importance weights between the rollout engine's log-probs and
the trainer's, truncated or masked, per token or per sequence.

A separate inference engine (vLLM, bf16 kernels) samples from pi_sampler, which is not exactly the
trainer's pi_old. The policy-gradient estimate is made unbiased again (up to the cap) by weighting
each token's loss with

    rho_t = pi_old(o_t) / pi_sampler(o_t)                       per token
    rho   = prod_t pi_old(o_t) / pi_sampler(o_t)                 per sequence (every token shares it)

and bounding it by the cap C (`rollout.is_cap`):

    *_truncate   w = min(rho, C)                (TIS: Yao et al. 2025, "Your Efficient RL Framework
                                                 Secretly Brings You Off-Policy RL Training")
    *_mask       w = rho if rho <= C else 0     (masked IS, MIS: Liu et al. 2025, "When Speed Kills
                                                 Stability: Demystifying RL Collapse from the
                                                 Training-Inference Mismatch")

The modes are named as TRL's `GRPOConfig.vllm_importance_sampling_mode` (token_truncate, token_mask,
sequence_truncate, sequence_mask). The weights carry no gradient; the loop multiplies the token
advantages by them, which for every clipped-surrogate loss here (grpo, degrpo, l2t_ppo) is the
weighted loss w * l_t, since l_t is linear in the advantage and w >= 0. docs/algorithms.md#rollout-correction
"""

from __future__ import annotations

import torch

MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def importance_weights(
    trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, mode: str, cap: float
) -> torch.Tensor:
    """[N, T] weights w (0 outside `mask`) for the per-token loss; all ones at mode 'none'.

    trainer_logprobs, sampler_logprobs, mask: [N, T]; log-ratios are computed in float64 so a
    sequence's product does not overflow before the cap."""
    valid = mask > 0
    if mode == "none":
        return valid.to(trainer_logprobs.dtype)
    log_ratio = (trainer_logprobs.double() - sampler_logprobs.double()) * valid  # [N, T]
    if mode.startswith("token"):
        rho = torch.exp(log_ratio)  # [N, T]
    elif mode.startswith("sequence"):
        rho = torch.exp(log_ratio.sum(-1, keepdim=True)).expand_as(log_ratio)  # [N, T]
    else:
        raise ValueError(f"is_correction: expected one of {' | '.join(MODES)}, got {mode!r}")
    w = rho.clamp(max=cap) if mode.endswith("truncate") else torch.where(rho <= cap, rho, torch.zeros_like(rho))
    return (w * valid).to(trainer_logprobs.dtype).detach()


def correction_metrics(
    weights: torch.Tensor,
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    cap: float,
) -> dict[str, float]:
    """`rollout_is/*`: the weights' mean / min / max over the response tokens, the share of tokens the
    cap truncated or masked, and the k1 / k3 estimates of KL(pi_sampler || pi_old) (mean over tokens).

    All arguments [N, T]."""
    valid = mask > 0
    count = max(int(valid.sum()), 1)
    log_ratio = (trainer_logprobs.double() - sampler_logprobs.double()) * valid  # log pi_old - log pi_sampler
    if mode.startswith("sequence"):
        rho = torch.exp(log_ratio.sum(-1, keepdim=True)).expand_as(log_ratio)
    else:
        rho = torch.exp(log_ratio)
    capped = (rho > cap) & valid
    w = weights.double()[valid]
    k1 = float((-log_ratio).sum()) / count
    k3 = float(((torch.exp(log_ratio) - 1 - log_ratio) * valid).sum()) / count
    return {
        "rollout_is/weight_mean": float(w.mean()) if w.numel() else 1.0,
        "rollout_is/weight_min": float(w.min()) if w.numel() else 1.0,
        "rollout_is/weight_max": float(w.max()) if w.numel() else 1.0,
        "rollout_is/capped_frac": float(capped.sum()) / count,
        "rollout_is/kl_k1": k1,
        "rollout_is/kl_k3": k3,
    }
