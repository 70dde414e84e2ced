"""Tasks: the lab curriculum (determinism, disjoint splits, traces) and benchmark file errors."""

from __future__ import annotations

import re

import pytest

import rlreason.components  # noqa: F401
from rlreason.errors import DataError, RegistryError
from rlreason.registry import TASKS
from rlreason.tasks.lab_arith import LabArith


def test_lab_is_deterministic_and_seeded():
    a, b, c = LabArith(seed=1), LabArith(seed=1), LabArith(seed=2)
    assert [p.prompt for p in a.problems("train")] == [p.prompt for p in b.problems("train")]
    assert [p.prompt for p in a.problems("test")] != [p.prompt for p in c.problems("test")]


def test_lab_splits_are_disjoint_and_balanced():
    task = LabArith()
    train, test = task.problems("train"), task.problems("test")
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert [p.difficulty for p in test[:6]] == ["easy", "medium", "hard"] * 2
    assert {lv: sum(p.difficulty == lv for p in test) for lv in ("easy", "medium", "hard")} == {
        "easy": 25,
        "medium": 100,
        "hard": 100,
    }


def test_lab_traces_compute_the_gold_answer():
    task = LabArith(redundant_rate=0.5)
    n_redundant = 0
    for p in task.problems("test"):
        assert p.targets["short"] == f"<short>{p.gold}"
        think = p.targets["think"]
        m = re.fullmatch(r"<think>\n((?:[^\n]+\n)+)</think>(\d+)", think)
        assert m and m.group(2) == p.gold
        steps = m.group(1).splitlines()
        for step in steps:  # every step is a true equation
            lhs, rhs = step.split("=")
            x, op, y = re.fullmatch(r"(\d+)([+*])(\d+)", lhs).groups()
            assert (int(x) + int(y) if op == "+" else int(x) * int(y)) == int(rhs)
        if (
            p.difficulty != "easy" and not p.meta["redundant"]
        ):  # answer = last result followed by the first step's units digit
            assert p.gold == steps[-1].split("=")[1] + steps[0].split("=")[1][-1]
        n_redundant += p.meta["redundant"]
        assert len(steps) == (1 if p.difficulty == "easy" else 3) + p.meta["redundant"]
    assert 100 < n_redundant < 200


def test_lab_bad_parameters():
    with pytest.raises(RegistryError, match="levels: unknown level 'expert'"):
        TASKS.build({"name": "lab-arith", "levels": ["easy", "expert"]}, where="task")


def test_malformed_benchmark_line_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": \n{"problem": "x"}\n')
    task = TASKS.build({"name": "math500", "path": str(path)})
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: invalid JSON"):
        task.problems("test")
    skip = TASKS.build({"name": "math500", "path": str(path), "on_error": "skip"})
    assert [p.gold for p in skip.problems("test")] == ["2"] and skip.skipped == 2
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        TASKS.build({"name": "gsm8k", "path": str(tmp_path / "nope.jsonl")}).problems("test")


@pytest.mark.shared_data("aime24")
def test_benchmark_prompt_templates():
    p = TASKS.build({"name": "aime24", "template": "boxed"}).problems("test")[0]
    assert p.prompt.endswith("put your final answer within \\boxed{}.")
    assert TASKS.build({"name": "aime24", "template": "l2t"}).problems("test")[0].prompt.count("<episode_1>") == 1
    with pytest.raises(RegistryError, match="template: unknown template 'fancy'"):
        TASKS.build({"name": "aime24", "template": "fancy"})


def test_paired_sft_builds_both_styles(tmp_path):
    import json

    path = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": "What is 2+3?",
            "long": "Let me add. 2+3=5.\n</think>\n\nThe answer is \\boxed{5}.",
            "short": "\\boxed{5}",
            "gold": "5",
        },
        {"prompt": "What is 6*7?", "long": "6*7 is 42, so \\boxed{42}", "short": "42", "gold": "42"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = TASKS.build({"name": "paired-sft", "path": str(path)}).problems("train")
    assert (
        problems[0].targets["think"].startswith("<think>\nLet me add.") and "</think>" in problems[0].targets["think"]
    )
    assert problems[0].targets["short"] == "<short>\\boxed{5}"
    assert problems[1].targets["think"].endswith("</think>\n\n\\boxed{42}")
    from rlreason.verify import is_correct

    for p in problems:  # both styles verify against the gold answer
        assert all(is_correct(t, p.gold) for t in p.targets.values())
    path.write_text('{"prompt": "x", "long": "y", "gold": "1"}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl:1: missing or non-string field 'short'"):
        TASKS.build({"name": "paired-sft", "path": str(path)}).problems("train")


def test_lab_pools_are_disjoint_and_share_the_test_set():
    sft, rl = LabArith(pool="sft"), LabArith(pool="rl")
    assert not {p.prompt for p in sft.problems("train")} & {p.prompt for p in rl.problems("train")}
    assert [p.prompt for p in sft.problems("test")] == [p.prompt for p in rl.problems("test")]
