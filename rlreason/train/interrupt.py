"""Ctrl-C during training: checkpoint at the next step boundary, then stop with exit status 130.

Lightning's own handling of `KeyboardInterrupt` ends the process with status 1 and saves nothing. So
while a run trains, the first SIGINT only sets a flag (a step is never cut in half); the callback
below sees it after the step, writes an ordinary checkpoint (the same kind `--resume` continues
from bit for bit) and stops the trainer; `rlreason.train.run` then raises `RunInterrupted`, which
the CLI prints as one line telling how to resume. A second Ctrl-C stops at once, as usual.
Under DDP every rank decides together (any rank interrupted stops all), so the checkpoint
collective runs on every rank.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import pytorch_lightning as pl


class GracefulInterrupt(pl.Callback):
    """Turns SIGINT into "checkpoint after this step and stop" (see the module docstring)."""

    def __init__(self, checkpointer: Any) -> None:
        self.checkpointer = checkpointer
        self.requested = False
        self.checkpoint: Any = None  # path written on interrupt
        self.step = 0
        self._previous: Any = None

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\n[rlreason] Ctrl-C: saving a checkpoint after this step, then stopping (Ctrl-C again to stop now)",
            file=sys.stderr,
            flush=True,
        )

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        stop = bool(trainer.strategy.reduce_boolean_decision(self.requested, all=False))
        if not stop or self.checkpoint is not None:
            return
        self.step = batch_idx + 1
        self.checkpoint = self.checkpointer.save(trainer, module, self.step)
        trainer.should_stop = True

    @property
    def interrupted(self) -> bool:
        return self.checkpoint is not None
