"""The length-penalised reward family: every member reads token lengths, most also prompt groups.

*Terms* (composed with a correctness reward through `sum`): `kimi`, `dapo_overlong`. *Complete
rewards* (contain correctness): `cosine`, `l1_exact`, `l1_max`, `shorterbetter`, `arora_zanette`.
A length counts response tokens, EOS included; group statistics are over one prompt's samples.

Conventions: docs/algorithms.md#the-length-family
"""

from __future__ import annotations

import math

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import ConfigError, DataError
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


def _groups(batch: RolloutBatch) -> list[torch.Tensor]:
    """Sample indices of each prompt group."""
    return [torch.nonzero(batch.group_ids == g).squeeze(-1) for g in torch.unique(batch.group_ids)]


def _out(name: str, r: torch.Tensor, **extra: float) -> RewardOutput:
    r = r.float()
    metrics = {f"reward/{name}/mean": float(r.mean()) if r.numel() else 0.0}
    metrics.update({f"reward/{name}/{k}": v for k, v in extra.items()})
    return RewardOutput(rewards=r, metrics=metrics)


def _max_length(name: str, max_length: int, ctx: RewardContext) -> float:
    value = max_length or ctx.max_new_tokens
    if value <= 0:
        raise ConfigError(f"reward.max_length: {name} needs a positive max_length or rollout.max_new_tokens")
    return float(value)


@REWARDS.register("kimi")
class KimiLength(Reward):
    """Kimi k1.5 length term, per prompt group: shorter than the group's mid-range is rewarded.

    Kimi Team, arXiv 2501.12599, sec. 2.3.3 ("Length Penalty"), over the k samples of one problem:

        lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len)
        r_i      = lambda_i            if correct_i
                   min(0, lambda_i)    otherwise

    and r_i = 0 for the whole group when max_len = min_len. Defaults: start_step 0 (the step the term
    switches on at; the report's warm-up).

    Deviations from the paper and the released code: docs/algorithms.md#kimi
    """

    def __init__(self, start_step: int = 0) -> None:
        if start_step < 0:
            raise ValueError(f"start_step: expected a non-negative step, got {start_step}")
        self.start_step = start_step

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        if ctx.step < self.start_step:
            return _out("kimi", r, active=0.0)
        for idx in _groups(batch):
            lo, hi = lengths[idx].min(), lengths[idx].max()
            if hi == lo:
                continue
            lam = 0.5 - (lengths[idx] - lo) / (hi - lo)
            r[idx] = torch.where(ctx.correct[idx], lam, lam.clamp(max=0.0))
        return _out("kimi", r, active=1.0)


@REWARDS.register("dapo_overlong")
class DAPOOverlong(Reward):
    """DAPO soft overlong punishment: a linear penalty over the last `buffer` tokens before max_length.

    Yu et al., arXiv 2503.14476, eq. 13, with L_max = `max_length` and L_cache = `buffer`:

        R_length(y) = 0                                   if |y| <= L_max - L_cache
                      ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
                      -1                                  if |y| > L_max

    times `penalty_factor`. Defaults: buffer 0 (= max_length / 5), max_length 0 (= rollout.max_new_tokens),
    penalty_factor 1.0.

    Deviations from the paper and the released code: docs/algorithms.md#dapo_overlong
    """

    def __init__(self, buffer: int = 0, max_length: int = 0, penalty_factor: float = 1.0) -> None:
        if buffer < 0 or max_length < 0:
            raise ValueError(f"buffer ({buffer}) and max_length ({max_length}) must be >= 0 (0: default)")
        if max_length and buffer >= max_length:
            raise ValueError(f"buffer ({buffer}) must be smaller than max_length ({max_length})")
        if penalty_factor < 0:
            raise ValueError(f"penalty_factor: expected >= 0, got {penalty_factor}")
        self.buffer, self.max_length, self.penalty_factor = buffer, max_length, penalty_factor

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        l_max = _max_length("dapo_overlong", self.max_length, ctx)
        cache = float(self.buffer or l_max // 5)
        if not 0 < cache < l_max:
            raise ConfigError(f"reward.buffer: expected 0 < buffer < max_length ({l_max:g}), got {cache:g}")
        lengths = batch.response_lengths.float()
        expected = l_max - cache
        r = ((expected - lengths) / cache).clamp(max=0.0)
        r = torch.where(lengths > l_max, torch.full_like(r, -1.0), r) * self.penalty_factor
        return _out("dapo_overlong", r, in_buffer_frac=float((lengths > expected).float().mean()))


def _cos_fn(t: torch.Tensor, big_t: float, eta_min: float, eta_max: float) -> torch.Tensor:
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + torch.cos(t * math.pi / big_t))


@REWARDS.register("cosine")
class CosineLength(Reward):
    """Cosine length-scaled reward: short correct answers earn most, short wrong ones lose most.

    Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in LLMs", arXiv 2502.03373, eq. 1:

        CosFn(t, T, eta_min, eta_max) = eta_min + (eta_max - eta_min) (1 + cos(t pi / T)) / 2
        R(C, L_gen) = CosFn(L_gen, L_max, r_L^c, r_0^c)  if correct
                      CosFn(L_gen, L_max, r_L^w, r_0^w)  if wrong (or no answer)
                      r_e                                if L_gen + margin >= L_max (or truncated)

    Defaults (the paper's): r_0^c = 2, r_L^c = 1, r_0^w = -10, r_L^w = 0, r_e = -10, exceed_margin 0,
    max_length 0 (= rollout.max_new_tokens).

    Deviations from the paper and the released code: docs/algorithms.md#cosine
    """

    def __init__(
        self,
        r0_correct: float = 2.0,
        rl_correct: float = 1.0,
        r0_wrong: float = -10.0,
        rl_wrong: float = 0.0,
        exceed_penalty: float = -10.0,
        exceed_margin: int = 0,
        max_length: int = 0,
    ) -> None:
        if r0_wrong > 0 or rl_wrong > 0:  # the released code refuses these too
            raise ValueError(f"r0_wrong ({r0_wrong}) and rl_wrong ({rl_wrong}) must be <= 0")
        if exceed_margin < 0 or max_length < 0:
            raise ValueError(f"exceed_margin ({exceed_margin}) and max_length ({max_length}) must be >= 0")
        self.r0c, self.rlc, self.r0w, self.rlw = r0_correct, rl_correct, r0_wrong, rl_wrong
        self.exceed_penalty, self.exceed_margin, self.max_length = exceed_penalty, exceed_margin, max_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        big_t = _max_length("cosine", self.max_length, ctx)
        lengths = batch.response_lengths.float()
        t = lengths.clamp(max=big_t)
        correct = _cos_fn(t, big_t, self.rlc, self.r0c)
        r = torch.where(ctx.correct, correct, _cos_fn(t, big_t, self.rlw, self.r0w))
        exceeded = batch.truncated.bool() | (lengths + self.exceed_margin >= big_t)
        r = torch.where(exceeded, torch.full_like(r, self.exceed_penalty), r)
        return _out("cosine", r, exceed_frac=float(exceeded.float().mean()))


def _targets(batch: RolloutBatch, default: int, name: str) -> torch.Tensor:
    """Per-sample target length n_gold: `meta["target_len"]` where given, else the `target_length` param."""
    out = []
    for i in range(batch.num_samples):
        meta = batch.meta[i] if i < len(batch.meta) and batch.meta[i] else {}
        value = meta.get("target_len", default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DataError(f"sample {i}: meta['target_len']: expected a number, got {value!r}") from None
        if not value > 0:
            raise ConfigError(
                f"reward.target_length: {name} needs a positive target length (param or meta['target_len'])"
            )
        out.append(value)
    return torch.tensor(out)


@REWARDS.register("l1_exact")
class L1Exact(Reward):
    """L1 / LCPO-Exact: correctness minus alpha times the distance to the target length.

    Aggarwal & Welleck, "L1: Controlling How Long a Reasoning Model Thinks", arXiv 2503.04697, eq. 1:

        r(y, y_gold, n_gold) = 1[y = y_gold] - alpha |n_gold - n_y|

    n_gold is `meta["target_len"]` when the task gives one, else `target_length`. Defaults: alpha
    0.0003, target_length 0.

    Deviations from the paper and the released code: docs/algorithms.md#l1_exact
    """

    def __init__(self, alpha: float = 0.0003, target_length: int = 0) -> None:
        if alpha < 0 or target_length < 0:
            raise ValueError(f"alpha ({alpha}) and target_length ({target_length}) must be >= 0")
        self.alpha, self.target_length = alpha, target_length

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        target = _targets(batch, self.target_length, "l1_exact")
        gap = (target - batch.response_lengths.float()).abs()
        r = ctx.correct.float() - self.alpha * gap
        return _out("l1_exact", r, abs_gap_mean=float(gap.mean()) if gap.numel() else 0.0)


@REWARDS.register("l1_max")
class L1Max(Reward):
    """L1 / LCPO-Max: correctness scaled by a soft budget, so going over n_gold costs reward.

    Aggarwal & Welleck, arXiv 2503.04697, eq. 2 (`form: clip`; `form: sigmoid` is the released code's):

        r(y, y_gold, n_gold) = 1[y = y_gold] * clip(alpha (n_gold - n_y) + delta, 0, 1)

    Target as in `l1_exact`. Defaults: alpha 0.0003, delta 0.5, target_length 0, form clip.

    Deviations from the paper and the released code: docs/algorithms.md#l1_max
    """

    def __init__(self, alpha: float = 0.0003, delta: float = 0.5, target_length: int = 0, form: str = "clip") -> None:
        if form not in ("clip", "sigmoid"):
            raise ValueError(f"form: expected 'clip' or 'sigmoid', got {form!r}")
        if alpha < 0 or target_length < 0:
            raise ValueError(f"alpha ({alpha}) and target_length ({target_length}) must be >= 0")
        self.alpha, self.delta, self.target_length, self.form = alpha, delta, target_length, form

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        target = _targets(batch, self.target_length, "l1_max")
        slack = target - batch.response_lengths.float()
        if self.form == "clip":
            budget = (self.alpha * slack + self.delta).clamp(0.0, 1.0)
        else:
            budget = (torch.sigmoid(self.alpha * slack) + 0.1 * (slack >= 0).float()).clamp(0.0, 1.0)
        over = float((slack < 0).float().mean()) if slack.numel() else 0.0
        return _out("l1_max", ctx.correct.float() * budget, over_budget_frac=over)


@REWARDS.register("shorterbetter")
class ShorterBetter(Reward):
    """ShorterBetter: correctness bonus minus the distance to the group's Sample Optimal Length.

    Yi, Wang & Li, "ShorterBetter", arXiv 2504.21370, eq. 3-4, per prompt group:

        SOL  = min{ len_j : j correct }   if any sample of the group is correct
               mean{ len_j }              otherwise
        r_i  = alpha 1[correct_i] - beta |len_i - SOL|

    Defaults (the paper's): alpha 2.0, beta 0.001.

    Deviations from the paper and the released code: docs/algorithms.md#shorterbetter
    """

    def __init__(self, alpha: float = 2.0, beta: float = 0.001) -> None:
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha ({alpha}) and beta ({beta}) must be >= 0")
        self.alpha, self.beta = alpha, beta

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        lengths = batch.response_lengths.float()
        r = torch.zeros_like(lengths)
        sols = []
        for idx in _groups(batch):
            ok = ctx.correct[idx]
            sol = lengths[idx][ok].min() if ok.any() else lengths[idx].mean()
            sols.append(float(sol))
            r[idx] = self.alpha * ok.float() - self.beta * (lengths[idx] - sol).abs()
        return _out("shorterbetter", r, sol_mean=sum(sols) / len(sols) if sols else 0.0)


@REWARDS.register("arora_zanette")
class AroraZanette(Reward):
    """Arora & Zanette: correct answers lose up to alpha for being longer than the group's correct ones.

    "Training Language Models to Reason Efficiently", arXiv 2502.04463, eq. 3, per prompt x:

        r(x, y) = 1[y correct] * (1 - alpha * sigmoid((len(y) - mean(x)) / std(x)))

    with mean(x), std(x) over the *correct* responses to x. Defaults: alpha 0.1 (in [0, 1), so every
    correct answer stays above every wrong one).

    Deviations from the paper and the released code: docs/algorithms.md#arora_zanette
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
            z = (lengths[idx] - correct_len.mean()) / (correct_len.std(correction=0) + 1e-7)
            r[idx] = torch.where(ok, 1 - self.alpha * torch.sigmoid(z), torch.zeros_like(z))
        return _out("arora_zanette", r)
