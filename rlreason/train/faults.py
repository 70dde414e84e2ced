"""Fault injection for the reliability tests: failpoints switched on by an environment variable.

`RLREASON_FAULTS="checkpoint_write@4,nan_loss@2"` makes the run SIGKILL itself after writing the
step-4 checkpoint's temporary file (before its manifest and rename), and makes the step-2 loss NaN;
`skip_sync@1` leaves the rollout engine without step 1's weights (tests/test_vllm_train.py).
Unset (always, outside the tests), every call here is a dictionary lookup that returns
False. Faults that real inputs can produce (a NaN reward from a user's reward function, a corrupted or
truncated checkpoint file, kill -9 at an arbitrary moment) are tested with those real inputs instead.
"""

from __future__ import annotations

import os
import signal

ENV = "RLREASON_FAULTS"
KINDS = ("checkpoint_write", "nan_loss", "skip_sync")


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
