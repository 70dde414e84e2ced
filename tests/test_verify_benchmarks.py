"""Every shipped gold answer verifies when boxed, survives an equivalent rewriting, and gold+1 fails."""

from __future__ import annotations

import random

import pytest

import rlreason.components  # noqa: F401
from rlreason.registry import TASKS
from rlreason.verify import VerifierPool, parse_number


@pytest.fixture(scope="module")
def pool():
    with VerifierPool("math", timeout=10.0, workers=2) as p:
        yield p


def wrap(answer: str) -> str:
    return f"Let me work through this carefully.\nSo the final answer is $\\boxed{{{answer}}}$."


@pytest.mark.parametrize(
    "name, n", [("gsm8k", 1319), ("math500", 500), ("minerva_algebra", 1187), ("aime24", 30), ("amc23", 40)]
)
def test_every_gold_verifies_when_boxed(pool, name, n):
    problems = TASKS.build(name).problems("test")
    assert len(problems) == n
    golds = [p.gold for p in problems]
    verdicts = pool.verify([wrap(g) for g in golds], golds)
    failed = [g for g, ok in zip(golds, verdicts) if not ok]
    assert not failed, f"{len(failed)} gold answers rejected, e.g. {failed[:5]}"


@pytest.mark.parametrize("name", ["gsm8k", "math500", "minerva_algebra", "aime24", "amc23"])
def test_numeric_golds_reject_gold_plus_one(pool, name):
    golds = [p.gold for p in TASKS.build(name).problems("test")]
    numeric = [(g, parse_number(g)) for g in golds]
    numeric = [(g, v) for g, v in numeric if v is not None]
    assert numeric
    wrong = [
        str(v + 1) if v.denominator == 1 else f"\\frac{{{v.numerator + v.denominator}}}{{{v.denominator}}}"
        for _, v in numeric
    ]
    verdicts = pool.verify([wrap(w) for w in wrong], [g for g, _ in numeric])
    assert not any(verdicts)


def test_symbolic_golds_reject_a_changed_answer(pool):
    golds = [p.gold for p in TASKS.build("math500").problems("test") if parse_number(p.gold) is None]
    sample = random.Random(0).sample(golds, 40)
    verdicts = pool.verify([wrap(f"{g}+1") for g in sample], sample)
    assert sum(verdicts) == 0, [g for g, v in zip(sample, verdicts) if v]


@pytest.mark.parametrize(
    "response, gold",
    [
        (r"\boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{\frac{1}{2}}", "0.5"),
        (r"\boxed{\dfrac12}", "0.5"),
        (r"\boxed{1,234}", "1234"),
        ("The answer is 1234.", "#### 1,234"),
        (r"\boxed{25}", "025"),
        (r"\boxed{025}", "25"),
        (r"\boxed{27}", 27.0),
        (r"\boxed{27.0}", "27"),
        (r"\boxed{\$18}", "18"),
        (r"\boxed{(x+1)^2}", "x^2+2x+1"),
        (r"\boxed{\sqrt{8}}", r"2\sqrt{2}"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3,\pi/2)"),
        ("<think>\nsteps\n</think>\\boxed{7}", "7"),
        ("<short>42", "42"),
        ("#### 72", "72"),
    ],
)
def test_equivalent_rewritings_are_accepted(pool, response, gold):
    assert pool.verify([response], [gold]) == [True]


@pytest.mark.parametrize(
    "response, gold",
    [
        ("<think>\n6*7=42\n", "42"),  # thinking never closed: no answer
        (r"\boxed{41}", "42"),
        (r"\boxed{1/3}", "0.33"),
        (r"\boxed{x^2}", "x^3"),
        ("no numbers here", "1"),
    ],
)
def test_wrong_or_missing_answers_are_rejected(pool, response, gold):
    assert pool.verify([response], [gold]) == [False]
