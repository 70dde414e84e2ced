"""`binary`: the correctness reward of the GRPO baselines (DeepSeekMath, DeepSeek-R1)."""

from __future__ import annotations

import math

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("binary")
class Binary(Reward):
    """Correct answer -> `correct`, wrong -> `wrong`, no extractable answer -> `format_penalty`.

    DeepSeekMath (arXiv 2402.03300, sec. 4.1) and DeepSeek-R1 (arXiv 2501.12948, sec. 2.2.2):

        r_i = correct         if verify(answer_i, gold_i)
              format_penalty  if no answer can be extracted from response i
              wrong           otherwise

    Defaults: correct 1.0, wrong 0.0, format_penalty = wrong.

    Deviations from the paper and the released code: docs/algorithms.md#binary
    """

    def __init__(self, correct: float = 1.0, wrong: float = 0.0, format_penalty: float | None = None) -> None:
        values = {"correct": correct, "wrong": wrong, "format_penalty": format_penalty}
        for key, v in values.items():
            if v is not None and not math.isfinite(float(v)):
                raise ValueError(f"{key}: expected a finite number, got {v!r}")
        if float(correct) <= float(wrong):
            raise ValueError(f"correct ({correct}) must be greater than wrong ({wrong})")
        self.correct, self.wrong = float(correct), float(wrong)
        self.format_penalty = self.wrong if format_penalty is None else float(format_penalty)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        wrong = torch.where(ctx.answered, self.wrong, self.format_penalty)
        r = torch.where(ctx.correct, torch.full_like(wrong, self.correct), wrong).float()
        return RewardOutput(
            rewards=r,
            format_ok=ctx.answered.clone(),
            metrics={
                "reward/binary/mean": float(r.mean()),
                "reward/binary/no_answer_frac": float((~ctx.answered).float().mean()),
            },
        )
