"""Where a step's time goes: wall-clock seconds per phase, logged as `perf/<phase>_time`.

The phases of an RL step are rollout, verify, reference (frozen-reference log-probs), reward,
values (critic pass), advantages, forward_backward (every micro-batch's loss and backward) and
optimizer (clipping and the optimiser step); `perf/step_time` is their sum plus glue.
`benchmarks/step_profile.py` turns them into a table with shares and arithmetic floors."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


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
