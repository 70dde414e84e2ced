"""One evaluator for every evaluation: periodic and final in `rlreason run`, and `rlreason eval`.

An `Evaluator` holds what evaluating a policy takes: the policy, its tokenizer and control tokens,
how a prompt is formatted and tokenized (a `PromptEncoder`, as in training), the settings
(`EvalSettings`), and the tasks with their verifiers: the training task (`task`), its forced modes
with `eval.per_mode`, the `eval.suite` tasks. It generates (rlreason/evaluate.py), verifies and
summarizes; `write_report` (rlreason/evaluate.py) writes `results.json` and `eval_samples.jsonl`.

Under DDP each rank evaluates `problems[rank::world]` and the records are gathered, so every rank
gets the same summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from rlreason.distributed import all_gather_object
from rlreason.evaluate import summarize
from rlreason.policy.prompt_encoder import PromptEncoder
from rlreason.policy.sample_records import EvalSettings, generate_records
from rlreason.tasks.base import Problem, Task


@dataclass
class EvalTask:
    """A task to evaluate: its key in results.json, its problems and the verifier that grades them."""

    key: str
    problems: list[Problem]
    verifier: Callable[[list[str], list[str]], list[bool]]


@dataclass
class EvalReport:
    """Summaries by results key and each evaluation's records, in evaluation order."""

    results: dict[str, Any] = field(default_factory=dict)
    records: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def tagged_records(self) -> list[dict[str, Any]]:
        """Every evaluation's records, each with its results key as `task` (`rlreason eval`'s samples)."""
        return [{"task": key, **r} for key, recs in self.records for r in recs]


class Evaluator:
    """Evaluates one policy on the training task, its forced modes and the suite (module docstring)."""

    def __init__(
        self,
        policy: torch.nn.Module,
        tokenizer: Any,
        control: Any,
        format_prompt: Callable[[str], str],
        settings: EvalSettings,
        task: EvalTask,
        *,
        suite: list[EvalTask] | None = None,
        per_mode: bool = False,
        chat_template: bool = False,
    ) -> None:
        self.policy, self.tokenizer, self.control = policy, tokenizer, control
        self.format_prompt, self.chat_template, self.settings = format_prompt, chat_template, settings
        self.task, self.suite, self.per_mode = task, list(suite or []), per_mode
        self._prompts: dict[str, PromptEncoder] = {}  # per task key: uids are unique within a task only

    @property
    def has_modes(self) -> bool:
        """Whether the policy has `<short>` / `<think>`: summaries then report think ratio and per-mode accuracy."""
        return getattr(self.control, "short_id", None) is not None

    def jobs(self) -> list[tuple[str, EvalTask, str | None]]:
        """(results key, task, forced mode) of a full evaluation: the task, its modes, the suite."""
        out: list[tuple[str, EvalTask, str | None]] = [(self.task.key, self.task, None)]
        if self.per_mode and self.has_modes:
            out += [(f"{self.task.key}[{mode}]", self.task, mode) for mode in ("short", "think")]
        return out + [(t.key, t, None) for t in self.suite]

    def prompts(self, task: EvalTask) -> PromptEncoder:
        """The task's prompt encoder (formatted and tokenized as in training, cached by uid)."""
        if task.key not in self._prompts:
            encoder = PromptEncoder(self.tokenizer, self.format_prompt, chat_template=self.chat_template)
            self._prompts[task.key] = encoder
        return self._prompts[task.key]

    def evaluate(
        self, task: EvalTask, force_mode: str | None = None, trainer: Any = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(summary, records) of one task; under a trainer with several ranks each takes its share."""
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        mine = task.problems[rank::world]
        records = (
            generate_records(
                self.policy,
                self.tokenizer,
                self.control,
                mine,
                [self.prompts(task)(p) for p in mine],
                task.verifier,
                self.settings,
                force_mode=force_mode,
            )
            if mine
            else []
        )
        if world > 1:
            records = [r for part in all_gather_object(records) for r in part]
        return summarize(records, with_modes=self.has_modes), records

    def evaluate_all(self, trainer: Any = None, *, progress: bool = False) -> EvalReport:
        """Every job of `jobs()`; `progress` prints a line to stderr as each starts and ends."""
        report = EvalReport()
        jobs = self.jobs()
        for i, (key, task, mode) in enumerate(jobs):
            where = f"[rlreason] eval [{i + 1}/{len(jobs)}] {key}"
            if progress:
                print(f"{where}: {len(task.problems)} problems ...", file=sys.stderr, flush=True)
            t0 = time.time()
            summary, records = self.evaluate(task, mode, trainer)
            if progress:
                print(
                    f"{where}: accuracy {100 * summary['accuracy']:.1f}% in {time.time() - t0:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
            report.results[key] = summary
            report.records.append((key, records))
        return report


def eval_settings(cfg: DictConfig) -> EvalSettings:
    """The `eval.*` section as `EvalSettings` (`eval.max_new_tokens` 0: the rollout's)."""
    return EvalSettings(
        samples=cfg.eval.samples,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
        batch_size=cfg.eval.batch_size,
        seed=cfg.seed,
        backend=cfg.rollout.backend,
        engine=dict(cfg.rollout.get("vllm", {})),
        model_dtype=cfg.model.dtype,
    )


def eval_subset(problems: list[Problem], n: int) -> list[Problem]:
    """The first `n` problems (`eval.n`; 0: all)."""
    return problems[:n] if n else problems


def suite_tasks(cfg: DictConfig, tasks: list[Task], verifier_for: Callable[[Any], Any]) -> list[EvalTask]:
    """One `EvalTask` per `eval.suite` entry (`tasks`, built from it), its data read now (a missing
    file fails before any training); `verifier_for(task)` gives each its verifier. Keys are task
    names; a name already taken (the training task's or an earlier entry's) gets `_<i>`."""
    out: list[EvalTask] = []
    taken = {str(cfg.task.name)}
    for i, (item, task) in enumerate(zip(cfg.eval.suite, tasks)):
        key = str(item["name"])
        key = f"{key}_{i}" if key in taken else key
        taken.add(key)
        verifier = verifier_for(task)
        out.append(EvalTask(key, eval_subset(task.problems("test"), cfg.eval.n), verifier))
    return out
