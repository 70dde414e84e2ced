"""`is_correct` held to other graders' own test suites, and to near misses of our own making.

Fixtures (tests/fixtures/verify/<suite>/, each with SOURCE.txt: repository, path, commit, licence):

- ``math_verify``: the parametrised cases of huggingface/Math-Verify's tests (254 cases);
- ``nemo_skills``: NVIDIA/NeMo-Skills' ``math_equal`` tests, each pair in both directions (64 cases);
- ``graders``: 162 pairs from the tests of MATH's is_equiv, MARIO_EVAL, TRL, open-r1, rllm and
  reward-kit, a third of them held out (chosen by id hash before the verifier was tuned), and of
  verifiers and NeMo-RL, collected after the work (all held out);
- ``adversarial``: near misses (last digit of an expression, a digit in a word, interval ends, sign
  flips, swapped tuples, extra terms, hedges, separators, bare fragments and lists...) that must all be
  graded wrong.

Every case where we disagree with a suite is listed in `KNOWN` with its reason (docs/verification.md
explains each); the tests fail on any new disagreement *and* on any listed one that went away.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlreason.verify import GradingOptions, VerifierPool, extract_answer, is_correct

FIXTURES = Path(__file__).parent / "fixtures" / "verify"
DEFAULT_OPTIONS = {"match_types": ["latex", "expr"], "precision": 6, "strict": True, "allow_set_relation_comp": False}
# Math-Verify's precision=2 (numbers rounded to 2 decimals) is run as a task that wants it sets it: a 1 %
# relative tolerance; its five number-format cases likewise run in their format (and fail under "en")
PRECISION_2 = {"tolerance": 0.01}
FORMAT_CASES = {f"test_all.py::test_number_extraction[{k}]" for k in (2, 5, 6, 7, 17)}

WHY = {
    "set": "a bare comma list is a set (MATH's is_equiv compares strings; its problems say 'enter all solutions')",
    "approx": "an approximation of an exact value: exact by default (the task's tolerance option accepts it)",
    "unit": "a glued short unit (10cm, 10m): math-verify drops units, MARIO_EVAL needs a space before them",
    "parse": "math-verify cannot read one side (escaped LaTeX, cases environment, degrees in a function)",
    "shape": "a column matrix against an interval-like list: different objects",
    "function": "f(x) = ... against y = ...: equations with different left sides",
    "list": "a list or a hedge in prose is no answer (the grader compares every number)",
    "choice": "two letters in one answer or gold are a hedge, no answer (the grader takes the first)",
    "notation": "e-notation in a gold sentence holding two answers",
    "think": "a <think> never closed: no answer (the grader reads the text after it anyway)",
    "language": "a letter after a non-English cue (答案: C) is not read",
}
KNOWN = {
    "math_verify": {
        # the test runs math-verify with an option rlreason does not offer
        "test_all.py::test_set_rel_assymetry[2]": "allow_set_relation_comp=True: x in [-2,7] vs -2 <= x <= 7",
        "test_strict.py::test_strict_variable_comparison[1]": "strict=False: f(x) accepted for f(y)",
    },
    "nemo_skills": {},
    "graders": {
        "math::test_order[0]": WHY["set"],
        "math::test_decimals[0]": WHY["set"],
        "mario::test_are_equal_under_sympy[1]": WHY["approx"],
        "mario::test_is_equiv_real_or_list[8]": WHY["approx"],
        "mario::test_is_equiv_real_or_list[9]": WHY["approx"],
        "mario::test_is_equiv_scinot[0]": WHY["approx"],
        "mario::test_is_equiv_interval[1]": WHY["approx"],
        "mario::test_is_equiv_complex[0]": WHY["parse"],
        "mario::test_is_equiv_units[10]": WHY["unit"],
        "mario::test_is_equiv_units[11]": WHY["unit"],
        "mario::test_is_equiv_expression[0]": WHY["parse"],
        "mario::test_is_equiv_matrix[2]": WHY["parse"],
        "mario::test_is_equiv_matrix[3]": WHY["shape"],
        "mario::test_is_equiv_matrix[4]": WHY["parse"],
        "mario::test_is_equiv_trigonometric[1]": WHY["parse"],
        "mario::test_is_equiv_function[1]": WHY["function"],
        "reward_kit::test_multiple_answers_all_match[0]": WHY["list"],
        "reward_kit::test_answer_with_different_formats[0]": WHY["list"],
        "reward_kit::test_scientific_notation_match[0]": WHY["notation"],
        "reward_kit::test_ambiguous_original_answer_still_compares_first[0]": WHY["choice"],
        "reward_kit::test_both_ambiguous_compares_first[0]": WHY["choice"],
        # collected after the work and measured once (split "fresh")
        "nemo_rl::multi_reward_test_data[2]": WHY["think"],
        "nemo_rl::multichoice_test_data[3]": WHY["language"],
        "nemo_rl::multichoice_test_data[4]": WHY["language"],
    },
}


def load(suite: str) -> list[dict]:
    path = FIXTURES / suite / ("near_misses.jsonl" if suite == "adversarial" else "cases.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def options_of(row: dict, number_format: str | None = None) -> GradingOptions:
    """The task options a case runs under: its number format (or `number_format` for all), Math-Verify's
    precision=2 as a tolerance, and the options a graders case records."""
    opts = dict(row.get("options", {}))
    if row.get("precision") == 2:
        opts.update(PRECISION_2)
    return GradingOptions.of(opts, number_format=number_format or row.get("number_format", "en"))


@pytest.fixture(scope="module")
def pool():
    # a generous timeout: these are ordinary answers, and the 2 cores are shared (a timeout would
    # count as "wrong" and show up as a disagreement)
    with VerifierPool("math", timeout=30.0, workers=2) as p:
        yield p.start()


def grade(pool: VerifierPool, rows: list[dict], gold_is_response: bool, number_format: str | None = None) -> list[bool]:
    """One verdict per case, each under its options. Math-Verify's tests write golds as responses
    (``$9$``, a solution with ``\\boxed``) and parse them as they parse predictions, so there the gold
    goes through the same extraction (the verifier reads every gold that way too)."""
    groups: dict[GradingOptions, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(options_of(r, number_format), []).append(i)
    out: list[tuple[int, bool]] = []
    for opts, idx in groups.items():
        golds = [rows[i]["gold"] for i in idx]
        if gold_is_response:
            golds = [extract_answer(g, opts.number_format) or g for g in golds]
        out += list(zip(idx, pool.verify([rows[i]["response"] for i in idx], golds, options=opts)))
    return [v for _, v in sorted(out)]


@pytest.mark.parametrize("suite", ["math_verify", "nemo_skills", "graders"])
def test_third_party_suite_agreement(pool, suite):
    rows = load(suite)
    verdicts = grade(pool, rows, gold_is_response=suite == "math_verify")
    disagree = {r["id"]: (r["expected"], v) for r, v in zip(rows, verdicts) if v != r["expected"]}
    assert sorted(disagree) == sorted(KNOWN[suite]), {k: v for k, v in disagree.items() if k not in KNOWN[suite]}
    agreement = 1 - len(disagree) / len(rows)
    assert agreement >= (0.85 if suite == "graders" else 0.97), f"{suite}: {agreement:.3f}"
    defaults = [r["id"] for r in rows if all(r.get(k, d) == d for k, d in DEFAULT_OPTIONS.items())]
    n_bad = sum(i in disagree for i in defaults)
    print(
        f"{suite}: {len(rows) - len(disagree)}/{len(rows)} agree ({agreement:.1%}); under the suite's default "
        f"options {len(defaults) - n_bad}/{len(defaults)}"
    )
    assert pool.timeouts == 0


def test_math_verify_suite_under_the_default_number_format(pool):
    """The issue's target: >= 97 % of Math-Verify's own cases with every case read as "en"; the only
    new disagreements are its five cases about other number formats."""
    rows = load("math_verify")
    verdicts = grade(pool, rows, gold_is_response=True, number_format="en")
    disagree = {r["id"] for r, v in zip(rows, verdicts) if v != r["expected"]}
    assert disagree == set(KNOWN["math_verify"]) | FORMAT_CASES
    assert 1 - len(disagree) / len(rows) >= 0.97


def test_held_out_graders_pairs_meet_the_targets(pool):
    """On the held-out third of the graders' pairs: no false "correct", >= 97 % agreement on model-style
    responses and >= 90 % on bare answers."""
    rows = load("graders")
    verdicts = grade(pool, rows, gold_is_response=False)
    held = [(r, v) for r, v in zip(rows, verdicts) if r["split"] == "heldout"]
    assert len(held) >= 40
    assert [r["id"] for r, v in held if v and not r["expected"]] == []
    for style, target in (("model", 0.97), ("bare", 0.90)):
        cases = [(r, v) for r, v in held if r["style"] == style]
        agreement = sum(v == r["expected"] for r, v in cases) / len(cases)
        assert agreement >= target, f"{style}: {agreement:.3f} on {len(cases)} held-out cases"


def test_sources_are_recorded():
    for suite in ("math_verify", "nemo_skills", "graders", "adversarial"):
        source = (FIXTURES / suite / "SOURCE.txt").read_text(encoding="utf-8")
        for field in ("repository:", "commit:", "licence:"):
            assert field in source, f"{suite}/SOURCE.txt lacks '{field}'"


def test_near_misses_have_zero_false_positives(pool):
    rows = load("adversarial")
    assert len(rows) >= 200
    verdicts = pool.verify([r["response"] for r in rows], [r["gold"] for r in rows])
    assert [r for r, v in zip(rows, verdicts) if v] == []
    assert len({r["kind"] for r in rows}) >= 25


def test_near_misses_from_a_worker_thread(pool):
    """The same verdicts when grading runs outside the main thread (math-verify's own SIGALRM timeout
    would fail there); one case per kind keeps it short."""
    import threading

    rows = list({r["kind"]: r for r in load("adversarial")}.values())
    out: list[list[bool]] = []
    t = threading.Thread(
        target=lambda: out.append(pool.verify([r["response"] for r in rows], [r["gold"] for r in rows]))
    )
    t.start()
    t.join(timeout=120)
    assert out == [[False] * len(rows)]


# the table of issue 17: each verdict was wrong before it
ISSUE_TABLE = [
    (r"$\frac{1+\sqrt{5}}{2}$", "2", False, "en"),
    ("The code is XK7Q2", "2", False, "en"),
    ("$[0,4)$", "$(0,4)$", False, "en"),
    (r"so $x \geq 7$ holds", "$x >= 7$", True, "en"),
    (r"$\dfrac{2}{5}$", "2/5", True, "en"),
    (r"$m = \frac{1}{4}$", "1/4", True, "en"),
    (r"$\sqrt2$", r"$\sqrt{2}$", True, "en"),
    (r"\boxed{1}, \boxed{4}, \boxed{9}", "{1, 4, 9}", True, "en"),
    (r"$\begin{pmatrix}1&2\\3&4\end{pmatrix}$", r"$\begin{bmatrix}1&2\\3&4\end{bmatrix}$", True, "en"),
    (r"$\text{even}$", "even", True, "en"),
    ("2,5", "2.5", True, "decimal_comma"),
    ("1 000", "1000", True, "space_thousands"),
]


@pytest.mark.parametrize("response, gold, expected, number_format", ISSUE_TABLE)
def test_issue_table(response, gold, expected, number_format):
    assert is_correct(response, gold, number_format=number_format) is expected


@pytest.mark.parametrize(
    "response, gold, number_format, expected",
    [
        # the default format reads no decimal comma and no space separator: never silently
        ("2,5", "2.5", "en", False),
        ("2,5", "25", "en", False),
        ("1 000", "1000", "en", False),
        ("1 000", "0", "en", False),  # not the fragment "000" either
        (r"$1\,000$", "0", "en", False),  # math-verify's LaTeX parser reads this as 1*000 = 0
        ("1,234", "1234", "en", True),
        (r"$1{,}234$", "1234", "en", True),
        # decimal_comma: ',' is the decimal mark, '.' and spaces group thousands
        ("2,5", "2.5", "decimal_comma", True),
        ("2,5", "25", "decimal_comma", False),
        ("1.234,5", "1234.5", "decimal_comma", True),
        ("1,234", r"\frac{617}{500}", "decimal_comma", True),  # 1.234
        ("1,234", "1234", "decimal_comma", False),
        ("1.234", "1234", "decimal_comma", True),  # a gold is read in the task's format too
        (r"$2{,}5$", "2,5", "decimal_comma", True),
        ("1.5", "1,5", "decimal_comma", True),  # a '.' that cannot group thousands is a decimal point
        # space_thousands
        ("1 000", "1000", "space_thousands", True),
        (r"$1\,000$", "1000", "space_thousands", True),
        ("1 000.5", "1000.5", "space_thousands", True),
        ("2,5", "2.5", "space_thousands", False),
    ],
)
def test_number_formats(response, gold, number_format, expected):
    assert is_correct(response, gold, number_format=number_format) is expected


def test_unknown_number_format_is_a_configuration_error():
    with pytest.raises(ValueError, match="number_format 'de': expected one of en, space_thousands, decimal_comma"):
        is_correct("2,5", "2.5", number_format="de")
