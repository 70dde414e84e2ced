"""Problems and the tasks that produce them.

A `Task` turns a data source (a procedural generator or a benchmark file) into `Problem`s: the
prompt text the model sees (before any chat template), the gold answer, and metadata such as the
difficulty. Tasks with supervised traces (the lab, distillation data) also give SFT targets per
response style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Problem:
    uid: str
    prompt: str
    gold: str
    difficulty: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # SFT targets by style: {"think": "<think>...</think>42", "short": "<short>42"}; empty for RL-only data
    targets: dict[str, str] = field(default_factory=dict)


class Task:
    """Base class for registered tasks (`TASKS`)."""

    # the verifier (`VERIFIERS` name) that grades this task's answers
    verifier: ClassVar[str] = "math"
    # how separators in plain numbers are read (`rlreason.verify.numeric.NUMBER_FORMATS`): "en" (1,234.5),
    # "space_thousands" (1 234.5), "decimal_comma" (1.234,5); never guessed, so set it per task
    number_format: str = "en"
    # the other grading options (`rlreason.verify.GradingOptions`, docs/verification.md): a relative numeric
    # tolerance (0: exact), how a percent sign is read ("either" | "value" | "number") and, for a
    # multiple-choice task, its option letters ("ABCDE"; "" for other tasks)
    tolerance: float = 0.0
    percent: str = "either"
    choices: str = ""
    # text that forces the model to answer now (used by the info-gain reward and episode analysis)
    answer_cue: ClassVar[str] = "</think>"

    def problems(self, split: str) -> list[Problem]:
        """All problems of a split ("train" | "test"), in a fixed order."""
        raise NotImplementedError

    def splits(self) -> list[str]:
        return ["train", "test"]
