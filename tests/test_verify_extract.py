"""Answer extraction: where the final answer is looked for, and in which order of preference."""

from __future__ import annotations

import pytest

from rlreason.verify import extract_answer, normalize_gold
from rlreason.verify.extract import last_boxed


@pytest.mark.parametrize(
    "response, expected",
    [
        # boxes joined by a separator within 70 characters are one set answer (math-verify's multi-box
        # rule, issue 17): a self-correction this close is a set, which never equals a single gold
        (r"so \boxed{\frac{1}{2}} hmm, actually \boxed{\frac{\sqrt{3}}{2}}.", r"\{\frac{1}{2}, \frac{\sqrt{3}}{2}\}"),
        (r"\boxed{\frac{1}{2}}. " + "Let me check again. " * 4 + r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
        (r"\fbox{12}", "12"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed 5.", "5"),
        (r"\boxed{unbalanced", None),
        ("<think>\nthe answer is 3\n</think>\nThe answer is 4.", "4"),  # after the last </think> only
        ("<think>a</think>b<think>c</think> \\boxed{9}", "9"),
        ("<think>\n6*7=42\n", None),  # thinking never closed: no answer
        ("<short>\n#### 72", "72"),
        ("Janet earns 9*2 = 18 dollars.\n#### 18", "18"),
        ("So the answer is: $x^2+1$.", "x^2+1"),
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),  # Minerva
        ("So the answer is: **42**", "42"),
        ("The final answer is 42, since 6*7=42.", "42"),
        ("The answer is 41, not 42.", "41"),
        ("The answer is 3.5.", "3.5"),  # a decimal point is not the end of the sentence
        ("The answer is \\(x+1\\) here", "x+1"),
        ("We get 12 apples, then 1,234 pears.", "1,234"),  # last number as the fallback
        ("It is not -0.5 but .25", ".25"),
        ("It is -0.5 or .25", None),  # a hedge between two numbers is no answer (it was ".25")
        ("no numbers here", None),
        ("", None),
    ],
)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_extract_answer_non_string_and_huge_input():
    assert extract_answer(None) is None  # type: ignore[arg-type]
    assert extract_answer("x" * 1_000_000 + r"\boxed{7}") == "7"


def test_last_boxed_matches_nested_braces():
    assert last_boxed(r"\boxed{\frac{a}{b}+{c}}") == r"\frac{a}{b}+{c}"
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    "gold, expected",
    [
        ("Natalia sold 48/2 = 24 clips.\n#### 1,234", "1234"),  # GSM8K: full solution, #### at the end
        ("025", "025"),  # AIME: kept as written; compares equal to 25 numerically
        (27.0, "27"),  # AMC stores floats
        ("  \\frac{1}{2} ", r"\frac{1}{2}"),
    ],
)
def test_normalize_gold(gold, expected):
    assert normalize_gold(gold) == expected
