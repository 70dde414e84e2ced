"""One optimiser update from a stream of micro-batch losses, shared by RL and SFT steps, with the
fault handling: a non-finite loss, gradient or reward skips the update (on every rank together),
and too many faulty steps in a row stop the run on its last good state.

Backward runs even on a non-finite loss: DDP ranks must all reduce, and the NaN gradient then makes
every rank skip the same optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from rlreason.errors import RLReasonError
from rlreason.train import faults
from rlreason.train.timing import PhaseTimer


class NonFiniteError(RLReasonError):
    """Too many consecutive non-finite updates: the run stops on the last good state (exit status 3)."""

    exit_code = 3


class NonFiniteGuard:
    """Counts skipped updates; a step with any skipped update extends the run of faulty steps."""

    def __init__(self, max_in_a_row: int = 3) -> None:
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.total = 0
        self._fault: str | None = None  # what the current step skipped last

    def skip(self, what: str) -> dict[str, float]:
        """Drop one update (the caller zeroed its gradients); the step counts as faulty."""
        self.total += 1
        self._fault = what
        return {f"nonfinite_{what}": 1.0}

    def end_step(self, step: int) -> None:
        """Close a step: a clean one ends the run of faulty steps; too long a run raises NonFiniteError."""
        what, self._fault = self._fault, None
        self.in_a_row = self.in_a_row + 1 if what else 0
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteError(
                f"{self.in_a_row} steps in a row with non-finite updates (last: non-finite {what} at"
                f" step {step + 1}; optim.max_nonfinite_in_a_row={self.max_in_a_row})"
            )


def optimizer_step(
    optimizer: Any, scheduler: Any, max_grad_norm: float, guard: NonFiniteGuard, cause: str = "grad"
) -> dict[str, float]:
    """Clip, step and zero; a non-finite gradient norm skips the update, counted as `cause`."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    if not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        return guard.skip(cause)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"grad_norm": float(norm)}


def accumulate_and_step(
    micro_losses: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    *,
    backward: Callable[[torch.Tensor], None],
    optimizer: Any,
    scheduler: Any,
    max_grad_norm: float,
    guard: NonFiniteGuard,
    step: int,
    sums: dict[str, float],
    timer: PhaseTimer | None = None,
) -> dict[str, float]:
    """Backward every micro-batch loss (gradients accumulate), then one optimiser step.

    Adds each micro-batch's metrics and its loss (key "loss") into `sums` in place, so a step with
    several updates keeps one running sum; returns the optimiser step's statistics."""
    timer = timer or PhaseTimer()
    bad_loss = False
    with timer("forward_backward"):
        for loss, metrics in micro_losses:
            if faults.active("nan_loss", step + 1):
                loss = loss * float("nan")
            bad_loss |= not bool(torch.isfinite(loss.detach()))
            backward(loss)
            for k, v in metrics.items():
                sums[k] += float(v)
            sums["loss"] += float(loss.detach())
    with timer("optimizer"):
        return optimizer_step(optimizer, scheduler, max_grad_norm, guard, "loss" if bad_loss else "grad")


def fault_metrics(metrics: dict[str, Any], guard: NonFiniteGuard) -> dict[str, Any]:
    """The step's metrics with its skipped-update counts as `faults/nonfinite_{reward,loss,grad}`,
    written every step (a logger would otherwise repeat a key's stale value), and the run's total."""
    leaf = lambda k: k.rsplit("/", 1)[-1]  # noqa: E731
    skipped = {leaf(k): v for k, v in metrics.items() if leaf(k).startswith("nonfinite_")}
    out = {k: v for k, v in metrics.items() if not leaf(k).startswith("nonfinite_")}
    out.update({f"faults/nonfinite_{k}": skipped.get(f"nonfinite_{k}", 0.0) for k in ("reward", "loss", "grad")})
    out["faults/nonfinite_total"] = float(guard.total)
    return out
