"""Reductions over DDP ranks for the numbers a step shares: loss normalisers, skip decisions, maxima.

On one process every function is the identity. Under DDP the loss normalisers are summed over ranks
and divided by the world size (`global_norm`), so that the gradient DDP averages equals the gradient
of one process holding the whole global batch. The collectives are `rlreason.distributed`'s.
"""

from __future__ import annotations

import torch

from rlreason import distributed


class RankReducer:
    """Sums and maxima of Python floats over the ranks (float64 on the wire)."""

    def __init__(self, world_size: int, rank: int) -> None:
        self.world_size, self.rank = world_size, rank

    def sum(self, value: float) -> float:
        """Sum over ranks."""
        if self.world_size == 1:
            return float(value)
        return float(distributed.all_reduce(torch.tensor(float(value), dtype=torch.float64)))

    def global_norm(self, local: float) -> float:
        """A loss normaliser: summed over ranks, divided by the world size (see the module docstring)."""
        return self.sum(local) / self.world_size

    def max(self, value: float) -> float:
        """Maximum over ranks."""
        if self.world_size == 1:
            return float(value)
        return float(distributed.all_reduce(torch.tensor(float(value), dtype=torch.float64), op="max"))
