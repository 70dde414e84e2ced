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


@pytest.mark.parametrize(
    "response, expected",
    [
        # a LaTeX region is the answer whole: never its last number
        (r"$\frac{1+\sqrt{5}}{2}$", r"\frac{1+\sqrt{5}}{2}"),
        (r"so $x \geq 7$ holds", r"x \geq 7"),
        (r"We get $$\begin{pmatrix}1\\2\end{pmatrix}$$", r"\begin{pmatrix}1\\2\end{pmatrix}"),
        ("Answer $ \n 9 \n $", None),  # an inline region across lines is malformed LaTeX, not plain text
        # several answers form a set
        (r"\boxed{1}, \boxed{4}, \boxed{9}", r"\{1, 4, 9\}"),
        (r"\boxed{-2} \quad \text{and} \quad \boxed{1}", r"\{-2, 1\}"),
        ("So $x = 1$ or $x = 2$", r"\{x = 1, x = 2\}"),
        # Minerva's sentences, and a stated final answer after an intermediate box
        ("Final Answer: The volume of $V$ is 120. I hope it is correct.", "120"),
        ("Final Answer: The final answer is 12,000,023. I hope it is correct.", "12,000,023"),
        (r"so $\boxed{255}$ in interest. Final Answer: The final answer is $10,455$. I hope", "10,455"),
        ("Final Answer: Jane started growing it 3 hours ago.", "3"),
        ("The answer is 42 apples.", "42"),
        ("The answer is 2 pi", "2 pi"),  # pi is a factor, not a unit
        ("The answer is 1 or 2.", None),  # a hedge
        # plain text: the last word with a digit, only if it is a number
        ("The code is XK7Q2", None),
        ("It is the 42nd", None),
        ("so it is 2^10", None),
        ("The total is 3 + 4", None),
        ("6*7=42.", "6*7=42"),  # nothing but an answer: read whole (math-verify takes the right side)
        ("It costs $18.", "18"),
        ("So she has 137 \\frac{1}{2} apples", "137 \\frac{1}{2}"),  # a mixed number, not its fraction
        ("<hort>4", "4"),  # a broken control tag is markup, not part of a word
        ("3 000 apples", None),  # 3000, or 3 and 000? the default format does not guess
    ],
)
def test_extract_answer_never_decides_on_a_fragment(response, expected):
    assert extract_answer(response) == expected


def test_space_grouped_numbers_need_their_format():
    assert extract_answer("3 000 apples", "space_thousands") == "3000"
    assert extract_answer("It is 2,5 m", "decimal_comma") == "2,5"
    assert extract_answer("It is 2,5", "en") is None


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


@pytest.mark.parametrize(
    "text, expected",
    [
        # hostile 100k-200k character inputs: every delimiter unclosed or chained; extraction runs in the
        # caller's process, so it must stay linear (regions are paired in one pass, boxes matched only
        # up to the next box, box chains capped)
        ("\\boxed{" * 30000, None),
        ("$" * 200000, None),
        ("\\(" * 60000, None),
        ("\\[" * 60000, None),
        ("$x\n" * 60000, None),
        ("\\boxed{1}, " * 18000, "1"),
        ("{" * 100000 + "\\boxed{", None),
        ("The answer is " + "ab " * 60000, None),
        ("1 0001 000" * 10000, None),
        ("\\boxed \n", None),
    ],
)
def test_extraction_of_hostile_input(text, expected):
    assert extract_answer(text) == expected
