"""Length-budget rewards of the 2025 compression papers: `truncation`, `lc_r1_length`, `pass_rate_length`.

Same conventions as `rlreason/rewards/length.py`. `truncation` and `pass_rate_length` are complete
rewards (they contain correctness); `lc_r1_length` is a term, composed through `sum`.

Conventions: docs/algorithms.md#the-budget-rewards
"""

from __future__ import annotations

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.rewards.length import _groups, _out


def group_share(values: torch.Tensor, batch: RolloutBatch) -> torch.Tensor:
    """[N] the mean of `values` over each sample's prompt group (e.g. the group's correct share)."""
    out = torch.zeros(values.shape[0], dtype=torch.float32)
    for idx in _groups(batch):
        out[idx] = values[idx].float().mean()
    return out


@REWARDS.register("truncation")
class Truncation(Reward):
    """Correct within the length budget scores `correct`; wrong, unfinished or over budget scores `wrong`.

    ThinkPrune (Hou et al., arXiv 2504.01296, sec. 3) and DLER (Liu et al., arXiv 2510.15110):

        r_i = correct  if verify(answer_i) and |o_i| <= L_i and o_i finished (EOS)
              wrong    otherwise

    with L_i = `budget`, or `easy_budget` for a group whose correct share exceeds `easy_threshold`.
    Defaults: budget 0 (= rollout.max_new_tokens), easy_budget 0 (off), easy_threshold 0.5, correct 1.0,
    wrong 0.0.

    Deviations from the paper and the released code: docs/algorithms.md#truncation
    """

    def __init__(
        self,
        budget: int = 0,
        easy_budget: int = 0,
        easy_threshold: float = 0.5,
        correct: float = 1.0,
        wrong: float = 0.0,
    ) -> None:
        if budget < 0 or easy_budget < 0:
            raise ValueError(f"budget ({budget}) and easy_budget ({easy_budget}) must be >= 0 (0: default / off)")
        if budget and easy_budget and easy_budget > budget:
            raise ValueError(f"easy_budget: expected <= budget ({budget}) (the easy prompts' limit), got {easy_budget}")
        if not 0 <= easy_threshold < 1:
            raise ValueError(f"easy_threshold: expected a share in [0, 1), got {easy_threshold}")
        if correct <= wrong:
            raise ValueError(f"correct ({correct}) must be greater than wrong ({wrong})")
        self.budget, self.easy_budget, self.easy_threshold = budget, easy_budget, easy_threshold
        self.correct, self.wrong = float(correct), float(wrong)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        budget = torch.full_like(lengths, float(self.budget or ctx.max_new_tokens or lengths.max()))
        easy = torch.zeros_like(lengths, dtype=torch.bool)
        if self.easy_budget:
            easy = group_share(ctx.correct.float(), batch) > self.easy_threshold
            budget = torch.where(easy, torch.full_like(budget, float(self.easy_budget)), budget)
        finished = (~batch.truncated.bool()) & (lengths <= budget)
        ok = ctx.correct.bool() & finished
        r = torch.where(ok, torch.full_like(lengths, self.correct), torch.full_like(lengths, self.wrong))
        return _out(
            "truncation",
            r,
            unfinished_frac=float((~finished).float().mean()) if r.numel() else 0.0,
            easy_frac=float(easy.float().mean()) if r.numel() else 0.0,
            budget_mean=float(budget.mean()) if r.numel() else 0.0,
        )


@REWARDS.register("lc_r1_length")
class LCR1Length(Reward):
    """LC-R1's length term: coef * (1 - L_i / max length of the group's correct samples).

    Cheng et al., "Optimizing Length Compression in Large Reasoning Models", arXiv 2506.14755, per
    prompt group g, on every sample of the group:

        r_i = coef * (1 - L_i / (max_{j in g, correct_j} L_j + 1e-4))   if g has a correct sample
              0                                                          otherwise

    A term: compose it with `sum`. Defaults: coef 1.0.

    Deviations from the paper and the released code: docs/algorithms.md#lc_r1_length
    """

    def __init__(self, coef: float = 1.0) -> None:
        if not coef >= 0:
            raise ValueError(f"coef: expected a number >= 0, got {coef}")
        self.coef = coef

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        for idx in _groups(batch):
            ok = ctx.correct[idx].bool()
            if not ok.any():
                continue
            r[idx] = self.coef * (1 - lengths[idx] / (lengths[idx][ok].max() + 1e-4))
        return _out("lc_r1_length", r)


@REWARDS.register("pass_rate_length")
class PassRateLength(Reward):
    """prime-rl's `linear` length penalty: r - coef * pass_rate * L / max group length.

    PrimeIntellect-ai/prime-rl @ 559b447, for the G samples of one prompt with base rewards r_j
    (correctness: `correct` / `wrong`):

        pass_rate = mean_j r_j
        r'_i      = r_i - coef * pass_rate * L_i / max(max_j L_j, 1)

    Defaults: coef 0.25, correct 1.0, wrong 0.0.

    Deviations from the paper and the released code: docs/algorithms.md#pass_rate_length
    """

    def __init__(self, coef: float = 0.25, correct: float = 1.0, wrong: float = 0.0) -> None:
        if not coef >= 0:
            raise ValueError(f"coef: expected a number >= 0, got {coef}")
        if correct <= wrong:
            raise ValueError(f"correct ({correct}) must be greater than wrong ({wrong})")
        self.coef, self.correct, self.wrong = coef, float(correct), float(wrong)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        base = torch.where(ctx.correct.bool(), self.correct, self.wrong).float()
        penalty = torch.zeros_like(lengths)
        for idx in _groups(batch):
            pass_rate = base[idx].mean()
            penalty[idx] = self.coef * pass_rate * lengths[idx] / lengths[idx].max().clamp(min=1)
        r = base - penalty
        return _out("pass_rate_length", r, penalty_mean=float(penalty.mean()) if r.numel() else 0.0)
