"""The length-penalised reward family. Each term needs token lengths and, most, group ids.

All are *terms*: compose them with a correctness reward through `sum`, e.g.
``reward: {name: sum, terms: [{name: binary}, {name: kimi, weight: 0.5}]}``, except where the
published reward already includes correctness (cosine, l1_*, shorterbetter, arora_zanette), which
are complete rewards on their own. Formulas are from the papers as cited; the constants are the
papers' defaults (not re-verified against each released code base in this session).
"""

from __future__ import annotations

import math

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


def _groups(batch: RolloutBatch) -> list[torch.Tensor]:
    return [torch.nonzero(batch.group_ids == g).squeeze(-1) for g in torch.unique(batch.group_ids)]


def _out(name: str, r: torch.Tensor) -> RewardOutput:
    return RewardOutput(rewards=r.float(), metrics={f"reward/{name}/mean": float(r.float().mean())})


@REWARDS.register("kimi")
class KimiLength(Reward):
    """Kimi k1.5 length reward, per prompt group: shorter than the group's range centre is rewarded.

    lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len), min/max over the sample's own group;
    r_i = lambda_i if correct else min(0, lambda_i); 0 for the whole group when all lengths are equal.
    (Kimi Team, arXiv 2501.12599, section 2.3.3; they add it to the task reward with a weight.)
    """

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        for idx in _groups(batch):
            lo, hi = lengths[idx].min(), lengths[idx].max()
            if hi == lo:
                continue
            lam = 0.5 - (lengths[idx] - lo) / (hi - lo)
            r[idx] = torch.where(ctx.correct[idx], lam, torch.clamp(lam, max=0.0))
        return _out("kimi", r)


@REWARDS.register("dapo_overlong")
class DAPOOverlong(Reward):
    """DAPO's soft overlong punishment (Yu et al., arXiv 2503.14476, eq. 13).

    r = 0 if L <= L_max - L_cache; ((L_max - L_cache) - L) / L_cache if L_max - L_cache < L <= L_max;
    -1 if L > L_max. `max_length` defaults to rollout.max_new_tokens.
    """

    def __init__(self, buffer: int = 16, max_length: int = 0) -> None:
        if buffer <= 0:
            raise ValueError(f"buffer: expected a positive token count, got {buffer}")
        self.buffer, self.max_length = buffer, max_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        l_max = float(self.max_length or ctx.max_new_tokens)
        if self.buffer >= l_max:
            raise ValueError(f"dapo_overlong.buffer ({self.buffer}) must be smaller than max_length ({l_max:g})")
        lengths = batch.response_lengths.float()
        start = l_max - self.buffer
        r = torch.where(lengths <= start, torch.zeros_like(lengths), (start - lengths) / self.buffer)
        r = torch.where(lengths > l_max, torch.full_like(lengths, -1.0), r)
        return _out("dapo_overlong", r)


def _cos_fn(t: torch.Tensor, big_t: float, eta_min: float, eta_max: float) -> torch.Tensor:
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + torch.cos(t * math.pi / big_t))


@REWARDS.register("cosine")
class CosineLength(Reward):
    """Cosine length-scaled reward (Yeo et al., "Demystifying Long CoT Reasoning", arXiv 2502.03373).

    CosFn(t, T, eta_min, eta_max) = eta_min + (eta_max - eta_min)(1 + cos(t pi / T)) / 2
    correct: CosFn(L, L_max, r_L^c, r_0^c); wrong: CosFn(L, L_max, r_L^w, r_0^w); truncated
    without an answer: r_e. Defaults r_0^c=2, r_L^c=1, r_0^w=-10, r_L^w=0, r_e=-10.
    """

    def __init__(
        self,
        r0_correct: float = 2.0,
        rl_correct: float = 1.0,
        r0_wrong: float = -10.0,
        rl_wrong: float = 0.0,
        exceed: float = -10.0,
        max_length: int = 0,
    ) -> None:
        self.r0c, self.rlc, self.r0w, self.rlw, self.exceed = r0_correct, rl_correct, r0_wrong, rl_wrong, exceed
        self.max_length = max_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        big_t = float(self.max_length or ctx.max_new_tokens)
        lengths = batch.response_lengths.float().clamp(max=big_t)
        r = torch.where(
            ctx.correct, _cos_fn(lengths, big_t, self.rlc, self.r0c), _cos_fn(lengths, big_t, self.rlw, self.r0w)
        )
        r = torch.where(batch.truncated & ~ctx.answered, torch.full_like(r, self.exceed), r)
        return _out("cosine", r)


def _targets(batch: RolloutBatch, default: int) -> torch.Tensor:
    vals = [float(m.get("target_len", default)) if m else float(default) for m in batch.meta] or [default]
    if len(vals) != batch.num_samples:
        vals = [float(default)] * batch.num_samples
    return torch.tensor(vals)


@REWARDS.register("l1_exact")
class L1Exact(Reward):
    """L1 / LCPO-Exact (Aggarwal & Welleck, arXiv 2503.04697): r = 1[correct] - alpha |n_gold - n_y|.

    The target n_gold comes from `meta["target_len"]` (the prompt's "Think for N tokens.") or
    `target_length`.
    """

    def __init__(self, alpha: float = 0.0003, target_length: int = 0) -> None:
        self.alpha, self.target_length = alpha, target_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        target = _targets(batch, self.target_length or ctx.max_new_tokens)
        r = ctx.correct.float() - self.alpha * (target - batch.response_lengths.float()).abs()
        return _out("l1_exact", r)


@REWARDS.register("l1_max")
class L1Max(Reward):
    """L1 / LCPO-Max: r = 1[correct] * clip(alpha (n_gold - n_y) + delta, 0, 1), delta = 0.5."""

    def __init__(self, alpha: float = 0.0003, delta: float = 0.5, target_length: int = 0) -> None:
        self.alpha, self.delta, self.target_length = alpha, delta, target_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        target = _targets(batch, self.target_length or ctx.max_new_tokens)
        budget = torch.clamp(self.alpha * (target - batch.response_lengths.float()) + self.delta, 0.0, 1.0)
        return _out("l1_max", ctx.correct.float() * budget)


@REWARDS.register("shorterbetter")
class ShorterBetter(Reward):
    """ShorterBetter (Yi et al., arXiv 2504.21370): r_i = alpha 1[correct] - beta |len_i - SOL|.

    The Sample Optimal Length (SOL) of a group is its shortest correct response, or the group's mean
    length when none is correct. alpha = 2.0, beta = 0.001.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 0.001) -> None:
        self.alpha, self.beta = alpha, beta

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        for idx in _groups(batch):
            ok = ctx.correct[idx]
            sol = lengths[idx][ok].min() if ok.any() else lengths[idx].mean()
            r[idx] = self.alpha * ok.float() - self.beta * (lengths[idx] - sol).abs()
        return _out("shorterbetter", r)


@REWARDS.register("arora_zanette")
class AroraZanette(Reward):
    """Arora & Zanette ("Training LMs to Reason Efficiently", arXiv 2502.04463):
    correct: 1 - alpha * sigmoid((len - mean_correct) / std_correct), per group; wrong: 0.

    mean/std over the group's correct responses (std + 1e-6 guards a single correct response).
    """

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha: expected a value in [0, 1), got {alpha}")
        self.alpha = alpha

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        for idx in _groups(batch):
            ok = ctx.correct[idx]
            if not ok.any():
                continue
            correct_len = lengths[idx][ok]
            mean = correct_len.mean()
            std = correct_len.std() if correct_len.numel() > 1 else torch.tensor(0.0)
            z = (lengths[idx] - mean) / (std + 1e-6)
            r[idx] = torch.where(ok, 1 - self.alpha * torch.sigmoid(z), torch.zeros_like(z))
        return _out("arora_zanette", r)
