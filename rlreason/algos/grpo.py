"""`grpo`: Group Relative Policy Optimization (Shao et al., DeepSeekMath, arXiv 2402.03300), with TRL's options.

Sample i of a group of G answers to one prompt (sec. 4.1.2, outcome supervision), every token of its
response sharing A_i, with rho_{i,t} = pi_theta(o_{i,t}) / pi_old(o_{i,t}):

    A_i = (r_i - mean_group(r)) / (std_group(r) + 1e-4)          scale_rewards: group   (TRL default)
    A_i = (r_i - mean_group(r)) / (std_batch(r) + 1e-4)          scale_rewards: batch
    A_i =  r_i - mean_group(r)                                   scale_rewards: none    (Dr. GRPO)
    l_{i,t} = -min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i) + beta * KL3_{i,t}

aggregated by `loss_type` over the optimiser step's minibatch (N sequences, T_i tokens each):

    grpo     mean_i( sum_t l_{i,t} / T_i )                  (the paper)
    bnpo     sum l / sum mask, per micro-batch, averaged over micro-batches (as TRL)
    dr_grpo  sum l / (N * max_new_tokens)                   (Dr. GRPO)
    dapo     sum l / active tokens of the whole optimiser batch, all ranks  (DAPO)

Defaults: loss_type grpo, scale_rewards group, eps_low = eps_high = 0.2, beta 0 (no reference
model), num_iterations 1, entropy_coef 0, baseline group, batch_norm false, dynamic_sampling off.

Deviations from the paper and the released code: docs/algorithms.md#grpo
"""

from __future__ import annotations

import torch

from rlreason.algos import dler
from rlreason.algos.base import Advantages, Algorithm, LossInputs, clipped_surrogate, group_stats, k3_kl
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import ALGOS

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALES = ("group", "batch", "none")
BASELINES = ("group", "none")


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Per-sample advantages: group mean-centred, optionally divided by a group or batch std."""
    mean, std = group_stats(rewards.double(), group_ids)
    centred = rewards.double() - mean
    if scale == "group":
        centred = centred / (std + eps)
    elif scale == "batch":
        centred = centred / (rewards.double().std() + eps)
    return centred.to(rewards.dtype)


def aggregate(per_token: torch.Tensor, inp: LossInputs, loss_type: str) -> torch.Tensor:
    """Sum-form aggregation of a per-token loss with the minibatch normalisers (see module doc)."""
    masked = per_token * inp.mask
    if loss_type == "grpo":
        return (masked.sum(-1) / inp.mask.sum(-1).clamp(min=1)).sum() / inp.num_seqs
    if loss_type == "bnpo":
        micro = per_token.shape[0]
        return masked.sum() / inp.mask.sum().clamp(min=1) * (micro / inp.num_seqs)
    if loss_type == "dr_grpo":
        return masked.sum() / (inp.num_seqs * inp.max_new_tokens)
    if loss_type == "dapo":
        return masked.sum() / inp.num_tokens
    raise ValueError(f"unknown loss_type {loss_type!r}")


def ppo_metrics(inp: LossInputs, is_clipped: torch.Tensor, kl: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Token means over the minibatch, as contributions that sum over micro-batches."""
    with torch.no_grad():
        m = {
            "clip_frac": (is_clipped * inp.mask).sum() / inp.num_tokens,
            "ratio_mean": (torch.exp(inp.logprobs - inp.old_logprobs) * inp.mask).sum() / inp.num_tokens,
        }
        if kl is not None:
            m["kl"] = (kl * inp.mask).sum() / inp.num_tokens
        if inp.entropy is not None:
            m["entropy"] = (inp.entropy.detach() * inp.mask).sum() / inp.num_tokens
    return m


@ALGOS.register("grpo")
class GRPO(Algorithm):
    """Group Relative Policy Optimization with TRL's options (loss types, reward scaling, KL, clipping).

    A_i = (r_i - mean_group(r)) / (std_group(r) + 1e-4);  l_{i,t} = -min(rho A_i, clip(rho) A_i) + beta KL3,
    aggregated by `loss_type` (grpo | bnpo | dr_grpo | dapo).
    Deviations from the paper and the released code: docs/algorithms.md#grpo
    """

    def __init__(
        self,
        loss_type: str = "grpo",
        scale_rewards: str = "group",
        eps_low: float = 0.2,
        eps_high: float = 0.2,
        beta: float = 0.0,
        num_iterations: int = 1,
        mask_truncated_completions: bool = False,
        entropy_coef: float = 0.0,
        baseline: str = "group",
        batch_norm: bool = False,
        dynamic_sampling: str = "off",
    ) -> None:
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type: expected one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
        if scale_rewards not in SCALES:
            raise ValueError(f"scale_rewards: expected one of {', '.join(SCALES)}, got {scale_rewards!r}")
        for key, value in (("eps_low", eps_low), ("eps_high", eps_high), ("beta", beta)):
            if not value >= 0:
                raise ValueError(f"{key}: expected a number >= 0, got {value}")
        if eps_low >= 1:
            raise ValueError(f"eps_low: expected < 1 (the ratio's lower clip is 1 - eps_low), got {eps_low}")
        if int(num_iterations) != num_iterations or num_iterations < 1:
            raise ValueError(f"num_iterations: expected an integer >= 1, got {num_iterations}")
        if baseline not in BASELINES:
            raise ValueError(f"baseline: expected one of {', '.join(BASELINES)}, got {baseline!r}")
        if baseline == "none" and scale_rewards != "none":
            raise ValueError("baseline: none uses the reward itself as the advantage; set scale_rewards: none too")
        dler.check_options(batch_norm, dynamic_sampling)
        self.baseline, self.batch_norm, self.dynamic_sampling = baseline, batch_norm, dynamic_sampling
        self.loss_type, self.scale_rewards = loss_type, scale_rewards
        self.eps_low, self.eps_high, self.beta = eps_low, eps_high, beta
        self.num_iterations, self.mask_truncated_completions = num_iterations, mask_truncated_completions
        self.entropy_coef = entropy_coef
        self.needs_entropy_grad = entropy_coef != 0  # type: ignore[misc]  # the bonus must backpropagate

    def sequence_advantages(self, batch: RolloutBatch, reward: RewardOutput) -> Advantages:
        """Per-sample advantages [N] (in `tokens`) from the sequence rewards, with `zero_std_frac`."""
        rewards = reward.rewards.float()
        if self.baseline == "none":
            adv = rewards.clone()
        else:
            adv = group_advantages(rewards, batch.group_ids, self.scale_rewards)
        _, std = group_stats(reward.rewards.double(), batch.group_ids)
        metrics = {"zero_std_frac": float((std < 1e-8).double().mean())}
        keep = None
        if self.batch_norm or self.dynamic_sampling != "off":
            adv, extra, keep = dler.apply(
                adv, rewards, batch.group_ids, batch.response_mask, self.batch_norm, self.dynamic_sampling
            )
            metrics.update(extra)
        return Advantages(adv, metrics, keep=keep)

    def advantages(
        self, batch: RolloutBatch, reward: RewardOutput, values: torch.Tensor | None = None
    ) -> Advantages:
        seq = self.sequence_advantages(batch, reward)
        seq.tokens = seq.tokens.unsqueeze(-1) * batch.response_mask.float()
        return seq

    def per_token_loss(self, inp: LossInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(l_{i,t} + beta KL3_{i,t}, clip indicator, KL3 or None) before aggregation."""
        assert inp.old_logprobs is not None and inp.advantages is not None
        loss, clipped = clipped_surrogate(inp.logprobs, inp.old_logprobs, inp.advantages, self.eps_low, self.eps_high)
        kl = None
        if self.beta > 0 and inp.ref_logprobs is not None:
            kl = k3_kl(inp.logprobs, inp.ref_logprobs)
            loss = loss + self.beta * kl
        return loss, clipped, kl

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_token, clipped, kl = self.per_token_loss(inp)
        loss = aggregate(per_token, inp, self.loss_type)
        if self.entropy_coef and inp.entropy is not None:
            loss = loss - self.entropy_coef * (inp.entropy * inp.mask).sum() / inp.num_tokens
        return loss, ppo_metrics(inp, clipped, kl)
