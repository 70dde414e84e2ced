"""Answer extraction and equivalence: `is_correct`, `extract_answer`, `verify_batch`, `VerifierPool`.

Model output is untrusted input: it is never evaluated, symbolic comparisons run in killable worker
processes with a hard timeout, and any failure means "incorrect", never an exception.

Two stages per pair: the registered verifier's `fast` check runs in the caller's process (plain
numbers on both sides, identical strings: no subprocess, microseconds); everything else, every LaTeX
answer included, goes to math-verify in a worker. The number format (`numeric.NUMBER_FORMATS`) is an
explicit per-task option, default ``"en"``; see docs/verification.md for the whole pipeline.
A training loop keeps one `VerifierPool` alive (workers start in about 1 s each); `is_correct` /
`verify_batch` share a module-level pool per (verifier, timeout).
"""

from __future__ import annotations

import os
import threading

from rlreason.registry import VERIFIERS
from rlreason.verify.extract import as_set, boxed_answers, extract_answer, gsm8k_gold
from rlreason.verify.numeric import NUMBER_FORMATS, check_format, parse_number, plain_string
from rlreason.verify.pool import SymbolicPool
from rlreason.verify.verifiers import Verifier, gold_number

__all__ = [
    "NUMBER_FORMATS",
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
    ``"025"`` stays a string and compares equal to ``25`` numerically; a MATH solution's
    ``\\boxed{...}`` (several chained boxes: a set) and a gold written as one ``$...$`` region are
    unwrapped.
    """
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    text = str(gold).strip()
    if "####" in text:
        return gsm8k_gold(text)
    if "\\boxed" in text or "\\fbox" in text:
        return as_set(boxed_answers(text)) or text
    if len(text) > 2 and text[0] == text[-1] == "$" and "$" not in text[1:-1].replace("\\$", ""):
        return text[1:-1].strip()
    return text


def _canonical(answer: str, number_format: str, gold: bool = False) -> str:
    """A plain number in `number_format` rewritten as every reader reads it (``2,5`` -> ``2.5`` under
    ``decimal_comma``), so that math-verify, which knows no formats, gets it unambiguous."""
    if number_format == "en":
        return answer
    value = gold_number(answer, number_format) if gold else parse_number(answer, number_format)
    return answer if value is None else plain_string(value)


class VerifierPool:
    """Grades many (response, gold) pairs; symbolic work goes to `workers` killable processes.

    Keep one alive for a training run (`with VerifierPool() as pool: pool.verify(...)`). Safe to share
    between threads; their symbolic work is served one batch at a time.
    """

    def __init__(
        self, verifier: str = "math", timeout: float = 5.0, workers: int = 0, number_format: str = "en"
    ) -> None:
        self.verifier: Verifier = VERIFIERS.build(verifier, where="verifier")
        self.timeout = timeout
        self.number_format = check_format(number_format)
        self._pool = SymbolicPool(workers or max(1, min(4, os.cpu_count() or 1)), timeout)

    def start(self) -> VerifierPool:
        """Start the worker processes now rather than on the first symbolic answer (about 1 s each)."""
        if self.verifier.symbolic is not None:
            self._pool.start()
        return self

    def verify(
        self, responses: list[str], golds: list[str], *, extract: bool = True, number_format: str | None = None
    ) -> list[bool]:
        """One verdict per pair; `extract=False` treats each response as the bare answer already.

        Plain numbers are decided in this process; the rest run in parallel in the workers, each
        within `timeout` seconds (a timed-out or crashed comparison is False and its worker replaced).
        `number_format` (default: the pool's) says how separators in numbers are read.
        """
        if len(responses) != len(golds):
            raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
        fmt = self.number_format if number_format is None else check_format(number_format)
        results = [False] * len(responses)
        slow: list[tuple[int, tuple[str, str, str]]] = []
        for i, (resp, gold) in enumerate(zip(responses, golds)):
            try:
                pred = extract_answer(resp, fmt) if extract else (resp if isinstance(resp, str) else None)
                if pred is None:
                    continue
                g = normalize_gold(gold)
                verdict = self.verifier.fast(pred, g, fmt)
            except Exception:  # malformed input never stops the caller
                continue
            if verdict is not None:
                results[i] = verdict
            elif self.verifier.symbolic is not None:
                slow.append((i, (self.verifier.symbolic, _canonical(pred, fmt), _canonical(g, fmt, gold=True))))
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
    responses: list[str],
    golds: list[str],
    verifier: str = "math",
    timeout: float = 5.0,
    workers: int = 0,
    *,
    number_format: str = "en",
) -> list[bool]:
    """Grade many responses at once (a shared, long-lived pool per verifier and timeout).

    `workers` (0: min(4, CPUs)) applies when that shared pool is first created; keep a `VerifierPool`
    of your own for a different size. `number_format`: see `rlreason.verify.numeric`.
    """
    return _default_pool(verifier, timeout, workers).verify(responses, golds, number_format=number_format)


def is_correct(
    response: str, gold: str, verifier: str = "math", timeout: float = 5.0, *, number_format: str = "en"
) -> bool:
    """Whether the final answer in `response` equals `gold`. Never raises (an unknown `number_format`
    is a ValueError: a configuration error, not model output); at most `timeout` s."""
    return verify_batch([response], [gold], verifier=verifier, timeout=timeout, number_format=number_format)[0]
