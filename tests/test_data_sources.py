"""Data sources: Hugging Face datasets (config names, separate splits, offline), the generic `jsonl`
task, and `minerva_math`.

The Hugging Face dataset is a real local dataset folder laid out like `openai/gsm8k` on the Hub (a
README declaring the configs `main` and `socratic`, each with a train and a test file), loaded by
the real `datasets.load_dataset`; the offline case runs in a subprocess without HF_HUB_OFFLINE and
with the Hub endpoint on a closed local port, so no test touches the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rlreason.components  # noqa: F401
from rlreason.config import load_config
from rlreason.errors import ConfigError, DataError
from rlreason.paths import shared_data_dir
from rlreason.registry import TASKS
from rlreason.verify import is_correct
from rlreason.verify.extract import last_boxed

ROOT = Path(__file__).resolve().parents[1]
GSM8K_README = """---
configs:
- config_name: main
  data_files:
  - {split: train, path: main/train.jsonl}
  - {split: test, path: main/test.jsonl}
- config_name: socratic
  data_files:
  - {split: train, path: socratic/train.jsonl}
  - {split: test, path: socratic/test.jsonl}
---
"""


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gsm8k_like(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gsm8k_hf")
    (root / "README.md").write_text(GSM8K_README)
    for config in ("main", "socratic"):
        write_jsonl(
            root / config / "train.jsonl",
            [{"question": f"{config} train {i}", "answer": f"#### {i}"} for i in range(3)],
        )
        write_jsonl(
            root / config / "test.jsonl",
            [{"question": f"{config} test {i}", "answer": f"#### {10 + i}"} for i in range(2)],
        )
    return root


def test_hf_dataset_with_config_name_and_separate_splits(gsm8k_like, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    spec = {"name": "gsm8k", "hf_dataset": str(gsm8k_like), "hf_config": "main", "hf_train_split": "train"}
    task = TASKS.build({**spec, "template": "plain"})
    assert sorted(task.splits()) == ["test", "train"]
    assert [p.prompt for p in task.problems("train")] == [f"main train {i}" for i in range(3)]
    assert [(p.prompt, p.gold) for p in task.problems("test")] == [("main test 0", "10"), ("main test 1", "11")]
    assert not {p.uid for p in task.problems("train")} & {p.uid for p in task.problems("test")}
    other = TASKS.build({**spec, "hf_config": "socratic", "template": "plain"})
    assert other.problems("test")[0].prompt == "socratic test 0"
    train_only = TASKS.build({**spec, "hf_test_split": None})  # a training set without a test split
    assert train_only.splits() == ["train"] and len(train_only.problems("train")) == 3
    with pytest.raises(ConfigError, match=r"has no split 'test'"):
        train_only.problems("test")
    # no hf_train_split: evaluation only, and no training on the test split
    with pytest.raises(ConfigError, match=r"task\.allow_eval_split_training"):
        TASKS.build({"name": "gsm8k", "hf_dataset": str(gsm8k_like), "hf_config": "main"}).problems("train")


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({}, r"^task\.hf_config: .*Config name is missing.*'main', 'socratic'"),
        ({"hf_config": "nope"}, r"^task\.hf_config: .*'nope' not found"),
        (
            {"hf_config": "main", "hf_test_split": "validation"},
            r"^task\.hf_dataset: .* no split 'validation' \(task\.hf_test_split\)",
        ),
    ],
)
def test_hf_dataset_mistakes_are_one_line_errors(gsm8k_like, monkeypatch, tmp_path, extra, expected):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    with pytest.raises(DataError, match=expected) as err:
        TASKS.build({"name": "gsm8k", "hf_dataset": str(gsm8k_like), **extra}).problems("test")
    assert "\n" not in str(err.value)


OFFLINE_SCRIPT = """
import rlreason.components
from rlreason.errors import DataError
from rlreason.registry import TASKS
try:
    TASKS.build({"name": "math500", "hf_dataset": "someone/not-cached"}).problems("test")
except DataError as exc:
    print("ERROR", exc)
"""


def test_unreachable_hub_fails_at_once_without_retries(tmp_path):
    """Without HF_HUB_OFFLINE, `datasets` retries each request 5 times (about 25 s) before failing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    }
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    env = {k: v for k, v in env.items() if "proxy" not in k.lower()}
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Retry" not in proc.stderr and "Retry" not in proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR task.hf_dataset: cannot load 'someone/not-cached'")
    assert "not reachable" in lines[0]


def test_hf_hub_offline_mode_is_a_one_line_error(tmp_path, monkeypatch):
    """The tests run with HF_HUB_OFFLINE=1 (conftest): an uncached Hub dataset is named in one line."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(
        DataError, match=r"^task\.hf_dataset: cannot load 'someone/x' .*is off \(HF_HUB_OFFLINE\)"
    ) as err:
        TASKS.build({"name": "math500", "hf_dataset": "someone/x", "hf_config": "c"}).problems("test")
    assert "\n" not in str(err.value)


def test_jsonl_task_reads_your_fields_and_answer_format(tmp_path):
    train = write_jsonl(tmp_path / "mine" / "train.jsonl", [{"q": "Add 2 and 3.", "sol": "2+3 = \\boxed{5}"}])
    test = write_jsonl(tmp_path / "mine" / "test.jsonl", [{"q": "Halve 8.", "sol": "\\boxed{4}", "lvl": "easy"}])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"task: {{name: jsonl, path: {test}, train_path: {train}, question_field: q, answer_field: sol, "
        "answer_format: boxed, difficulty_field: lvl, template: plain}\nalgo: {name: sft}\n"
    )
    task = TASKS.build(dict(load_config(cfg).task))
    assert [(p.prompt, p.gold) for p in task.problems("train")] == [("Add 2 and 3.", "5")]
    [p] = task.problems("test")
    assert (p.prompt, p.gold, p.difficulty) == ("Halve 8.", "4", "easy")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"q": "x", "sol": "no box"}])
    with pytest.raises(DataError, match=rf"{bad}:1: no gold answer \(expected a \\boxed\{{\}} in the field 'sol'\)"):
        TASKS.build(
            {"name": "jsonl", "path": str(bad), "question_field": "q", "answer_field": "sol", "answer_format": "boxed"}
        ).problems("test")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("task: {name: jsonl}\n", r"task\.path: task 'jsonl' needs your file"),
        (
            "task: {name: jsonl, path: x.jsonl, answer_format: latex}\n",
            r"task\.answer_format: expected plain \| boxed \| gsm8k",
        ),
        (
            "task: {name: gsm8k, hf_dataset: openai/gsm8k, path: x.jsonl}\n",
            r"task\.hf_dataset: give a Hugging Face dataset or local files",
        ),
        ("task: {name: gsm8k, hf_config: main}\n", r"task\.hf_config: only used with hf_dataset"),
        ("task: {name: math500, hf_split: train}\n", r"task\.hf_split: unknown parameter .*hf_test_split"),
        (
            "task: {name: math500, allow_eval_split_training: 'yes'}\n",
            r"task\.allow_eval_split_training: expected true/false, got .yes.",
        ),
    ],
)
def test_bad_task_sources_fail_at_load(tmp_path, text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.shared_data("minerva_math")
def test_minerva_math_gold_is_the_last_boxed_of_the_solution():
    rows = [json.loads(line) for line in (shared_data_dir() / "minerva_math" / "test.jsonl").read_text().splitlines()]
    task = TASKS.build({"name": "minerva_math", "template": "plain"})
    problems = task.problems("test")
    assert len(problems) == len(rows) == 272 and task.splits() == ["test"]
    assert [p.gold for p in problems] == [last_boxed(r["solution"]) for r in rows]
    assert all(p.prompt == r["problem"] for p, r in zip(problems, rows))
    assert all(is_correct(f"The answer is $\\boxed{{{p.gold}}}$.", p.gold) for p in problems[:20])
