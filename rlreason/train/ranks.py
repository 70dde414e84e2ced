"""Reductions over DDP ranks for the numbers a step shares: loss normalisers, skip decisions, maxima.

On one process every function is the identity. Under DDP the loss normalisers are summed over ranks
and divided by the world size (`global_norm`), so that the gradient DDP averages equals the gradient
of one process holding the whole global batch.
"""

from __future__ import annotations

from typing import Any

import torch


class RankReducer:
    """Sums and maxima of Python floats over the ranks of the trainer's strategy."""

    def __init__(self, trainer: Any, device: torch.device) -> None:
        self.trainer, self.device = trainer, device

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def sum(self, value: float) -> float:
        """Sum over ranks."""
        if self.world_size == 1:
            return float(value)
        t = torch.tensor(float(value), device=self.device, dtype=torch.float64)
        return float(self.trainer.strategy.reduce(t, reduce_op="sum"))

    def global_norm(self, local: float) -> float:
        """A loss normaliser: summed over ranks, divided by the world size (see the module docstring)."""
        return self.sum(local) / self.world_size

    def max(self, value: float) -> float:
        """Maximum over ranks."""
        if self.world_size == 1 or not torch.distributed.is_initialized():
            return float(value)
        t = torch.tensor(float(value), device=self.device, dtype=torch.float64)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t)
