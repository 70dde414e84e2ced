"""`degrpo`: Decoupled GRPO (Thinkless, Fang et al., arXiv 2505.13379).

Every response starts with a control token c_i in {<short>, <think>}. Vanilla GRPO averages the
single control token with hundreds of response tokens, so a long <think> answer gives its mode
choice a tiny gradient and a short one a large one: training collapses to one mode. DeGRPO
weights the two parts separately (paper eq. 4):

    J = E[ (1/G) sum_i ( alpha * l_{i,0} + (1/T_i) sum_{t>=1} l_{i,t} ) ] - beta * KL

with l_{i,t} the clipped surrogate of token t (t = 0 is the control token; T_i counts the
response tokens after it), alpha = 1e-3 by default, advantages group mean-centred (no std division by
default, `scale_rewards`), clip 0.2, KL coefficient 1e-3 with the low-variance k3 estimator.

`normalization`:
- ``paper``: exactly the equation above: per-sample token mean of the response term plus
  alpha times the control term, averaged over samples.
- ``official``: as DESIGN.md describes the released code: control term averaged over the sequences
  that have a control token, response term a token mean over all response tokens of the batch
  (DAPO-style), i.e. alpha * sum_i l_{i,0} / N_ctrl + sum_{i,t>=1} l_{i,t} / sum_i T_i.
  (Not re-verified against the repository in this session.)

The control token is located by id (`control_pos`, found by the rollout), never assumed at index 0:
a sample whose first response token is not a control token has `control_pos = -1`; it contributes
no control term, its reward is the format-failure reward (-1 in `thinkless`), and its response
tokens are trained down with that advantage like any other.
"""

from __future__ import annotations

import torch

from rlreason.algos.base import LossInputs
from rlreason.algos.grpo import GRPO, ppo_metrics
from rlreason.registry import ALGOS


@ALGOS.register("degrpo")
class DeGRPO(GRPO):
    """Thinkless's decoupled GRPO: the control token and the response are normalised separately."""

    def __init__(
        self,
        alpha: float = 1e-3,
        normalization: str = "paper",
        scale_rewards: str = "none",
        eps_low: float = 0.2,
        eps_high: float = 0.2,
        beta: float = 1e-3,
        num_iterations: int = 1,
        mask_truncated_completions: bool = False,
        entropy_coef: float = 0.0,
    ) -> None:
        super().__init__(
            "grpo", scale_rewards, eps_low, eps_high, beta, num_iterations, mask_truncated_completions, entropy_coef
        )
        if normalization not in ("paper", "official"):
            raise ValueError(f"normalization: expected 'paper' or 'official', got {normalization!r}")
        if alpha < 0:
            raise ValueError(f"alpha: expected >= 0, got {alpha}")
        self.alpha, self.normalization = alpha, normalization

    def split_masks(self, inp: LossInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(control mask, response mask): the control token's position vs every other response token."""
        control = torch.zeros_like(inp.mask)
        if inp.control_pos is not None:
            rows = torch.nonzero(inp.control_pos >= 0).squeeze(-1)
            control[rows, inp.control_pos[rows]] = 1.0
        control = control * inp.mask
        return control, inp.mask - control

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        per_token, clipped, kl = self.per_token_loss(inp)
        control, response = self.split_masks(inp)
        control_term = (per_token * control).sum(-1)  # [n]: l_{i,0} (0 without a control token)
        response_sum = (per_token * response).sum(-1)
        if self.normalization == "paper":
            per_sample = self.alpha * control_term + response_sum / response.sum(-1).clamp(min=1)
            loss = per_sample.sum() / inp.num_seqs
        else:
            response_tokens = max(inp.num_tokens - inp.num_control, 1.0)
            loss = self.alpha * control_term.sum() / max(inp.num_control, 1.0) + response_sum.sum() / response_tokens
        if self.entropy_coef and inp.entropy is not None:
            loss = loss - self.entropy_coef * (inp.entropy * inp.mask).sum() / inp.num_tokens
        metrics = ppo_metrics(inp, clipped, kl)
        with torch.no_grad():
            metrics["control_loss"] = control_term.detach().sum() / max(inp.num_control, 1.0)
        return loss, metrics
