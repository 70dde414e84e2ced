"""The lab's redundancy knobs: longer traces that stay correct, with every redundant line marked."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from rlreason.tasks.lab_arith import LabArith
from rlreason.verify import is_correct

FACT = re.compile(r"^(\d+)([+*])(\d+)=(\d+)$")


def trace_lines(think: str) -> list[str]:
    assert think.startswith("<think>\n") and "</think>" in think
    return [line for line in think[len("<think>\n") : think.index("</think>")].split("\n") if line]


def true_fact(line: str) -> bool:
    m = FACT.match(line)
    assert m, f"not an arithmetic step: {line!r}"
    a, op, b, c = m.groups()
    return (int(a) + int(b) if op == "+" else int(a) * int(b)) == int(c)


@pytest.mark.parametrize("seed", [0, 7])
def test_redundant_traces_stay_correct_and_are_marked(seed):
    task = LabArith(seed=seed, redundant_rate=1.0, redundant_max=3, redundant_kinds=["recheck", "detour"])
    problems = task.problems("train")[:600] + task.problems("test")
    counts, kinds_seen = Counter(), Counter()
    for p in problems:
        lines, meta = trace_lines(p.targets["think"]), p.meta
        a, b = meta["a"], meta["b"]
        assert int(p.gold) == (a * b if p.difficulty == "hard" else a + b)
        assert all(true_fact(line) for line in lines)
        assert is_correct(p.targets["think"], p.gold) and is_correct(p.targets["short"], p.gold)
        assert meta["redundant"] and 1 <= meta["redundant_episodes"] <= 3
        assert len(meta["redundant_lines"]) == len(meta["redundant_line_kinds"]) == meta["redundant_episodes"]
        assert meta["steps"] == len(lines) == len(meta["useful_steps"]) + meta["redundant_episodes"]
        marked = set(meta["redundant_lines"])
        # removing the marked lines leaves exactly the useful steps, in order
        assert [line for i, line in enumerate(lines) if i not in marked] == meta["useful_steps"]
        for i, kind in zip(meta["redundant_lines"], meta["redundant_line_kinds"]):
            if kind == "recheck":
                assert lines[i] in meta["useful_steps"] and lines[i] in lines[:i]  # repeats an earlier step
            else:
                assert kind == "detour" and lines[i] not in meta["useful_steps"]
        counts[meta["redundant_episodes"]] += 1
        kinds_seen.update(meta["redundant_line_kinds"])
    assert set(counts) == {1, 2, 3} and set(kinds_seen) == {"recheck", "detour"}


def test_default_lab_keeps_one_recheck_in_a_share_of_traces():
    problems = LabArith(seed=0).problems("train")
    redundant = [p for p in problems if p.meta["redundant"]]
    assert 0.25 < len(redundant) / len(problems) < 0.35
    for p in problems:
        lines = trace_lines(p.targets["think"])
        assert p.meta["redundant_episodes"] == int(p.meta["redundant"])
        if p.meta["redundant"]:
            (i,) = p.meta["redundant_lines"]
            assert p.meta["redundant_line_kinds"] == ["recheck"] and lines[i] == lines[i - 1]
        else:
            assert lines == p.meta["useful_steps"]


def test_no_redundancy_and_bad_knobs():
    assert not any(p.meta["redundant"] for p in LabArith(redundant_rate=0.0).problems("train"))
    with pytest.raises(ValueError, match="redundant_max"):
        LabArith(redundant_max=0)
    with pytest.raises(ValueError, match="redundant_kinds: unknown kind 'detuor'"):
        LabArith(redundant_kinds=["detuor"])


def test_think_only_styles():
    problems = LabArith(styles=["think"]).problems("train")
    assert all(set(p.targets) == {"think"} for p in problems)
    with pytest.raises(ValueError, match="styles"):
        LabArith(styles=["verbose"])
