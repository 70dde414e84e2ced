"""Real benchmarks: GSM8K, MATH-500, MATH, Minerva Algebra, AIME 24, AMC 23.

Each reads a local JSONL file (default: the shared data folder, see `rlreason.paths`) or a Hugging
Face dataset (`hf_dataset`, `hf_split`) through `datasets`. A malformed line is an error naming
`file:line` (or, with `on_error: skip`, is skipped and counted in `skipped`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from rlreason.errors import DataError
from rlreason.paths import shared_data_dir
from rlreason.registry import TASKS
from rlreason.tasks.base import Problem, Task
from rlreason.tasks.prompts import TEMPLATES, render
from rlreason.verify import normalize_gold
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
    """Base for benchmarks stored as JSONL with a question field and a gold-answer rule."""

    folder: ClassVar[str] = ""
    question_field: ClassVar[str] = "problem"
    gold_rule: ClassVar[Callable[[dict[str, Any]], str | None]] = staticmethod(_field("answer"))
    gold_desc: ClassVar[str] = "'answer'"
    difficulty_field: ClassVar[str | None] = None

    def __init__(
        self,
        path: str | None = None,
        template: str = "boxed",
        limit: int = 0,
        on_error: str = "raise",
        hf_dataset: str | None = None,
        hf_split: str = "test",
        question_field: str | None = None,
        answer_field: str | None = None,
    ) -> None:
        if template not in TEMPLATES:
            raise ValueError(f"template: unknown template {template!r} (valid: {', '.join(TEMPLATES)})")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        self.path = Path(path) if path else shared_data_dir() / self.folder / "test.jsonl"
        self.template, self.limit, self.on_error = template, limit, on_error
        self.hf_dataset, self.hf_split = hf_dataset, hf_split
        self.q_field = question_field or self.question_field
        self.gold = _field(answer_field) if answer_field else type(self).gold_rule
        self.skipped = 0
        self._problems: list[Problem] | None = None

    def splits(self) -> list[str]:
        return ["test"]

    def problems(self, split: str = "test") -> list[Problem]:
        if self._problems is None:
            rows = self._hf_rows() if self.hf_dataset else self._jsonl_rows()
            out = []
            for where, row in rows:
                problem = self._to_problem(where, row)
                if problem is not None:
                    out.append(problem)
                if self.limit and len(out) >= self.limit:
                    break
            self._problems = out
        return self._problems

    def _fail(self, message: str) -> None:
        if self.on_error == "skip":
            self.skipped += 1
            return
        raise DataError(message)

    def _jsonl_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found (task.path, or set RLREASON_DATA)")
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    self._fail(f"{self.path}:{lineno}: invalid JSON ({exc.msg}); expected one object per line")
                    continue
                if not isinstance(row, dict):
                    self._fail(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                    continue
                yield f"{self.path}:{lineno}", row

    def _hf_rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        import datasets

        try:
            ds = datasets.load_dataset(self.hf_dataset, split=self.hf_split)
        except Exception as exc:
            raise DataError(
                f"task.hf_dataset: cannot load '{self.hf_dataset}' ({str(exc).splitlines()[0][:160]})"
            ) from None
        for i, row in enumerate(ds):
            yield f"{self.hf_dataset}[{i}]", dict(row)

    def _to_problem(self, where: str, row: dict[str, Any]) -> Problem | None:
        question = row.get(self.q_field)
        if not isinstance(question, str) or not question.strip():
            self._fail(f"{where}: missing or empty question field '{self.q_field}'")
            return None
        gold = self.gold(row)
        if gold is None or gold == "":
            self._fail(f"{where}: no gold answer (expected {self.gold_desc})")
            return None
        uid = str(row.get("unique_id") or row.get("id") or where.rsplit(":", 1)[-1])
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
    """GSM8K grade-school math (1,319 test problems); gold is the number after '####'."""

    folder, question_field, gold_desc = "gsm8k", "question", "'answer' ending in '#### n'"
    gold_rule = staticmethod(_gsm8k)

    def splits(self) -> list[str]:
        return ["train", "test"]

    def problems(self, split: str = "test") -> list[Problem]:
        if split == "train" and self.path.name == "test.jsonl":
            self.path = self.path.with_name("train.jsonl")
            self._problems = None
        return super().problems(split)


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


@TASKS.register("aime24")
class AIME24(JsonlBenchmark):
    """AIME 2024 (30 problems); integer answers, some with leading zeros ('025')."""

    folder = "aime24"


@TASKS.register("amc23")
class AMC23(JsonlBenchmark):
    """AMC 2023 (40 problems); gold stored as a float such as 27.0."""

    folder = "amc23"
