"""Faults: non-finite updates, counted and bounded, and the failpoints the reliability tests arm.

A non-finite loss, gradient or reward skips its update on every rank together (`rl_step`); the
run stops on its last good state when `optim.max_nonfinite_in_a_row` steps in a row skipped any.

Failpoints: `RLREASON_FAULTS="checkpoint_write@4,nan_loss@2"` makes the run SIGKILL itself after
writing the step-4 checkpoint's temporary file (before its manifest and rename), and makes every
loss of step 2 NaN; `skip_sync@1` leaves the rollout engine with step 1's version but not its
weights (the stale-weights bug the parity alarm is for). Unset (always, outside the tests),
`active` returns False. Faults that real inputs can produce (a NaN reward from a user's reward
function, a corrupted or truncated checkpoint file, kill -9 at an arbitrary moment) are tested with
those real inputs instead.
"""

from __future__ import annotations

import copy
import os
import signal

import torch

from rlreason.algos.base import Algorithm, LossInputs
from rlreason.errors import RLReasonError
from rlreason.policy.rollout import RolloutBackend

ENV = "RLREASON_FAULTS"
KINDS = ("checkpoint_write", "nan_loss", "skip_sync")


class NonFiniteError(RLReasonError):
    """Too many consecutive non-finite updates: the run stops on the last good state (exit status 3)."""

    exit_code = 3

    def __init__(self, message: str, steps_done: int) -> None:
        super().__init__(message)
        self.steps_done = steps_done  # steps whose updates the parameters hold (the last good state)


class NonFiniteGuard:
    """Counts skipped updates over the run; a step with any skipped update extends the run of faulty steps."""

    def __init__(self, max_in_a_row: int = 3) -> None:
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.total = 0

    def end_step(self, step: int, skipped: int, cause: str | None) -> str | None:
        """Count one step's skipped updates; returns why the run must stop, or None."""
        self.total += skipped
        self.in_a_row = self.in_a_row + 1 if skipped else 0
        if self.in_a_row < self.max_in_a_row:
            return None
        return (
            f"{self.in_a_row} steps in a row with non-finite updates (last: non-finite {cause} at"
            f" step {step + 1}; optim.max_nonfinite_in_a_row={self.max_in_a_row})"
        )


def _armed() -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        kind, _, step = item.partition("@")
        if kind not in KINDS or not step.isdigit():
            raise ValueError(f"{ENV}: expected <kind>@<step> with kind in {KINDS}, got {item!r}")
        out.setdefault(kind, set()).add(int(step))
    return out


def active(kind: str, step: int) -> bool:
    """Whether failpoint `kind` fires at (1-based) training step `step`."""
    return ENV in os.environ and step in _armed().get(kind, set())


def maybe_kill(kind: str, step: int) -> None:
    if active(kind, step):
        os.kill(os.getpid(), signal.SIGKILL)


def nan_loss(algo: Algorithm) -> Algorithm:
    """A copy of `algo` whose every micro-batch loss is NaN (its metrics unchanged): the `nan_loss` failpoint."""
    poisoned = copy.copy(algo)

    def loss(inp: LossInputs):
        value, metrics = algo.loss(inp)
        return value * float("nan"), metrics

    poisoned.loss = loss  # type: ignore[method-assign]
    return poisoned


def stale_sync(backend: RolloutBackend) -> RolloutBackend:
    """A view of `backend` whose `sync` records the version but pushes no weights: the `skip_sync` failpoint."""
    stale = copy.copy(backend)

    def sync(model: torch.nn.Module, version: int) -> None:
        backend.version = version

    stale.sync = sync  # type: ignore[method-assign]
    return stale
