"""`VerifierPool`: grade many (response, gold) pairs, symbolic work in killable worker processes.

Two stages per pair: the registered verifier's `fast` check runs in the caller's process (plain
numbers on both sides, identical strings: no subprocess, microseconds); everything else goes to the
verifier's symbolic comparison in a worker (rlreason/verify/pool.py). Any failure is "incorrect".
"""

from __future__ import annotations

import os
from typing import Any

from rlreason.registry import VERIFIERS
from rlreason.verify.choice import extract_choice
from rlreason.verify.extract import extract_answer
from rlreason.verify.gold import gold_answer
from rlreason.verify.numeric import parse_number, plain_string
from rlreason.verify.options import GradingOptions
from rlreason.verify.pool import SymbolicPool
from rlreason.verify.verifiers import Verifier, gold_number


def read_answer(response: str, options: GradingOptions | str = "en") -> str | None:
    """The final answer in a response (a letter in a multiple-choice task), None when there is none;
    malformed input is no answer, not an error. `options`: the task's options, or a number format."""
    opts = options if isinstance(options, GradingOptions) else GradingOptions(number_format=options)
    try:
        if opts.choices:
            return extract_choice(response, opts.choices)
        return extract_answer(response, opts.number_format)
    except Exception:
        return None


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
        self,
        verifier: str = "math",
        timeout: float = 5.0,
        workers: int = 0,
        number_format: str = "en",
        *,
        options: GradingOptions | dict[str, Any] | None = None,
    ) -> None:
        self.verifier: Verifier = VERIFIERS.build(verifier, where="verifier")
        self.timeout = timeout
        self.options = GradingOptions.of(options, number_format=None if number_format == "en" else number_format)
        self._pool = SymbolicPool(workers or max(1, min(4, os.cpu_count() or 1)), timeout)

    @property
    def number_format(self) -> str:
        return self.options.number_format

    def _options(self, options: GradingOptions | dict[str, Any] | None, number_format: str | None) -> GradingOptions:
        """The pool's options, replaced by `options` where given, its number format by `number_format`."""
        if options is None and number_format is None:
            return self.options
        return GradingOptions.of(self.options if options is None else options, number_format=number_format)

    def start(self) -> VerifierPool:
        """Start the worker processes now rather than on the first symbolic answer (about 1 s each)."""
        if self.verifier.symbolic is not None:
            self._pool.start()
        return self

    def verify(
        self,
        responses: list[str],
        golds: list[str],
        *,
        extract: bool = True,
        number_format: str | None = None,
        options: GradingOptions | dict[str, Any] | None = None,
    ) -> list[bool]:
        """One verdict per pair; `extract=False` treats each response as the bare answer already.

        Plain numbers are decided in this process; the rest run in parallel in the workers, each
        within `timeout` seconds (a timed-out or crashed comparison is False and its worker replaced).
        `options` (default: the pool's) are the task's `GradingOptions`; `number_format` replaces theirs.
        """
        if len(responses) != len(golds):
            raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
        opts = self._options(options, number_format)
        if extract:
            answers = [read_answer(r, opts) for r in responses]
        else:
            answers = [r if isinstance(r, str) else None for r in responses]
        return self.verify_answers(answers, golds, options=opts)

    def verify_answers(
        self,
        answers: list[str | None],
        golds: list[str],
        *,
        number_format: str | None = None,
        options: GradingOptions | dict[str, Any] | None = None,
    ) -> list[bool]:
        """`verify` of answers already extracted (`read_answer`); a None answer is incorrect. Each gold
        is read by the same extraction (`gold_answer`)."""
        if len(answers) != len(golds):
            raise ValueError(f"{len(answers)} answers but {len(golds)} gold answers")
        opts = self._options(options, number_format)
        fmt = opts.number_format
        results = [False] * len(answers)
        slow: list[tuple[int, tuple[str, str, str, float]]] = []
        for i, (pred, gold) in enumerate(zip(answers, golds)):
            if pred is None:
                continue
            try:
                g = gold_answer(gold, opts)
                verdict = self.verifier.fast(pred, g, opts)
            except Exception:  # malformed input never stops the caller
                continue
            if verdict is not None:
                results[i] = verdict
            elif self.verifier.symbolic is not None:
                item = (self.verifier.symbolic, _canonical(pred, fmt), _canonical(g, fmt, gold=True), opts.tolerance)
                slow.append((i, item))
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
