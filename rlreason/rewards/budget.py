"""Length-budget rewards of the 2025 compression papers: `truncation`, `lc_r1_length`, `pass_rate_length`.

They complement the length family of `rlreason/rewards/length.py` (same conventions: a length is
the number of response tokens, EOS included, and group statistics are over the samples of one
prompt). `truncation` and `pass_rate_length` are complete rewards (they contain correctness);
`lc_r1_length` is a term, composed with a correctness reward through `sum`.
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

    ThinkPrune (Hou et al., arXiv 2504.01296, sec. 3, read from the paper, not its code): training
    with a token limit L where a response that does not finish within L gets reward 0,

        r_i = correct  if verify(answer_i) and |o_i| <= L_i and o_i finished (EOS)
              wrong    otherwise                                (correct 1, wrong 0)

    and the limit is lowered over chained runs (ThinkPrune's 4k -> 3k -> 2k): one config per stage
    with `budget` set and `init.from` naming the previous stage (experiments/lab/truncation*.yaml).
    A budget below `rollout.max_new_tokens` counts a longer response as cut at the budget (what
    generating with max_tokens = L would have done: no answer inside the limit).

    DLER (Liu et al., arXiv 2510.15110) uses the same plain truncation penalty (its released recipe,
    NVlabs/DLER @ ea7d4f7 `dler_slurm.sh`, sets it through `max_response_length`) and describes a
    difficulty-aware budget: easy prompts get the smaller limit. Here `easy_budget > 0` gives every
    sample of a group whose correct share exceeds `easy_threshold` (0.5) the budget `easy_budget`.
    That rule (share > 0.5 -> smaller budget, the correct share measured on this rollout) is the
    issue's reading of the paper; it is not confirmed against the paper's equation or released code.
    `budget` 0 means rollout.max_new_tokens.
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

    Cheng et al., "Optimizing Length Compression in Large Reasoning Models", arXiv 2506.14755. As in
    the released code (zxiangx/LC-R1 @ 7a6bd8b, trl/trainer/grpo_trainer.py, the `len_penalty_coef`
    block of `_generate_and_score_completions`, read for this file), per prompt group g:

        r_i = coef * (1 - L_i / (max_{j in g, correct_j} L_j + 1e-4))   if g has a correct sample
              0                                                          otherwise

    applied to every sample of the group (a wrong answer longer than the longest correct one gets a
    negative term), added to the correctness reward before the group baseline (the code's
    `advantages += len_penalty_coef * _lengths`, then mean-centring with `scale_rewards=False`):
    compose it with `sum` and run GRPO/DeGRPO with `scale_rewards: none` to match. coef 1.0 is the
    released train script's `len_penalty_coef`. Deviations: L is our response length with EOS (the
    code uses the EOS index, one less for finished answers); LC-R1's second reward, the compress
    reward from an external extractor model, is not implemented.
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

    PrimeIntellect-ai/prime-rl @ 559b447 (src/prime_rl/orchestrator/algo/grpo.py `score_group`,
    packages/prime-rl-configs/.../algorithm.py `LinearLengthPenaltyConfig`), for the G samples of
    one prompt with base rewards r_j (here correctness: `correct` / `wrong`):

        pass_rate = mean_j r_j
        r'_i      = r_i - coef * pass_rate * L_i / max(max_j L_j, 1)

    so the penalty grows with how easy the prompt is (ALP-like: adaptive length penalty), and a
    prompt nobody solves is not pushed to be short. coef 0.25 is prime-rl's default
    `num_output_tokens_weight`; its input-token and turn terms are constant within a single-turn
    group (they shift every sample of the group equally) and are left out.
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
