"""`degrpo`: Decoupled GRPO (Thinkless, Fang et al., arXiv 2505.13379).

Every response starts with a control token c_i in {<short>, <think>}. Vanilla GRPO averages the
single control token with hundreds of response tokens, so a long <think> answer gives its mode
choice a tiny gradient and a short one a large one: training collapses to one mode. DeGRPO
weights the two parts separately (paper eq. 4):

    J = E[ (1/G) sum_i ( alpha * l_{i,0} + (1/T_i) sum_{t>=1} l_{i,t} ) ] - beta * D_KL

with l_{i,t} the clipped surrogate of token t (t = 0 is the control token; T_i counts the
response tokens after it), alpha = 1e-3, advantages group mean-centred with no std division
(`scale_rewards: none`, the official `std_normalizer=False`), clip 0.2, beta = 1e-3 with the
low-variance k3 estimator. The KL (and the optional entropy bonus) is *not* decoupled: it is a
separate term over all response tokens, control token included, as in the paper and the code.

`normalization` (aggregation over the optimiser step's minibatch of N sequences):

- ``paper``: the equation above, per sample then averaged:
  (1/N) sum_i [alpha l_{i,0} + (1/T_i) sum_{t>=1} l_{i,t}] + beta (1/N) sum_i mean_t KL_{i,t}.
- ``official``: the released code (VainF/Thinkless @ aa225d2, verl/verl/trainer/ppo/core_algos.py,
  `compute_policy_loss`, read for this file) computes per micro-batch
  ``alpha * masked_mean(l, column 0) + masked_mean(l, columns >= 1)`` (token means; the first is
  a mean over sequences, one token each) and adds ``kl_loss_coef * masked_mean(low_var_kl, all
  response tokens)``; the loss is divided by the number of accumulation steps. We compute the
  micro-batch-invariant form of the same quantity:
  alpha sum_i l_{i,0} / N_ctrl + sum_{i,t>=1} l_{i,t} / (num_tokens - N_ctrl) + beta sum KL / num_tokens,
  which equals the official loss exactly when a minibatch is one micro-batch and every sample
  has its control token at position 0. (The official code also computes an `avg_len` next to
  these means but never uses it: there is no length-relative weight on the control term.)

Scale (`alpha_per_token`): in both normalisations the control token's surrogate weighs alpha
against a response token's 1/T (paper: per sample; official: N_ctrl / response tokens), so the
control token counts as alpha * T response tokens. The paper's alpha = 1e-3 was set for responses
of thousands of tokens (alpha * T ~ 1-5); the same alpha on 20-token lab answers is a 50x weaker
control signal. ``alpha_per_token = c`` sets, per optimiser minibatch,

    alpha = c / mean_i |o_i|,   mean_i |o_i| = num_tokens / num_seqs  (whole responses, global)

so c is the control token's weight in units of an average response token and means the same on
the lab and on a 1.5B model (c = 1e-3 x 3,000 ~ 3 for the paper's setting). It replaces `alpha`
(setting both is refused); the effective alpha is logged as `alpha_effective`.

Deviations from the official code, all deliberate:
- The control token is located by id (`control_pos`, found by the rollout), never assumed at
  column 0: a chat template that puts a newline first would move the official loss onto the
  wrong token. A sample without a valid control token (`control_pos = -1`) has no control term
  and is not counted in N_ctrl; its reward is the format-failure reward (-1 in `thinkless`), and
  all its response tokens are trained with that advantage like any other (the official code
  would apply alpha to whatever token sits at column 0).
- verl clamps low_var_kl to [-10, 10]; we do not (k3 >= 0 and is only large when the policy has
  drifted far, where clamping hides the signal). With `scale_rewards: group` our epsilon is
  TRL's 1e-4; verl's is 1e-6 (irrelevant at the default `none`).
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
    `dynamic_sampling` as in grpo. Details and deviations in the module docstring.
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
