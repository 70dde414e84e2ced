"""Per-step training scalars: reduced over DDP ranks by hand and written straight to TensorBoard.

Why not `LightningModule.log`: a key that is not logged at every step (an accuracy over the
`<think>` samples of a batch that has none, a rare fault counter) is then written again at later
steps with its last value, and under DDP `sync_dist` pairs up keys by call order, so a key present
on one rank and absent on another mis-pairs or hangs the all-reduce. Here a metric is either a
float (its mean over the ranks that report it) or a `Ratio` (sum of numerators / sum of
denominators over all ranks: a pooled rate, e.g. think ratio among the batch's hard prompts); the
union of keys is agreed first, each key is reduced once, and a key nobody reported (or a ratio with
a zero denominator) is simply not written at that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlreason import distributed


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
