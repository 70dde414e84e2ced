"""The three registered verifiers: `math`, `prm800k` (Thinkless's grader style) and `exact`."""

from __future__ import annotations

import pytest

import rlreason.verify  # noqa: F401  (registers the verifiers)
from rlreason.registry import VERIFIERS
from rlreason.verify import VerifierPool
from rlreason.verify.symbolic import prm800k_normalize


@pytest.mark.parametrize(
    "raw, normalized",
    [
        (r"10\text{ cm}", "10"),
        (r"\text{(B)}", "(B)"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"90^\circ", "90"),
        (r"\$18.00", "18"),
        (r"50\%", "50"),
        (r"\dfrac34", r"\frac{3}{4}"),
        (r"\frac{1}2", r"\frac{1}{2}"),
        (r"2\sqrt3", r"2\sqrt{3}"),
        ("1,234,567", "1234567"),
        ("025", "25"),
        ("27.0", "27"),
        (".5", "0.5"),
        ("x = 5", "5"),
        ("Navin", "navin"),
        (r"\text{Monday}", "monday"),  # a bare \text{} is the answer, not a unit
        (r"\frac{1}{2}\text{ inch}", r"\frac{1}{2}"),
    ],
)
def test_prm800k_normalize(raw, normalized):
    assert prm800k_normalize(raw) == normalized


@pytest.fixture(scope="module")
def prm_pool():
    with VerifierPool("prm800k", timeout=5.0, workers=1) as p:
        yield p.start()


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        (r"\frac{1}{2}", "0.5", True),  # numbers: exact rationals, no sympy
        (r"10\text{ inches}", "10", True),
        (r"\text{(C)}", "C", True),  # choice letters: sympy sees (C) == C
        (r"\text{(C)}", "D", False),
        (r"\text{Monday}", r"\text{Monday}", True),
        (r"\text{Monday}", "Tuesday", False),
        (r"2\sqrt{2}", r"\sqrt{8}", True),  # sympy: simplify(gold - pred) == 0
        ("x^2+2x+1", "(x+1)^2", True),
        (r"(1, \frac{1}{2})", "(1,0.5)", True),  # tuples compared element by element
        ("(1,2)", "[1,2]", False),  # open vs closed interval
        ("x^2", "x^3", False),
        (r"9^{9^{9^{9}}}", "1", False),  # refused before parsing
    ],
)
def test_prm800k_verifier(prm_pool, pred, gold, expected):
    assert prm_pool.verify([pred], [gold], extract=False) == [expected]


def test_verifier_call_interface():
    math, exact = VERIFIERS.build("math"), VERIFIERS.build("exact")
    assert math("0.5", r"\frac{1}{2}") and math(r"2\sqrt{2}", r"\sqrt{8}", timeout=5.0)
    assert not math("0.5001", r"\frac{1}{2}")
    assert exact(" 42. ", "42") and exact("$7$", "7")
    assert not exact("42.0", "42") and not exact(r"\frac12", "0.5")  # no maths, only spacing/markup


def test_exact_verifier_through_the_pool():
    with VerifierPool("exact") as pool:
        assert pool.verify([r"\boxed{1,234}", r"\boxed{1234}"], ["1234", "1234"]) == [False, True]
