"""Sampler/trainer parity: |log pi_sampler - log pi_trainer| of the sampled tokens, every step.

The rollout records the log-probability of each token it samples; the trainer's first forward
pass of the step (before its first optimiser update, so with the same weights) recomputes it. The
two differ only by numerics (KV-cached vs full-sequence attention, batch shapes, autocast) unless
something is wrong: stale rollout weights, a temperature applied on one side only, dropout left on,
a different tokenisation. Peers found silent stale-weight bugs only through this number; with a
separate inference engine (vLLM) it becomes the first thing to watch. A jump (the step's mean gap
above 10 x the median of the previous steps and above 1e-3) raises a warning.
"""

from __future__ import annotations

import statistics
import warnings
from typing import Any

import torch


class Parity:
    """Accumulates the gap over the micro-batches of one step (sums, so ranks can be reduced)."""

    def __init__(self) -> None:
        self.total, self.count, self.max = 0.0, 0.0, 0.0

    def add(self, sampler: torch.Tensor, trainer: torch.Tensor, mask: torch.Tensor) -> None:
        gap = (sampler.float() - trainer.float()).abs() * (mask > 0)
        self.total += float(gap.sum())
        self.count += float((mask > 0).sum())
        if gap.numel():
            self.max = max(self.max, float(gap.max()))


def parity_jump(history: list[float], mean: float, *, factor: float = 10.0, floor: float = 1e-3) -> float:
    """The median of the previous steps' mean gaps when `mean` jumps above it (0.0 otherwise)."""
    if not history:
        return 0.0
    median = statistics.median(history[-20:])
    return median if mean > floor and mean > factor * max(median, 1e-12) else 0.0


class ParityMonitor:
    """The run's history of step gaps: reduces one step's `Parity` over ranks into
    `parity/logprob_diff_mean|max` and warns when the mean jumps (stale rollout weights, a wrong
    temperature, dropout)."""

    def __init__(self) -> None:
        self.history: list[float] = []

    def metrics(self, parity: Parity, reducer: Any, step: int, *, warn: bool = True) -> dict[str, float]:
        total, count = reducer.sum(parity.total), reducer.sum(parity.count)
        biggest = reducer.max(parity.max)
        mean = total / max(count, 1.0)
        jump = parity_jump(self.history, mean)
        if jump and warn:
            warnings.warn(
                f"step {step + 1}: sampler/trainer log-prob gap jumped to {mean:.3g} (max {biggest:.3g}; "
                f"median of the previous steps {jump:.3g}): stale rollout weights, temperature or dropout?",
                stacklevel=2,
            )
        self.history.append(mean)
        return {"parity/logprob_diff_mean": mean, "parity/logprob_diff_max": biggest}
