"""The verifier a run grades with: a task's registered verifier and grading options, over pools the run owns.

`rlreason run` and `rlreason eval` open one `RunVerifiers` and close it when they end, on success,
on an error and on Ctrl-C, which ends its symbolic worker processes with the run; nothing in
training or evaluation grades through a process-wide pool. Tasks that use the same registered
verifier share one `VerifierPool` (its workers serve any number format).

`TaskVerifier.judge` extracts each answer once and reports both what training needs: whether it
is correct and whether there was an answer at all; calling the verifier gives the verdicts alone,
the `fn(responses, golds) -> list[bool]` that rewards and evaluation call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlreason.verify.options import GradingOptions
from rlreason.verify.verifier_pool import VerifierPool, read_answer


@dataclass(frozen=True)
class Judgement:
    """Per completion: `correct` (the verifier's verdict) and `answered` (an answer was extracted)."""

    correct: list[bool]
    answered: list[bool]


class TaskVerifier:
    """Grades a task's completions against its gold answers under the task's grading options."""

    def __init__(self, pool: VerifierPool, options: GradingOptions | str = "en") -> None:
        self.pool = pool
        # a misconfigured task fails before training; a string is a number format (the other options default)
        self.options = options if isinstance(options, GradingOptions) else GradingOptions(number_format=options)

    @property
    def number_format(self) -> str:
        return self.options.number_format

    def judge(self, completions: list[str], golds: list[str]) -> Judgement:
        """Each answer extracted once, then graded; a completion without an answer is incorrect."""
        answers = [read_answer(c, self.options) for c in completions]
        correct = self.pool.verify_answers(answers, golds, options=self.options)
        return Judgement(correct=correct, answered=[a is not None for a in answers])

    def __call__(self, completions: list[str], golds: list[str]) -> list[bool]:
        return self.judge(completions, golds).correct


class RunVerifiers:
    """The verifier pools of one run, one per registered verifier name; `close()` ends their workers.

    `with RunVerifiers() as verifiers: verifier = verifiers.for_task(task)`. Workers start on the first
    answer that needs a symbolic comparison (plain-number tasks never start one).
    """

    def __init__(self, timeout: float = 5.0, workers: int = 0) -> None:
        self.timeout, self.workers = timeout, workers
        self._pools: dict[str, VerifierPool] = {}

    def get(self, verifier: str = "math", options: GradingOptions | str = "en") -> TaskVerifier:
        """The registered `verifier` under `options` (or a number format), on this run's pool for it."""
        if verifier not in self._pools:
            self._pools[verifier] = VerifierPool(verifier, self.timeout, self.workers)
        return TaskVerifier(self._pools[verifier], options)

    def for_task(self, task: Any) -> TaskVerifier:
        """The verifier a task grades with (`task.verifier`), under its grading options."""
        return self.get(task.verifier, GradingOptions.for_task(task))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()

    def __enter__(self) -> RunVerifiers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
