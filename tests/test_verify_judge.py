"""The run-owned verifier: `judge` extracts once and agrees with the library API; closing ends the workers."""

from __future__ import annotations

import pytest

from rlreason.tasks.base import Task
from rlreason.verify import RunVerifiers, extract_answer, verify_batch

COMPLETIONS = [
    "<think>\n7*8=56\n</think>56",  # plain number after the think block: decided in-process
    r"so the answer is \boxed{\frac{1}{2}}",  # LaTeX: a symbolic comparison in a worker
    r"\boxed{2\sqrt{2}}",
    "I am not sure.",  # no answer at all
    "The answer is 41.",
    r"$x^2+2x+1$",
    "<short>12",
]
GOLDS = ["56", "0.5", r"\sqrt{8}", "3", "42", "(x+1)^2", "12"]


def test_judge_matches_the_library_verdicts_and_says_which_had_an_answer():
    with RunVerifiers(timeout=10.0) as verifiers:
        verifier = verifiers.get("math")
        judgement = verifier.judge(COMPLETIONS, GOLDS)
        assert verifier(COMPLETIONS, GOLDS) == judgement.correct
    assert judgement.correct == verify_batch(COMPLETIONS, GOLDS, timeout=10.0)
    assert judgement.correct == [True, True, True, False, False, True, True]
    assert judgement.answered == [extract_answer(c) is not None for c in COMPLETIONS]
    assert judgement.answered == [True, True, True, False, True, True, True]


def test_judge_reads_numbers_in_the_tasks_format():
    completions, golds = ["Das Ergebnis ist 2,5", "1.234,5", "2,5"], ["2.5", "1234.5", "25"]
    with RunVerifiers() as verifiers:
        judgement = verifiers.get("math", "decimal_comma").judge(completions, golds)
    assert judgement.correct == verify_batch(completions, golds, number_format="decimal_comma")
    assert judgement.correct == [True, True, False]


def test_tasks_with_one_verifier_share_a_pool_and_closing_ends_its_workers():
    class Comma(Task):
        number_format = "decimal_comma"

    verifiers = RunVerifiers(timeout=10.0)
    plain, comma = verifiers.for_task(Task()), verifiers.for_task(Comma())
    assert plain.pool is comma.pool and comma.number_format == "decimal_comma"
    assert verifiers.get("exact").pool is not plain.pool
    assert plain([r"\boxed{x^2+1}"], ["1+x^{2}"]) == [True]  # symbolic: starts a worker
    processes = [w.proc for w in plain.pool._pool._workers]
    assert processes and all(p.poll() is None for p in processes)
    verifiers.close()
    assert plain.pool.workers_alive == 0 and all(p.poll() is not None for p in processes)


def test_an_error_inside_the_run_still_closes_the_pools():
    with pytest.raises(RuntimeError), RunVerifiers(timeout=10.0) as verifiers:
        verifier = verifiers.get("math")
        assert verifier([r"\boxed{x^2}"], ["x^{2}"]) == [True]
        assert verifier.pool.workers_alive > 0
        raise RuntimeError("the run failed")
    assert verifier.pool.workers_alive == 0


def test_a_misconfigured_number_format_fails_when_the_verifier_is_made():
    with RunVerifiers() as verifiers, pytest.raises(ValueError, match="number_format"):
        verifiers.get("math", "roman")
