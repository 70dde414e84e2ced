"""Answer extraction and equivalence: `is_correct`, `extract_answer`, `verify_batch`, `VerifierPool`.

Model output is untrusted input: it is never evaluated, symbolic comparisons run in killable worker
processes with a hard timeout, and any failure means "incorrect", never an exception.

Two stages per pair: the registered verifier's `fast` check runs in the caller's process (plain
numbers on both sides, identical strings: no subprocess, microseconds); everything else, every LaTeX
answer included, goes to math-verify in a worker. The number format (`numeric.NUMBER_FORMATS`) is an
explicit per-task option, default ``"en"``; so are a relative numeric tolerance, the reading of percent
signs and the letters of a multiple-choice task (`GradingOptions`); see docs/verification.md for the
whole pipeline.

A training run owns its pools (`RunVerifiers`, rlreason/verify/task_verifier.py: closed when the run
ends); `is_correct` / `verify_batch`, the library convenience API, share a lazily created pool per
(verifier, timeout) that lives until the process exits.
"""

from __future__ import annotations

import threading
from typing import Any

from rlreason.verify.extract import extract_answer
from rlreason.verify.gold import gold_answer, normalize_gold
from rlreason.verify.numeric import NUMBER_FORMATS, parse_number
from rlreason.verify.options import GradingOptions
from rlreason.verify.task_verifier import Judgement, RunVerifiers, TaskVerifier
from rlreason.verify.verifier_pool import VerifierPool

__all__ = [
    "NUMBER_FORMATS",
    "GradingOptions",
    "Judgement",
    "RunVerifiers",
    "TaskVerifier",
    "VerifierPool",
    "extract_answer",
    "gold_answer",
    "is_correct",
    "normalize_gold",
    "parse_number",
    "verify_batch",
]

_LIBRARY_POOLS: dict[tuple[str, float], VerifierPool] = {}
_LIBRARY_LOCK = threading.Lock()


def _library_pool(verifier: str, timeout: float, workers: int = 0) -> VerifierPool:
    """The pool `verify_batch` / `is_correct` share, created on first use (never used by training)."""
    with _LIBRARY_LOCK:
        key = (verifier, timeout)
        if key not in _LIBRARY_POOLS:
            _LIBRARY_POOLS[key] = VerifierPool(verifier, timeout, workers)
        return _LIBRARY_POOLS[key]


def verify_batch(
    responses: list[str],
    golds: list[str],
    verifier: str = "math",
    timeout: float = 5.0,
    workers: int = 0,
    *,
    number_format: str | None = None,
    options: GradingOptions | dict[str, Any] | None = None,
) -> list[bool]:
    """Grade many responses at once (a shared, long-lived pool per verifier and timeout).

    `workers` (0: min(4, CPUs)) applies when that shared pool is first created; keep a `VerifierPool`
    of your own for a different size. `number_format`: see `rlreason.verify.numeric`; `options`: the
    task's `GradingOptions` (tolerance, percent, choices), or a dict of them; `number_format`, when
    given, replaces theirs (default ``"en"``).
    """
    opts = GradingOptions.of(options, number_format=number_format)
    return _library_pool(verifier, timeout, workers).verify(responses, golds, options=opts)


def is_correct(
    response: str,
    gold: str,
    verifier: str = "math",
    timeout: float = 5.0,
    *,
    number_format: str | None = None,
    options: GradingOptions | dict[str, Any] | None = None,
) -> bool:
    """Whether the final answer in `response` equals `gold`. Never raises (bad options, such as an
    unknown `number_format`, are a ValueError: a configuration error, not model output); at most `timeout` s."""
    return verify_batch([response], [gold], verifier, timeout, number_format=number_format, options=options)[0]
