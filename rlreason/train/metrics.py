"""What a step reports: its rollout (`rollout_metrics`), its phases' wall time (`PhaseTimer`), and
the reduction of every per-step scalar over DDP ranks before it is written (`reduce_metrics`).

Scalars are reduced by hand and written straight to every logger. Why not `LightningModule.log`: a
key that is not logged at every step (an accuracy over the `<think>` samples of a batch that has
none, a rare fault counter) is then written again at later steps with its last value, and under DDP
`sync_dist` pairs up keys by call order, so a key present on one rank and absent on another
mis-pairs or hangs the all-reduce. Here a metric is either a float (its mean over the ranks that
report it) or a `Ratio` (sum of numerators / sum of denominators over all ranks: a pooled rate, e.g.
think ratio among the batch's hard prompts); the union of keys is agreed first, each key is reduced
once, and a key nobody reported (or a ratio with a zero denominator) is not written at that step.

The rollout's scalars: reward and accuracy, lengths, and, with control tokens, how often the policy
chose to think, overall and per difficulty level (the adaptive papers' question). The phases of an
RL step, each logged as `perf/<phase>_time`, are rollout, verify, reference (frozen-reference
log-probs), reward, values (critic pass), advantages, forward_backward (every micro-batch's loss and
backward) and optimizer (clipping and the optimiser step); `perf/step_time` is their sum plus glue.
`benchmarks/step_profile.py` turns them into a table with shares and arithmetic floors.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from rlreason import distributed
from rlreason.batch import RewardOutput, RolloutBatch


@dataclass(frozen=True)
class Ratio:
    """A rate pooled over ranks: sum(num) / sum(den)."""

    num: float
    den: float


Metric = float | Ratio


def _as_pair(value: Metric) -> tuple[float, float]:
    if isinstance(value, Ratio):
        return float(value.num), float(value.den)
    value = float(value)
    return (value, 1.0) if math.isfinite(value) else (0.0, 0.0)  # a non-finite scalar is not reported


def reduce_metrics(metrics: dict[str, Metric], world_size: int = 1) -> dict[str, float]:
    """Every rank calls this with its own metrics (collective under DDP); returns the reduced values."""
    local = {k: _as_pair(v) for k, v in metrics.items()}
    reduced = local
    if world_size > 1 and distributed.world_size() > 1:
        keys = sorted({k for part in distributed.all_gather_object(sorted(local)) for k in part})
        pairs = torch.tensor([local.get(k, (0.0, 0.0)) for k in keys], dtype=torch.float64).reshape(-1, 2)
        pairs = distributed.all_reduce(pairs)
        reduced = {k: (float(n), float(d)) for k, (n, d) in zip(keys, pairs.tolist())}
    return {k: n / d for k, (n, d) in reduced.items() if d > 0 and math.isfinite(n / d)}


def rollout_metrics(
    batch: RolloutBatch, reward: RewardOutput, correct: torch.Tensor, control: Any
) -> dict[str, Metric]:
    """`train/*` and `mode/*` scalars of one rollout batch, then the reward's own metrics."""
    lengths = batch.response_lengths.float()
    r = reward.rewards.float()
    m: dict[str, Metric] = {
        "train/reward_mean": float(r.mean()),
        "train/reward_std": float(r.std()) if r.numel() > 1 else 0.0,
        "train/accuracy": float(correct.float().mean()),
        "train/response_len_mean": float(lengths.mean()),
        "train/response_len_max": float(lengths.max()),
        "train/truncated_frac": float(batch.truncated.float().mean()),
    }
    has_modes = control is not None and getattr(control, "short_id", None) is not None
    if batch.control_mode is not None and has_modes:
        modes = batch.control_mode
        think = torch.tensor([md == "think" for md in modes])
        short = torch.tensor([md == "short" for md in modes])
        m["mode/think_ratio"] = float(think.float().mean())
        m["mode/n_think"] = float(think.sum())
        m["mode/n_short"] = float(short.sum())
        m["mode/format_fail"] = float((~(think | short)).float().mean())
        m["mode/acc_think"] = Ratio(float(correct[think].sum()), float(think.sum()))
        m["mode/acc_short"] = Ratio(float(correct[short].sum()), float(short.sum()))
    levels = [meta.get("difficulty") for meta in batch.meta]
    for level in sorted({lv for lv in levels if isinstance(lv, str)}):
        at = torch.tensor([lv == level for lv in levels])
        m[f"train/accuracy/{level}"] = Ratio(float(correct[at].sum()), float(at.sum()))
        if "mode/think_ratio" in m:
            m[f"mode/think_ratio/{level}"] = Ratio(float(think[at].sum()), float(at.sum()))
    for k, v in reward.metrics.items():
        m.setdefault(k, float(v))
    return m


def mode_metrics(batch: RolloutBatch, correct: torch.Tensor, advantages: torch.Tensor) -> dict[str, Metric]:
    """Per control mode and difficulty: how many samples, how often right, and the mean advantage they
    trained with, and their length (`mode/{adv,len}_<mode>`, `mode/{n,acc,adv,len}_<mode>/<level>`):
    what each mode learns from, and how much one token of it weighs under a per-sample mean.

    A sample's advantage is its mean token advantage over the response (the sequence advantage for
    the GRPO family). Empty without control tokens.
    """
    if batch.control_mode is None:
        return {}
    mask = batch.response_mask.to(advantages.dtype)  # [N, T]
    lengths = mask.sum(-1)  # [N]
    per_sample = (advantages * mask).sum(-1) / lengths.clamp(min=1)  # [N]
    levels = [meta.get("difficulty") for meta in batch.meta]
    at_level = {lv: torch.tensor([x == lv for x in levels]) for lv in sorted({x for x in levels if isinstance(x, str)})}
    m: dict[str, Metric] = {}
    for mode in ("think", "short"):
        of_mode = torch.tensor([md == mode for md in batch.control_mode])
        count = float(of_mode.sum())  # the overall count and accuracy are rollout_metrics'
        m[f"mode/adv_{mode}"] = Ratio(float(per_sample[of_mode].sum()), count)
        m[f"mode/len_{mode}"] = Ratio(float(lengths[of_mode].sum()), count)
        for lv, at in at_level.items():
            rows = of_mode & at
            count = float(rows.sum())
            m[f"mode/n_{mode}/{lv}"] = count
            m[f"mode/acc_{mode}/{lv}"] = Ratio(float(correct[rows].sum()), count)
            m[f"mode/adv_{mode}/{lv}"] = Ratio(float(per_sample[rows].sum()), count)
            m[f"mode/len_{mode}/{lv}"] = Ratio(float(lengths[rows].sum()), count)
    return m


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {f"perf/{phase}_time": s for phase, s in self.seconds.items()}
