"""Splits cannot leak: each split reads its own source, and an eval-only task is not trained on.

Real files: the shipped GSM8K train/test files (skipped when absent) and small JSONL files written
here; the refusal goes through the real CLI, before any model would load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlreason.components  # noqa: F401
from rlreason.cli import main
from rlreason.errors import ConfigError
from rlreason.paths import shared_data_dir
from rlreason.registry import TASKS


def _questions(path: Path, field: str = "question") -> list[str]:
    return [json.loads(line)[field] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.shared_data("gsm8k")
def test_gsm8k_test_split_is_the_test_file_after_the_train_split_was_read():
    """The training loop reads "train" first; "test" must still be the 1,319 test problems."""
    task = TASKS.build({"name": "gsm8k", "template": "plain"})
    train, test = task.problems("train"), task.problems("test")
    folder = shared_data_dir() / "gsm8k"
    assert [p.prompt for p in train] == _questions(folder / "train.jsonl")
    assert [p.prompt for p in test] == _questions(folder / "test.jsonl")
    assert (len(train), len(test)) == (7473, 1319)
    assert not {p.uid for p in train} & {p.uid for p in test}  # a prompt cache keyed by uid cannot mix them
    assert task.splits() == ["train", "test"] and task.problems("train") is train  # cached per split


def test_own_train_and_test_files_are_separate_splits(tmp_path):
    test = write_jsonl(tmp_path / "test.jsonl", [{"problem": "1+1?", "answer": "2"}])
    train = write_jsonl(
        tmp_path / "train.jsonl", [{"problem": "2+3?", "answer": "5"}, {"problem": "4+4?", "answer": "8"}]
    )
    task = TASKS.build({"name": "math500", "path": str(test), "train_path": str(train), "template": "plain"})
    assert sorted(task.splits()) == ["test", "train"]
    assert [p.gold for p in task.problems("train")] == ["5", "8"]
    assert [p.gold for p in task.problems("test")] == ["2"]


def test_eval_only_task_refuses_training_unless_allowed(tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", [{"problem": "1+1?", "answer": "2"}])
    task = TASKS.build({"name": "math500", "path": str(data)})
    assert task.splits() == ["test"]
    with pytest.raises(
        ConfigError, match=r"^task\.allow_eval_split_training: task 'math500' has no train split"
    ) as err:
        task.problems("train")
    assert "\n" not in str(err.value)
    allowed = TASKS.build({"name": "math500", "path": str(data), "allow_eval_split_training": True})
    assert [p.gold for p in allowed.problems("train")] == ["2"]


def test_run_on_an_eval_only_task_exits_2_before_the_model_loads(tmp_path, capsys):
    """`model.name_or_path` does not exist: had the model loaded first, the error would name it."""
    data = write_jsonl(tmp_path / "test.jsonl", [{"problem": "1+1?", "answer": "2"}])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"name: leak\nmodel: {{name_or_path: {tmp_path / 'no-model'}}}\n"
        f"task: {{name: math500, path: {data}}}\nalgo: {{name: sft}}\n"
    )
    assert main(["run", str(cfg), f"logging.dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task.allow_eval_split_training" in err and "no-model" not in err
    assert not (tmp_path / "runs").exists()


def test_missing_data_line_error_comes_before_the_model_and_the_stage(tmp_path, capsys):
    """A malformed line of the RL task's train file fails before its init.from stage trains."""
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": \n', encoding="utf-8")
    test = write_jsonl(tmp_path / "test.jsonl", [{"problem": "1+1?", "answer": "2"}])
    stage = tmp_path / "stage.yaml"
    stage.write_text(
        f"name: stage\nmodel: {{name_or_path: {tmp_path / 'no-model'}}}\nalgo: {{name: sft}}\n"
        "optim: {steps: 1, batch_size: 2}\ntask: {name: lab-arith, n_train_per_level: 5, n_test_per_level: 1}\n"
    )
    rl = tmp_path / "rl.yaml"
    rl.write_text(
        f"name: rl\ninit: {{from: stage.yaml}}\ntask: {{name: math500, path: {test}, train_path: {bad}}}\n"
        "algo: {name: grpo}\n"
    )
    assert main(["run", str(rl), f"logging.dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:2: invalid JSON" in err
    assert not (tmp_path / "runs").exists()  # neither the stage nor the run started
