"""The one way rlreason reduces across processes: plain `torch.distributed` collectives on the default
group, each the identity when no process group is initialised (one process).

Used by the training step's normalisers and skip decisions (`RankReducer`), DLER's batch
statistics, the per-step metrics and the evaluator's records. Tensors go to the device the backend
needs (CUDA for NCCL) and come back where they were.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def _device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`t` summed (`op="sum"`) or maximised (`op="max"`) over the processes: a new tensor, `t` untouched."""
    if world_size() == 1:
        return t.clone()
    out = t.detach().clone().to(_device())
    dist.all_reduce(out, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return out.to(t.device)


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (`[obj]` on one process)."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


class RankReducer:
    """Sums and maxima of Python floats over the ranks of a run (float64 on the wire): a training
    step's loss normalisers and skip decisions.

    Under DDP the loss normalisers are summed over ranks and divided by the world size
    (`global_norm`), so that the gradient DDP averages equals the gradient of one process holding
    the whole global batch."""

    def __init__(self, world_size: int, rank: int) -> None:
        self.world_size, self.rank = world_size, rank

    def sum(self, value: float) -> float:
        """Sum over ranks."""
        if self.world_size == 1:
            return float(value)
        return float(all_reduce(torch.tensor(float(value), dtype=torch.float64)))

    def global_norm(self, local: float) -> float:
        """A loss normaliser: summed over ranks, divided by the world size (see the module docstring)."""
        return self.sum(local) / self.world_size

    def max(self, value: float) -> float:
        """Maximum over ranks."""
        if self.world_size == 1:
            return float(value)
        return float(all_reduce(torch.tensor(float(value), dtype=torch.float64), op="max"))
