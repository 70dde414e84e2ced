"""Answer extraction and equivalence: `is_correct`, `extract_answer`, `verify_batch`, `VerifierPool`.

Model output is untrusted input: it is never evaluated, symbolic comparisons run in killable worker
processes with a hard timeout, and any failure means "incorrect", never an exception.

Two stages per pair: the registered verifier's `fast` check runs in the caller's process (plain
numbers, identical strings: no subprocess, microseconds); only what it cannot decide goes to sympy
in a worker. A training loop keeps one `VerifierPool` alive (workers start in about 1 s each);
`is_correct` / `verify_batch` share a module-level pool per (verifier, timeout).
"""

from __future__ import annotations

import os
import threading

from rlreason.registry import VERIFIERS
from rlreason.verify.extract import extract_answer, gsm8k_gold
from rlreason.verify.numeric import parse_number
from rlreason.verify.pool import SymbolicPool
from rlreason.verify.verifiers import Verifier

__all__ = [
    "VerifierPool",
    "extract_answer",
    "is_correct",
    "normalize_gold",
    "parse_number",
    "verify_batch",
]


def normalize_gold(gold: object) -> str:
    """Gold answers as stored by the shipped benchmarks -> comparable strings.

    GSM8K's full solution (``... #### 1,234``) -> ``1234``; AMC's float ``27.0`` -> ``27``; AIME's
    ``"025"`` stays a string and compares equal to ``25`` numerically.
    """
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    text = str(gold).strip()
    if "####" in text:
        return gsm8k_gold(text)
    return text


class VerifierPool:
    """Grades many (response, gold) pairs; symbolic work goes to `workers` killable processes.

    Keep one alive for a training run (`with VerifierPool() as pool: pool.verify(...)`). Safe to share
    between threads; their symbolic work is served one batch at a time.
    """

    def __init__(self, verifier: str = "math", timeout: float = 5.0, workers: int = 0) -> None:
        self.verifier: Verifier = VERIFIERS.build(verifier, where="verifier")
        self.timeout = timeout
        self._pool = SymbolicPool(workers or max(1, min(4, os.cpu_count() or 1)), timeout)

    def start(self) -> VerifierPool:
        """Start the worker processes now rather than on the first symbolic answer (about 1 s each)."""
        if self.verifier.symbolic is not None:
            self._pool.start()
        return self

    def verify(self, responses: list[str], golds: list[str], *, extract: bool = True) -> list[bool]:
        """One verdict per pair; `extract=False` treats each response as the bare answer already.

        Plain numbers are decided in this process; the rest run in parallel in the workers, each
        within `timeout` seconds (a timed-out or crashed comparison is False and its worker replaced).
        """
        if len(responses) != len(golds):
            raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
        results = [False] * len(responses)
        slow: list[tuple[int, tuple[str, str, str]]] = []
        for i, (resp, gold) in enumerate(zip(responses, golds)):
            try:
                pred = extract_answer(resp) if extract else (resp if isinstance(resp, str) else None)
                if pred is None:
                    continue
                g = normalize_gold(gold)
                verdict = self.verifier.fast(pred, g)
            except Exception:  # malformed input never stops the caller
                continue
            if verdict is not None:
                results[i] = verdict
            elif self.verifier.symbolic is not None:
                slow.append((i, (self.verifier.symbolic, pred, g)))
        for (i, _), ok in zip(slow, self._pool.compare([item for _, item in slow])):
            results[i] = ok
        return results

    @property
    def timeouts(self) -> int:
        """Comparisons killed at the timeout so far (each counted as incorrect)."""
        return self._pool.timeouts

    @property
    def workers_alive(self) -> int:
        """Worker processes running; plain-number batches never start one."""
        return self._pool.alive

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEFAULT: dict[tuple[str, float], VerifierPool] = {}
_DEFAULT_LOCK = threading.Lock()


def _default_pool(verifier: str, timeout: float, workers: int = 0) -> VerifierPool:
    with _DEFAULT_LOCK:
        key = (verifier, timeout)
        if key not in _DEFAULT:
            _DEFAULT[key] = VerifierPool(verifier, timeout, workers)
        return _DEFAULT[key]


def verify_batch(
    responses: list[str], golds: list[str], verifier: str = "math", timeout: float = 5.0, workers: int = 0
) -> list[bool]:
    """Grade many responses at once (a shared, long-lived pool per verifier and timeout).

    `workers` (0: min(4, CPUs)) applies when that shared pool is first created; keep a `VerifierPool`
    of your own for a different size.
    """
    return _default_pool(verifier, timeout, workers).verify(responses, golds)


def is_correct(response: str, gold: str, verifier: str = "math", timeout: float = 5.0) -> bool:
    """Whether the final answer in `response` equals `gold`. Never raises; at most `timeout` s."""
    return verify_batch([response], [gold], verifier=verifier, timeout=timeout)[0]
