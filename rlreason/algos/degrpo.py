"""`degrpo`: Decoupled GRPO (Thinkless, Fang et al., arXiv 2505.13379).

The control token c_i in {<short>, <think>} (t = 0) and the response tokens after it are weighted
separately (paper eq. 4), so the mode choice's gradient does not shrink with the response length:

    J = E[ (1/G) sum_i ( alpha * l_{i,0} + (1/T_i) sum_{t>=1} l_{i,t} ) ] - beta * D_KL

with l_{i,t} the clipped surrogate of token t and T_i the response tokens after the control token;
the KL (k3, over all response tokens) is not decoupled. `normalization: official` is the released
code's token means instead; `alpha_per_token = c` sets alpha = c / mean response length.

Defaults: alpha 1e-3 (the paper's), normalization paper, scale_rewards none (mean-centred, no std),
eps_low = eps_high = 0.2, beta 1e-3, alpha_per_token unset.

Deviations from the paper and the released code: docs/algorithms.md#degrpo
"""

from __future__ import annotations

import torch

from rlreason.algos.base import LossInputs, clipped_surrogate, k3_kl
from rlreason.algos.grpo import GRPO, aggregate, ppo_metrics
from rlreason.batch import RolloutBatch
from rlreason.registry import ALGOS

NORMALIZATIONS = ("paper", "official")


@ALGOS.register("degrpo")
class DeGRPO(GRPO):
    """Thinkless's decoupled GRPO: the control token and the response are normalised separately.

    J = E[(1/G) sum_i (alpha l_{i,0} + (1/T_i) sum_{t>=1} l_{i,t})] - beta KL  (paper eq. 4), with
    `normalization: official` the released code's token means instead; control token located by
    `control_pos`, not column 0. `alpha_per_token = c` sets alpha = c / mean response length of the
    minibatch (a weight that transfers across response scales). `baseline`, `batch_norm`,
    `dynamic_sampling` as in grpo.
    Deviations from the paper and the released code: docs/algorithms.md#degrpo
    """

    def __init__(
        self,
        alpha: float | None = None,  # 1e-3 (the paper's) unless alpha_per_token is given
        normalization: str = "paper",
        scale_rewards: str = "none",
        eps_low: float = 0.2,
        eps_high: float = 0.2,
        beta: float = 1e-3,
        num_iterations: int = 1,
        mask_truncated_completions: bool = False,
        entropy_coef: float = 0.0,
        alpha_per_token: float | None = None,
        baseline: str = "group",
        batch_norm: bool = False,
        dynamic_sampling: str = "off",
    ) -> None:
        super().__init__(
            "grpo",
            scale_rewards,
            eps_low,
            eps_high,
            beta,
            num_iterations,
            mask_truncated_completions,
            entropy_coef,
            baseline=baseline,
            batch_norm=batch_norm,
            dynamic_sampling=dynamic_sampling,
        )
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: expected 'paper' or 'official', got {normalization!r}")
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha: expected >= 0, got {alpha}")
        if alpha_per_token is not None:
            if alpha_per_token < 0:
                raise ValueError(f"alpha_per_token: expected >= 0, got {alpha_per_token}")
            if alpha is not None:
                raise ValueError(
                    "alpha_per_token: replaces alpha (alpha = alpha_per_token / mean response length); set one of them"
                )
        self.alpha = 1e-3 if alpha is None else alpha
        self.normalization, self.alpha_per_token = normalization, alpha_per_token

    def minibatch_normalisers(self, batch: RolloutBatch, mask: torch.Tensor, rows: torch.Tensor) -> dict[str, float]:
        """`num_control`: the control tokens the loss actually sees (the `official` normaliser)."""
        return {"num_control": control_tokens_in_mask(batch.control_pos, mask, rows)}

    def effective_alpha(self, inp: LossInputs) -> float:
        """alpha, or alpha_per_token / (mean response length of the minibatch, over all its micro-batches)."""
        if self.alpha_per_token is None:
            return self.alpha
        return self.alpha_per_token * inp.num_seqs / max(inp.num_tokens, 1.0)

    @staticmethod
    def split_masks(inp: LossInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(control mask, response mask): the control token's position vs every other response token."""
        control = torch.zeros_like(inp.mask)
        if inp.control_pos is not None:
            rows = torch.nonzero(inp.control_pos >= 0).squeeze(-1)
            control[rows, inp.control_pos[rows]] = 1.0
        control = control * inp.mask
        return control, inp.mask - control

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert inp.old_logprobs is not None and inp.advantages is not None
        surrogate, clipped = clipped_surrogate(
            inp.logprobs, inp.old_logprobs, inp.advantages, self.eps_low, self.eps_high
        )
        control, response = self.split_masks(inp)
        alpha = self.effective_alpha(inp)
        control_term = (surrogate * control).sum(-1)  # [n]: l_{i,0} (0 without a control token)
        response_sum = (surrogate * response).sum(-1)
        if self.normalization == "paper":
            per_sample = alpha * control_term + response_sum / response.sum(-1).clamp(min=1)
            loss = per_sample.sum() / inp.num_seqs
            regulariser = "grpo"  # per-sample token mean, averaged over samples
        else:
            response_tokens = max(inp.num_tokens - inp.num_control, 1.0)
            loss = alpha * control_term.sum() / max(inp.num_control, 1.0) + response_sum.sum() / response_tokens
            regulariser = "dapo"  # token mean over the minibatch (verl's masked_mean)
        kl = None
        if self.beta > 0 and inp.ref_logprobs is not None:
            kl = k3_kl(inp.logprobs, inp.ref_logprobs)
            loss = loss + self.beta * aggregate(kl, inp, regulariser)
        if self.entropy_coef and inp.entropy is not None:
            loss = loss - self.entropy_coef * aggregate(inp.entropy, inp, regulariser)
        metrics = ppo_metrics(inp, clipped, kl)
        with torch.no_grad():
            metrics["control_loss"] = control_term.detach().sum() / max(inp.num_control, 1.0)
            # a per-minibatch constant written as a contribution that sums to it over micro-batches
            metrics["alpha_effective"] = torch.tensor(alpha * inp.mask.shape[0] / max(inp.num_seqs, 1.0))
        return loss, metrics


def control_tokens_in_mask(control_pos: torch.Tensor | None, mask: torch.Tensor, rows: torch.Tensor) -> float:
    """Control tokens of `rows` under the loss mask: a truncated sample masked out by
    mask_truncated_completions keeps its control position but contributes nothing, so it must not
    enter the normaliser."""
    if control_pos is None:
        return 0.0
    pos = control_pos[rows]
    active = torch.nonzero(pos >= 0).squeeze(-1)
    return float(mask[rows][active, pos[active]].sum())
