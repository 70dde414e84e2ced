"""`binary`: the correctness reward of GRPO baselines (DeepSeekMath, DeepSeek-R1)."""

from __future__ import annotations

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("binary")
class Binary(Reward):
    """Correct answer -> `correct`, otherwise `wrong` (no extractable answer -> `no_answer`).

    r_i = correct  if verify(answer_i, gold_i)
          no_answer if no answer can be extracted (defaults to `wrong`)
          wrong     otherwise
    """

    def __init__(self, correct: float = 1.0, wrong: float = 0.0, no_answer: float | None = None) -> None:
        self.correct, self.wrong = float(correct), float(wrong)
        self.no_answer = self.wrong if no_answer is None else float(no_answer)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        r = torch.where(ctx.correct, self.correct, torch.where(ctx.answered, self.wrong, self.no_answer))
        return RewardOutput(
            rewards=r.float(),
            format_ok=ctx.answered.clone(),
            metrics={"reward/binary/no_answer_frac": float((~ctx.answered).float().mean())},
        )
