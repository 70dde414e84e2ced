"""A pool of killable worker processes for symbolic comparisons, with a hard per-answer timeout.

math-verify's own timeout uses SIGALRM, which only works in the main thread of the main process;
training loops, data loaders and services call verifiers from elsewhere. Here every symbolic
comparison runs in a worker process (`python -m rlreason.verify.worker`, talking JSON lines over
pipes); when one exceeds the timeout the worker is killed and replaced and the answer counts as
incorrect. The caller waits at most the timeout per answer, from any thread or process.

Workers are plain subprocesses (not `multiprocessing`), so they are safe with torch threads in the
parent and need no `if __name__ == "__main__"` guard in the caller's script. They stay alive between
calls; each imports sympy and math-verify and runs one warm-up comparison before it reports ready
(about 1 s of start-up per worker on this machine), so `start()` them when the pool is created.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import wait
from typing import IO

STARTUP_TIMEOUT = 120.0


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlreason.verify.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.ready = False

    @property
    def out(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_line(self) -> str:
        return self.out.readline()

    def send(self, item: tuple[object, ...]) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(item) + "\n")
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class SymbolicPool:
    """`compare(items)` -> verdicts, each item `(backend, pred, gold[, tolerance])` decided within `timeout`.

    Thread-safe: concurrent `compare` calls are served one at a time (a lock), so a caller may also
    wait for another thread's batch; the timeout bounds each comparison, not the wait for the lock.
    """

    def __init__(self, workers: int = 1, timeout: float = 5.0) -> None:
        self.n_workers = max(1, workers)
        self.timeout = timeout
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.timeouts = 0  # comparisons killed so far
        atexit.register(self.close)

    def _start(self, n: int) -> list[_Worker]:
        fresh = [_Worker() for _ in range(n)]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pending = {w.out: w for w in fresh}
        while pending and time.monotonic() < deadline:
            for f in wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
                w = pending.pop(f)  # type: ignore[arg-type]
                w.ready = w.read_line().strip() == "ready"
        ok = [w for w in fresh if w.ready]
        for w in fresh:
            if not w.ready:
                w.kill()
        return ok

    def start(self) -> int:
        """Start all workers now (otherwise they start on first use); returns how many are ready."""
        with self._lock:
            self._top_up(self.n_workers)
            return len(self._workers)

    def _top_up(self, n: int) -> None:
        self._workers = [w for w in self._workers if w.alive()]
        missing = min(self.n_workers, n) - len(self._workers)
        if missing > 0:
            self._workers += self._start(missing)

    def compare(self, items: list[tuple[object, ...]]) -> list[bool]:
        if not items:
            return []
        with self._lock:
            self._top_up(len(items))
            results = [False] * len(items)
            todo = list(range(len(items)))[::-1]
            busy: dict[IO[str], tuple[_Worker, int, float]] = {}
            idle = list(self._workers)
            while todo or busy:
                while todo and idle:
                    w, i = idle.pop(), todo.pop()
                    if w.send(items[i]):
                        busy[w.out] = (w, i, time.monotonic() + self.timeout)
                    else:
                        todo.append(i)
                        self._drop(w)
                        idle += self._replace()
                if not busy:
                    if todo and not idle:  # no worker could be started: symbolic answers count as wrong
                        break
                    continue
                next_deadline = min(d for _, _, d in busy.values())
                for f in wait(list(busy), timeout=max(0.0, next_deadline - time.monotonic())):
                    w, i, _ = busy.pop(f)  # type: ignore[arg-type]
                    line = w.read_line()
                    if line:
                        results[i] = line.strip() == "1"
                        idle.append(w)
                    else:  # the worker died (e.g. out of memory): answer False, replace it
                        self._drop(w)
                        if todo:
                            idle += self._replace()
                now = time.monotonic()
                for f, (w, _i, deadline) in list(busy.items()):
                    if now >= deadline:
                        busy.pop(f)
                        self.timeouts += 1
                        self._drop(w)
                        if todo:  # otherwise the replacement starts on the next call
                            idle += self._replace()
            return results

    @property
    def alive(self) -> int:
        """Worker processes running now (0 until the first symbolic comparison or `start()`)."""
        return sum(w.alive() for w in self._workers)

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        if worker in self._workers:
            self._workers.remove(worker)

    def _replace(self) -> list[_Worker]:
        fresh = self._start(1)
        self._workers += fresh
        return fresh

    def close(self) -> None:
        for w in self._workers:
            w.stop()
        self._workers = []

    def __enter__(self) -> SymbolicPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LIBRARY: dict[float, SymbolicPool] = {}
_LIBRARY_LOCK = threading.Lock()


def library_symbolic_pool(timeout: float) -> SymbolicPool:
    """The process-wide pool behind `Verifier.__call__` (one pair at a time, library use), created on
    first use with min(4, CPUs) workers. Training and evaluation never use it: a run owns its pools
    (rlreason/verify/task_verifier.py)."""
    with _LIBRARY_LOCK:
        if timeout not in _LIBRARY:
            _LIBRARY[timeout] = SymbolicPool(max(1, min(4, os.cpu_count() or 1)), timeout)
        return _LIBRARY[timeout]
