"""Answer forms other graders accept (issue 25): responses that are only the answer, golds with units or
in a sentence, \\bmod, mixed numbers, times of day, and the per-task options (tolerance, percent,
multiple choice), each with the near miss it must still reject."""

from __future__ import annotations

import pytest

from rlreason.verify import GradingOptions, RunVerifiers, VerifierPool, extract_answer, gold_answer
from rlreason.verify.choice import extract_choice


@pytest.fixture(scope="module")
def pool():
    with VerifierPool("math", timeout=30.0, workers=1) as p:
        yield p.start()


def grade(pool, response, gold, **options):
    return pool.verify([response], [gold], options=options)[0]


@pytest.mark.parametrize(
    "response, expected",
    [
        ("(x-2)(x+2)", "(x-2)(x+2)"),
        (r"\frac34i", r"\frac34i"),
        ("y = 2x + 3", "y = 2x + 3"),
        ("[0.5, 1]", "[0.5, 1]"),  # not its last element
        ("1, 2, 3", "1, 2, 3"),
        ("4210_7", "4210_7"),
        (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"),
        ("(C)", "(C)"),
        ("even", "even"),
        ("10 square units", "10"),
        ("10weeks", "10"),
        ("10 cm^2", "10"),
        (r"\boxed{17 \bmod 5 = 2}", "2"),
        # prose keeps the old rules, and a list in it is no answer
        ("It is 3 or 4", None),
        ("The values are 1, 2, 3", None),
        ("The point is (3, 4).", None),
        ("The answers are 4 and 12.", None),
        ("She used 1 1/2 cups", "1 1/2"),  # a mixed number, not its fraction
        ("The code is XK7Q2", None),
        # a LaTeX region followed by other numbers: the concluding sentence's number, else none
        (r"so $d = \frac{90}{n}$ works. Therefore, there are 12 sequences.", "12"),
        (r"The equation is $x=\frac{1}{4}$. Some other numbers are 1, 2, 3.", None),
    ],
)
def test_whole_response_and_list_extraction(response, expected):
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    "response, gold, expected",
    [
        (r"\frac34i", r"\frac{3}{4}i", True),
        ("(x-2)(x+2)", r"\left(x+2\right)\left(x-2\right)", True),
        (r"10\sqrt3 + \sqrt{4}", r"10\sqrt{3} + 2", True),
        ("2^6 3^5 5^4", "2^6 * 3^5 * 5^4", True),
        ("y = 2x + 3", "2x + 3", True),  # a bare-value gold: the right side decides
        ("x = 3", "3", True),
        (r"\cos(x)=\frac{42}{59}", r"\sin(x)=\frac{42}{59}", False),  # both sides kept
        ("[0.5, 1]", "1", False),
        ("1, 2, 3", "3", False),
        ("C", "(C)", True),
        # golds with units or written as a sentence
        ("10", "10 weeks", True),
        ("10", "10weeks", True),
        ("10", "10 cm^2", True),
        ("10000", "answer is 10000", True),
        ("4", "The number is 4.", True),
        ("100", "10 weeks", False),
        ("14", "The number is 4.", False),
        # \bmod, mixed numbers, times of day
        (r"\boxed{17 \bmod 5 = 2}", "2", True),
        (r"17 \bmod 5 = 3", "3", False),  # a false statement is no residue
        ("1 1/2", "1.5", True),
        (r"1\frac12", "1.5", True),
        ("2 1/2", "2", False),
        ("20:34", r"08:34 \text{P.M.}", True),
        ("20:34", "20:34:00", True),
        ("20:34", "20:43", False),
    ],
)
def test_answer_forms(pool, response, gold, expected):
    assert grade(pool, response, gold) is expected


def test_a_labelled_option_gold_is_kept_for_its_letter(pool):
    assert gold_answer("C. x = 42") == "C. x = 42"
    assert grade(pool, "C", "C. x = 42") is True
    assert grade(pool, "D", "C. x = 42") is False


@pytest.mark.parametrize(
    "response, gold, percent, expected",
    [
        (r"75\%", "0.75", "either", True),  # default: math-verify's rule, both readings
        (r"75\%", "75", "either", True),
        (r"75\%", "0.75", "value", True),  # the sign divides by 100
        (r"75\%", "75", "value", False),
        ("0.75", r"75\%", "value", True),
        (r"75\%", "75", "number", True),  # the sign is dropped
        (r"75\%", "0.75", "number", False),
        (r"0.75\%", "0.75", "value", False),
    ],
)
def test_percent_option(pool, response, gold, percent, expected):
    assert grade(pool, response, gold, percent=percent) is expected


@pytest.mark.parametrize(
    "response, gold, tolerance, expected",
    [
        ("1.732", r"\sqrt3", 0.0, False),  # exact by default
        ("1.732", r"\sqrt3", 1e-3, True),
        (r"\boxed{3.14}", "3.14159", 0.0, False),
        (r"\boxed{3.14}", "3.14159", 0.01, True),
        ("3", r"\pi", 0.01, False),  # a tolerance is no licence for a different number
        ("0", "0.001", 0.1, False),  # a gold of 0 or an answer of 0 is matched exactly
        (r"\begin{pmatrix} 0.33 & 1 \end{pmatrix}", r"\begin{pmatrix} \frac13 & 1 \end{pmatrix}", 0.01, True),
        (r"\begin{pmatrix} 0.33 & 1 \end{pmatrix}", r"\begin{pmatrix} \frac13 & 1 \end{pmatrix}", 0.0, False),
        ("(0.6, 2.6667]", r"(\frac35, \frac83]", 0.01, True),
        ("[0.6, 2.6667]", r"(\frac35, \frac83]", 0.01, False),  # ends still open / closed
        ("(1.732, 2)", r"(\sqrt3, 2)", 1e-3, True),
        ("(2, 1.732)", r"(\sqrt3, 2)", 1e-3, False),  # order still counts
    ],
)
def test_tolerance_option(pool, response, gold, tolerance, expected):
    assert grade(pool, response, gold, tolerance=tolerance) is expected


@pytest.mark.parametrize(
    "response, expected",
    [
        ("C", "C"),
        ("(C)", "C"),
        ("c", "C"),
        (r"so it is \boxed{C}", "C"),
        (r"\boxed{\text{(C)}}", "C"),
        ("The answer is C", "C"),
        ("After analyzing, answer: D", "D"),
        ("The answer is definitely (D).", "D"),
        ("I think **B** is correct", "B"),
        ("My choice is C.", "C"),
        ("C. x = 42", "C"),
        ("It could be (A) or maybe (B).", None),  # a hedge
        ("The answer is a prime", None),  # an article is no choice
        ("The answer is F", None),  # not one of the task's letters
        ("<think>(A)</think>", None),
    ],
)
def test_extract_choice(response, expected):
    assert extract_choice(response, "ABCDE") == expected


def test_multiple_choice_task_grades_letters(pool):
    responses = ["The answer is C", r"\boxed{C}", "(C)", "It could be (C) or (D)", "The answer is 42.", "(B)"]
    verdicts = pool.verify(responses, ["C"] * 5 + ["The answer is (B)."], options={"choices": "ABCDE"})
    assert verdicts == [True, True, True, False, False, True]


def test_task_options_reach_the_verifier():
    class Task:
        verifier = "math"
        choices = "ABCD"
        tolerance = 0.01

    with RunVerifiers(timeout=30.0, workers=1) as verifiers:
        verifier = verifiers.for_task(Task())
        assert verifier.options == GradingOptions(choices="ABCD", tolerance=0.01)
        judgement = verifier.judge(["The answer is (B).", "So \\boxed{A}", "I do not know"], ["B", "C", "A"])
    assert judgement.correct == [True, False, False]
    assert judgement.answered == [True, True, False]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tolerance": -1}, "tolerance: expected a number from 0 (exact) to 0.1, got -1"),
        ({"tolerance": "1e-3"}, "tolerance: expected a number"),
        ({"percent": "ratio"}, "percent: expected one of either, value, number, got 'ratio'"),
        ({"choices": "abc"}, "choices: expected the option letters in capitals"),
        ({"number_format": "de"}, "number_format 'de': expected one of en, space_thousands, decimal_comma"),
        ({"tolerence": 0.1}, "grading options: unknown key 'tolerence'"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_key(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        GradingOptions.of(options)
    assert "\n" not in str(err.value)


def test_jsonl_task_takes_the_options(tmp_path):
    import rlreason.components  # noqa: F401  (registers the tasks)
    from rlreason.errors import RegistryError
    from rlreason.registry import TASKS

    data = tmp_path / "mc.jsonl"
    data.write_text('{"question": "Pick one", "answer": "B"}\n', encoding="utf-8")
    task = TASKS.build("jsonl", path=str(data), choices="ABCD", percent="value")
    assert GradingOptions.for_task(task) == GradingOptions(choices="ABCD", percent="value")
    with pytest.raises(RegistryError, match=r"tolerance: expected a number from 0 \(exact\) to 0.1, got 2"):
        TASKS.build("jsonl", path=str(data), tolerance=2)


def test_a_number_format_and_other_options_combine():
    from rlreason.verify import is_correct

    assert is_correct("2,5", "2.5", number_format="decimal_comma", options={"tolerance": 0.01}) is True
    assert is_correct("2,5", "2.5", options={"number_format": "decimal_comma", "percent": "value"}) is True
    assert is_correct("2,5", "2.5", options={"tolerance": 0.01}) is False  # "en": 2,5 is no number
    with VerifierPool(number_format="decimal_comma", options={"tolerance": 0.01}) as p:
        assert p.options == GradingOptions(number_format="decimal_comma", tolerance=0.01)


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        ("<short>1\n1", "1", True),  # a lab policy repeating its answer on a new line (a sampled GRPO rollout)
        ("12\n12", "12", True),
        ("3\n12", "12", True),  # separate lines: the last one, as the prose rules read it
        ("3\n12", "3", False),
    ],
)
def test_separate_answer_lines_are_not_read_as_one_expression(pool, response, gold, expected):
    assert grade(pool, response, gold) is expected
