"""`thinkless`: the mode-aware reward of Thinkless (Fang, Ma & Wang, arXiv 2505.13379)."""

from __future__ import annotations

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("thinkless")
class ThinklessReward(Reward):
    """Correct <short> +1, correct <think> 1 - gamma, wrong -1, no valid control token -1.

    Paper (arXiv 2505.13379, reward design of the RL stage), for answer a, gold y*, control token c:

        r(a, y*, c) =  1          if c = <short> and Extract-Answer(a) = y*
                       1 - gamma  if c = <think> and Extract-Answer(a) = y*
                      -1          if Extract-Answer(a) != y*

    Defaults (the released code's): gamma 0.5, correct 1.0, wrong -1.0, format_penalty -1.0.

    Deviations from the paper and the released code: docs/algorithms.md#thinkless
    """

    def __init__(
        self, gamma: float = 0.5, correct: float = 1.0, wrong: float = -1.0, format_penalty: float = -1.0
    ) -> None:
        if correct <= wrong:
            raise ValueError(f"correct ({correct}) must be greater than wrong ({wrong})")
        if not 0.0 <= gamma < correct - wrong:
            limit = correct - wrong
            raise ValueError(f"gamma: expected 0 <= gamma < {limit:g} (correct - wrong), got {gamma}")
        self.gamma, self.correct, self.wrong, self.format_penalty = gamma, correct, wrong, format_penalty

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        n = batch.num_samples
        modes = batch.control_mode if batch.control_mode is not None else [None] * n
        think = torch.tensor([m == "think" for m in modes], dtype=torch.bool)
        short = torch.tensor([m == "short" for m in modes], dtype=torch.bool)
        valid = think | short
        r = torch.full((n,), float(self.wrong))
        r[ctx.correct & short] = self.correct
        r[ctx.correct & think] = self.correct - self.gamma
        r[~valid] = self.format_penalty
        metrics = {
            "reward/thinkless/mean": float(r.mean()) if n else 0.0,
            "mode/think_ratio": float(think.float().mean()) if n else 0.0,
            "mode/n_think": float(think.sum()),
            "mode/n_short": float(short.sum()),
            "mode/format_fail": float((~valid).float().mean()) if n else 0.0,  # a share, as the trainer's
            "mode/n_format_fail": float((~valid).sum()),
        }
        if think.any():
            metrics["mode/acc_think"] = float(ctx.correct[think].float().mean())
        if short.any():
            metrics["mode/acc_short"] = float(ctx.correct[short].float().mean())
        return RewardOutput(rewards=r, format_ok=valid, metrics=metrics)
