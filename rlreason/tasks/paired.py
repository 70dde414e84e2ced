"""`paired-sft`: Thinkless warm-up data from paired answers (a reasoning model's long answer and an
instruct model's short answer per prompt), both styles per prompt so the two modes start balanced.

Input JSONL, one object per line (field names configurable): ``prompt``, ``long``, ``short``,
``gold``. Targets:

- ``think``: ``<think>`` + the long answer. A reasoning model's answer already contains ``</think>``
  followed by its final answer and is kept as is; one without it becomes the reasoning, closed by
  ``</think>`` and followed by its last ``\\boxed{}`` (or the gold answer) as the answer region.
- ``short``: ``<short>`` + the short answer.

The paper distils from DeepSeek-R1-Distill (long) and Qwen2.5-Math-Instruct (short) on the same
prompts; the lab builds the same pairs itself (`lab-arith` targets).
"""

from __future__ import annotations

from pathlib import Path

from rlreason.errors import DataError
from rlreason.registry import TASKS
from rlreason.tasks.base import Problem, Task
from rlreason.tasks.prompts import TEMPLATES, render
from rlreason.tasks.sources import JsonlFile, stop_at_first
from rlreason.verify.extract import last_boxed


def think_target(long: str, gold: str) -> str:
    long = long.strip()
    if long.startswith("<think>"):
        long = long[len("<think>") :].lstrip("\n")
    if "</think>" in long:
        return "<think>\n" + long
    answer = last_boxed(long) or gold
    return f"<think>\n{long}\n</think>\n\n\\boxed{{{answer}}}"


@TASKS.register("paired-sft")
class PairedSFT(Task):
    """Control-token SFT data from paired long (reasoning) and short (instruct) answers in a JSONL file."""

    def __init__(
        self,
        path: str,
        template: str = "plain",
        prompt_field: str = "prompt",
        long_field: str = "long",
        short_field: str = "short",
        gold_field: str = "gold",
        test_fraction: float = 0.0,
    ) -> None:
        if template not in TEMPLATES:
            raise ValueError(f"template: unknown template {template!r} (valid: {', '.join(TEMPLATES)})")
        if not 0 <= test_fraction < 1:
            raise ValueError(f"test_fraction: expected a value in [0, 1), got {test_fraction}")
        self.path, self.template, self.test_fraction = Path(path), template, test_fraction
        self.fields = (prompt_field, long_field, short_field, gold_field)
        self._problems: list[Problem] | None = None

    def _load(self) -> list[Problem]:
        out = []
        for where, row in JsonlFile(self.path, "task.path").rows(stop_at_first):
            missing = [k for k in self.fields if not isinstance(row.get(k), str)]
            if missing:
                raise DataError(f"{where}: missing or non-string field '{missing[0]}'")
            prompt, long, short, gold = (row[k] for k in self.fields)
            out.append(
                Problem(
                    uid=f"paired-{where.rpartition(':')[2]}",  # the line number
                    prompt=render(self.template, prompt),
                    gold=gold.strip(),
                    targets={"think": think_target(long, gold), "short": "<short>" + short.strip()},
                )
            )
        return out

    def problems(self, split: str) -> list[Problem]:
        if self._problems is None:
            self._problems = self._load()
        n_test = round(self.test_fraction * len(self._problems))
        return (
            self._problems[len(self._problems) - n_test :]
            if split == "test"
            else self._problems[: len(self._problems) - n_test]
        )

