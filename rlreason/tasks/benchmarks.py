"""Real benchmarks (GSM8K, MATH-500, MATH, Minerva Algebra, Minerva Math, AIME 24, AMC 23) and `jsonl`.

Each split reads a local JSONL file (default: the shared data folder, see `rlreason.paths`; or the
user's `path` / `train_path`) or one split of a Hugging Face dataset (`hf_dataset`, `hf_config`,
`hf_train_split`, `hf_test_split`) through `datasets`. Only GSM8K ships a train split; the others
are evaluation sets and refuse to be trained on (see `JsonlBenchmark`). A malformed line is an error
naming `file:line` (or, with `on_error: skip`, is skipped and counted in `skipped`). `jsonl` is the
same machinery for the user's own data, with configurable field names and answer format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rlreason.errors import ConfigError, DataError
from rlreason.paths import shared_data_dir
from rlreason.registry import TASKS
from rlreason.tasks.base import Problem, Task
from rlreason.tasks.prompts import TEMPLATES, render
from rlreason.tasks.sources import HFSplit, JsonlFile
from rlreason.verify import GradingOptions, normalize_gold
from rlreason.verify.extract import gsm8k_gold, last_boxed


def _field(name: str) -> Callable[[dict[str, Any]], str | None]:
    def get(row: dict[str, Any]) -> str | None:
        v = row.get(name)
        return None if v is None else normalize_gold(v)

    return get


def _boxed_of(name: str) -> Callable[[dict[str, Any]], str | None]:
    def get(row: dict[str, Any]) -> str | None:
        v = row.get(name)
        return last_boxed(v) if isinstance(v, str) else None

    return get


def _gsm8k(row: dict[str, Any]) -> str | None:
    v = row.get("answer")
    return gsm8k_gold(v) if isinstance(v, str) and "####" in v else None


class JsonlBenchmark(Task):
    """Base for benchmarks stored as JSONL with a question field and a gold-answer rule.

    Splits are explicit: `split_files` names the files a benchmark ships in its data folder (most
    ship only a test split), `path` / `train_path` replace them with the user's own files, and
    `hf_test_split` / `hf_train_split` name the splits of a Hugging Face dataset (`hf_dataset`,
    `hf_config`). A task without a train split refuses `problems("train")`: training on the test
    split would report scores on problems the policy was trained on. `allow_eval_split_training`
    lifts that refusal for deliberate experiments (e.g. overfitting checks). `limit` caps each split.
    `number_format`, `tolerance`, `percent` and `choices` are the task's grading options (default:
    the exact reading; docs/verification.md, "Task options").
    """

    folder: ClassVar[str] = ""
    split_files: ClassVar[dict[str, str]] = {"test": "test.jsonl"}
    question_field: ClassVar[str] = "problem"
    gold_rule: ClassVar[Callable[[dict[str, Any]], str | None]] = staticmethod(_field("answer"))
    gold_desc: ClassVar[str] = "'answer'"
    difficulty_field: ClassVar[str | None] = None

    def __init__(
        self,
        path: str | None = None,
        train_path: str | None = None,
        template: str = "boxed",
        limit: int = 0,
        on_error: str = "raise",
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        hf_train_split: str | None = None,
        hf_test_split: str | None = "test",
        question_field: str | None = None,
        answer_field: str | None = None,
        allow_eval_split_training: bool = False,
        number_format: str | None = None,
        tolerance: float | None = None,
        percent: str | None = None,
        choices: str | None = None,
    ) -> None:
        # grading options (docs/verification.md); a bad value is a one-line error naming its key
        grading = GradingOptions.of(
            GradingOptions.for_task(self),
            number_format=number_format,
            tolerance=tolerance,
            percent=percent,
            choices=choices,
        )
        self.number_format, self.tolerance = grading.number_format, grading.tolerance
        self.percent, self.choices = grading.percent, grading.choices
        if template not in TEMPLATES:
            raise ValueError(f"template: unknown template {template!r} (valid: {', '.join(TEMPLATES)})")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit: expected an integer >= 0 (0 = all), got {limit!r}")
        if not isinstance(allow_eval_split_training, bool):
            raise ValueError(f"allow_eval_split_training: expected true or false, got {allow_eval_split_training!r}")
        if hf_dataset and (path or train_path):
            raise ValueError("hf_dataset: give a Hugging Face dataset or local files (path / train_path), not both")
        if not hf_dataset and (hf_config or hf_train_split):
            raise ValueError(f"{'hf_config' if hf_config else 'hf_train_split'}: only used with hf_dataset")
        self.template, self.limit, self.on_error = template, limit, on_error
        self.allow_eval_split_training = allow_eval_split_training
        self.q_field = question_field or self.question_field
        self.gold = _field(answer_field) if answer_field else type(self).gold_rule
        self.sources = self._sources(path, train_path, hf_dataset, hf_config, hf_train_split, hf_test_split)
        self.skipped = 0
        self._problems: dict[str, list[Problem]] = {}

    def _sources(
        self,
        path: str | None,
        train_path: str | None,
        hf_dataset: str | None,
        hf_config: str | None,
        hf_train_split: str | None,
        hf_test_split: str | None,
    ) -> dict[str, JsonlFile | HFSplit]:
        if hf_dataset:  # hf_test_split: null for a training set without a test split (e.g. DeepScaleR)
            out: dict[str, JsonlFile | HFSplit] = {}
            if hf_test_split:
                out["test"] = HFSplit(hf_dataset, hf_config, hf_test_split, "task.hf_test_split")
            if hf_train_split:
                out["train"] = HFSplit(hf_dataset, hf_config, hf_train_split, "task.hf_train_split")
            return out
        # each file given replaces its split's shipped file; a split not named stays the shipped one
        keys = {"train": "task.train_path", "test": "task.path"}
        out = {split: JsonlFile(self._shipped(split), keys.get(split, "task.path")) for split in self.split_files}
        if path:
            out["test"] = JsonlFile(Path(path), "task.path")
        if train_path:
            out["train"] = JsonlFile(Path(train_path), "task.train_path")
        return out

    def _shipped(self, split: str) -> Path:
        return shared_data_dir() / self.folder / self.split_files.get(split, "test.jsonl")

    def splits(self) -> list[str]:
        return list(self.sources)

    def problems(self, split: str = "test") -> list[Problem]:
        if split not in self.sources:
            if split == "train" and self.allow_eval_split_training:
                split = "test"
            elif split == "train":
                raise ConfigError(
                    f"task.allow_eval_split_training: task '{self.folder}' has no train split (only "
                    f"{', '.join(self.sources)}), and training on its test split would score the policy on problems "
                    f"it was trained on; give task.train_path (or task.hf_train_split), or set "
                    f"task.allow_eval_split_training=true"
                )
            else:
                raise ConfigError(f"task '{self.folder}' has no split '{split}' (splits: {', '.join(self.sources)})")
        if split not in self._problems:  # one cache entry per split: asking for one never returns another
            out = []
            for where, row in self.sources[split].rows(self._fail):
                problem = self._to_problem(where, row, split)
                if problem is not None:
                    out.append(problem)
                if self.limit and len(out) >= self.limit:
                    break
            self._problems[split] = out
        return self._problems[split]

    def _fail(self, message: str) -> None:
        if self.on_error == "skip":
            self.skipped += 1
            return
        raise DataError(message)

    def _to_problem(self, where: str, row: dict[str, Any], split: str = "test") -> Problem | None:
        question = row.get(self.q_field)
        if not isinstance(question, str) or not question.strip():
            self._fail(f"{where}: missing or empty question field '{self.q_field}'")
            return None
        gold = self.gold(row)
        if gold is None or gold == "":
            self._fail(f"{where}: no gold answer (expected {self.gold_desc})")
            return None
        uid = str(row.get("unique_id") or row.get("id") or re.findall(r"\d+", where)[-1])
        # train uids carry the split: a prompt cache keyed by uid must never serve a training prompt
        # for the test problem on the same line of the other file
        uid = uid if split == "test" else f"{split}-{uid}"
        difficulty = row.get(self.difficulty_field) if self.difficulty_field else None
        return Problem(
            uid=f"{self.folder}-{uid}",
            prompt=render(self.template, question),
            gold=gold,
            difficulty=None if difficulty is None else str(difficulty),
            meta={k: row[k] for k in ("subject", "level", "type") if k in row and isinstance(row[k], (str, int))},
        )


@TASKS.register("gsm8k")
class GSM8K(JsonlBenchmark):
    """GSM8K grade-school math (7,473 train / 1,319 test problems); gold is the number after '####'."""

    folder, question_field, gold_desc = "gsm8k", "question", "'answer' ending in '#### n'"
    split_files: ClassVar[dict[str, str]] = {"train": "train.jsonl", "test": "test.jsonl"}
    gold_rule = staticmethod(_gsm8k)


@TASKS.register("math500")
class MATH500(JsonlBenchmark):
    """MATH-500 (Lightman et al.'s split of MATH test, 500 problems), gold in 'answer', level per item."""

    folder, difficulty_field = "math500", "level"


@TASKS.register("math")
class MATH(JsonlBenchmark):
    """Full MATH test set (5,000 problems); gold is the last \\boxed{} of 'solution'."""

    folder, difficulty_field, gold_desc = "math", "level", "a \\boxed{} in 'solution'"
    gold_rule = staticmethod(_boxed_of("solution"))


@TASKS.register("minerva_algebra")
class MinervaAlgebra(JsonlBenchmark):
    """The Algebra subject of MATH test (1,187 problems), as reported by Thinkless."""

    folder, difficulty_field = "minerva_algebra", "level"


@TASKS.register("minerva_math")
class MinervaMath(JsonlBenchmark):
    """Minerva Math (272 MIT OCW STEM problems, L2T's MinervaMATH); gold is the last \\boxed{} of 'solution'."""

    folder, gold_desc = "minerva_math", "a \\boxed{} in 'solution'"
    gold_rule = staticmethod(_boxed_of("solution"))


@TASKS.register("aime24")
class AIME24(JsonlBenchmark):
    """AIME 2024 (30 problems); integer answers, some with leading zeros ('025')."""

    folder = "aime24"


@TASKS.register("amc23")
class AMC23(JsonlBenchmark):
    """AMC 2023 (40 problems); gold stored as a float such as 27.0."""

    folder = "amc23"


ANSWER_FORMATS: dict[str, tuple[Callable[[str], Callable[[dict[str, Any]], str | None]], str]] = {
    "plain": (_field, "the field's value"),
    "boxed": (_boxed_of, "a \\boxed{} in the field"),
    "gsm8k": (lambda name: lambda row: _gsm8k({"answer": row.get(name)}), "the field ending in '#### n'"),
}


@TASKS.register("jsonl")
class JsonlTask(JsonlBenchmark):
    """Your own JSONL file(s): question and answer field names and the answer format are parameters."""

    folder = "jsonl"
    split_files: ClassVar[dict[str, str]] = {}  # nothing shipped: every split is a file you name

    def __init__(
        self,
        path: str | None = None,
        train_path: str | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        answer_format: str = "plain",
        difficulty_field: str | None = None,
        template: str = "boxed",
        limit: int = 0,
        on_error: str = "raise",
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        hf_train_split: str | None = None,
        hf_test_split: str | None = "test",
        allow_eval_split_training: bool = False,
        number_format: str | None = None,
        tolerance: float | None = None,
        percent: str | None = None,
        choices: str | None = None,
    ) -> None:
        if not (path or train_path or hf_dataset):
            raise ValueError("path: task 'jsonl' needs your file (path for the test split, train_path for training)")
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format: expected {' | '.join(ANSWER_FORMATS)}, got {answer_format!r}")
        super().__init__(
            path=path,
            train_path=train_path,
            template=template,
            limit=limit,
            on_error=on_error,
            hf_dataset=hf_dataset,
            hf_config=hf_config,
            hf_train_split=hf_train_split,
            hf_test_split=hf_test_split,
            question_field=question_field,
            allow_eval_split_training=allow_eval_split_training,
            number_format=number_format,
            tolerance=tolerance,
            percent=percent,
            choices=choices,
        )
        rule, desc = ANSWER_FORMATS[answer_format]
        self.gold, self.gold_desc = rule(answer_field), f"{desc} '{answer_field}'"
        self.difficulty_field = difficulty_field
