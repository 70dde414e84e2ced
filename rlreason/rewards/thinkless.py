"""`thinkless`: the mode-aware reward of Thinkless (Fang et al., arXiv 2505.13379, eq. 2)."""

from __future__ import annotations

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("thinkless")
class ThinklessReward(Reward):
    """Correct <short> +1, correct <think> 1 - gamma, wrong / unparseable / no control token -1.

        r(a, y*, c) =  1          if c = <short> and a = y*
                       1 - gamma  if c = <think> and a = y*
                      -1          otherwise (including a missing or misplaced control token)

    gamma = 0.5 as in the released training code (the paper states gamma > 0 as a small preference
    for short answers; 0.5 is the value we found documented for the official runs; not re-verified
    in this session). The mode is the control token found *by id* as the first response token.
    """

    def __init__(self, gamma: float = 0.5, correct: float = 1.0, wrong: float = -1.0) -> None:
        if not 0.0 <= gamma <= 2.0:
            raise ValueError(f"gamma: expected a value in [0, 2], got {gamma}")
        self.gamma, self.correct, self.wrong = gamma, correct, wrong

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        modes = batch.control_mode or [None] * batch.num_samples
        think = torch.tensor([m == "think" for m in modes])
        short = torch.tensor([m == "short" for m in modes])
        ok = ctx.correct & (think | short)
        r = torch.full((batch.num_samples,), self.wrong, dtype=torch.float32)
        r[ok & short] = self.correct
        r[ok & think] = self.correct - self.gamma
        fmt = think | short
        n = max(1, batch.num_samples)
        metrics = {
            "mode/think_ratio": float(think.float().mean()),
            "mode/n_think": float(think.sum()),
            "mode/n_short": float(short.sum()),
            "mode/format_fail": float((~fmt).sum()) / n,
        }
        if think.any():
            metrics["mode/acc_think"] = float(ctx.correct[think].float().mean())
        if short.any():
            metrics["mode/acc_short"] = float(ctx.correct[short].float().mean())
        return RewardOutput(rewards=r, format_ok=fmt, metrics=metrics)
