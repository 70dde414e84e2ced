"""Callbacks: sample completions and histograms in TensorBoard, periodic evaluation, checkpoints.

Completions go to the Text tab inside fenced code blocks (TensorBoard renders Markdown: outside a
code block `5*7=35 / 7*7=49` turns into emphasis and LaTeX loses its `_` and `\\`); scalars go to
every configured logger (rlreason/train/loggers.py).

Checkpoints hold the Lightning state (`.ckpt`: optimiser, scheduler, step) and the policy in Hugging
Face format (`hf/`, loadable with `from_pretrained`). Both are written to a temporary name and
renamed, so a crash mid-write never leaves a checkpoint that looks complete; only rank zero writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from rlreason.evaluator import Evaluator
from rlreason.train.loggers import log_hparams, log_scalars, log_text, tensorboard


class SampleLogger(pl.Callback):
    """Response-length histogram every step; sample completions as text every N steps."""

    def __init__(self, every_n_steps: int, num_samples: int, histograms: bool = True) -> None:
        self.every, self.num, self.histograms = every_n_steps, num_samples, histograms

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero or getattr(module, "last_batch", None) is None:
            return
        rb, rout = module.last_batch, module.last_reward
        tb = tensorboard(trainer)
        if self.histograms and tb is not None:
            tb.add_histogram("train/response_length", rb.response_lengths.float(), batch_idx)
            rewards = rout.rewards.float()
            if torch.isfinite(rewards).any():  # a skipped non-finite step logs its finite values only
                tb.add_histogram("train/reward", rewards[torch.isfinite(rewards)], batch_idx)
        if self.every and batch_idx % self.every == 0:
            step = max(1, rb.num_samples // max(1, self.num))
            picked = list(range(0, rb.num_samples, step))[: self.num]
            samples = [(rb.prompts[i], rb.completions[i], rb.golds[i], float(rout.rewards[i])) for i in picked]
            log_text(trainer, "samples", samples_markdown(samples), batch_idx)


def code_block(text: str) -> str:
    """`text` as a fenced Markdown code block, shown verbatim: the fence is longer than any run of
    backticks inside, so no completion can close it early."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def samples_markdown(samples: list[tuple[str, str, str, float]]) -> str:
    """One section per sample: a heading with gold and reward, then prompt + completion verbatim."""
    parts = []
    for k, (prompt, completion, gold, reward) in enumerate(samples):
        gold_line = " ".join(str(gold).split())[:200]
        parts.append(f"**sample {k}** · reward {reward:.3f} · gold:\n\n{code_block(gold_line)}\n")
        parts.append(code_block(f"{prompt}{completion}"[:4000]) + "\n")
    return "\n".join(parts)


class PeriodicEval(pl.Callback):
    """Evaluates the policy on the training task's held-out problems every N steps (and at the start
    if asked) with the run's `Evaluator` (rlreason/evaluator.py); logged as `eval/*`."""

    def __init__(self, evaluator: Evaluator, every_n_steps: int, at_start: bool) -> None:
        self.evaluator, self.every, self.at_start = evaluator, every_n_steps, at_start

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        if self.at_start and trainer.ckpt_path is None:  # a resumed run evaluated step 0 the first time
            self._run(trainer, module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = batch_idx + 1
        if self.every and step % self.every == 0 and step < trainer.num_training_batches:
            self._run(trainer, module, step)

    def _run(self, trainer: pl.Trainer, module: Any, step: int) -> None:
        summary, _ = self.evaluator.evaluate(self.evaluator.task, trainer=trainer)
        if trainer.is_global_zero:
            log_scalars(trainer, {f"eval/{k}": v for k, v in _flatten(summary).items()}, step)


class FinalEval(pl.Callback):
    """Evaluates once at the end of training, while the loggers and process group are still open
    (so the final `eval/*` scalars land in the run's one event file, at the last step trained).

    The first result is the training task (`eval/...`); the others (per-mode rows, `eval.suite`
    tasks) are logged under `eval/<name>/...`. Skipped when the run was interrupted (Ctrl-C).
    `results` holds every summary, `records` the training task's records (eval_samples.jsonl)."""

    def __init__(self, evaluator: Evaluator, interrupt: Any = None, hparams: dict[str, Any] | None = None) -> None:
        self.evaluator, self.interrupt, self.hparams = evaluator, interrupt, hparams
        self.results: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.step = 0

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        if self.interrupt is not None and self.interrupt.interrupted:
            return
        self.step = int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)
        report = self.evaluator.evaluate_all(trainer)
        self.results, self.records = report.results, report.records[0][1]
        if trainer.is_global_zero:
            scalars: dict[str, float] = {}
            for i, (name, summary) in enumerate(self.results.items()):
                prefix = "eval/" if i == 0 else f"eval/{name}/"
                scalars.update({f"{prefix}{k}": v for k, v in _flatten(summary).items()})
            log_scalars(trainer, scalars, self.step)
            if self.hparams is not None:  # the resolved config beside its final metrics (HParams)
                log_hparams(trainer, self.hparams, hparam_metrics(self.results), self.step)
            tb = tensorboard(trainer)
            if tb is not None:
                tb.flush()


def hparam_metrics(results: dict[str, Any]) -> dict[str, float]:
    """`hparam/accuracy`, `hparam/tokens`, `hparam/think_ratio` of the training task, and
    `hparam/<task>/accuracy` for every other evaluated entry (per-mode rows, suite tasks)."""
    out: dict[str, float] = {}
    for i, (name, s) in enumerate(results.items()):
        if not isinstance(s, dict) or "accuracy" not in s:
            continue
        if i == 0:
            out["hparam/accuracy"] = float(s["accuracy"])
            out["hparam/tokens"] = float(s["mean_response_tokens"])
            if s.get("think_ratio") is not None:
                out["hparam/think_ratio"] = float(s["think_ratio"])
        else:
            out[f"hparam/{name}/accuracy"] = float(s["accuracy"])
    return out


class ConfigLogger(pl.Callback):
    """The resolved config as text (`config`, a YAML code block) when a run starts afresh."""

    def __init__(self, config_yaml: str) -> None:
        self.text = config_yaml

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        if trainer.ckpt_path is None:
            log_text(trainer, "config", code_block(self.text), 0)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and v == v:
            out[f"{prefix}{k}"] = float(v)
    return out


def save_hf_policy(module: Any, path: Path) -> None:
    """save_pretrained (model + tokenizer) to `path`, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    module.policy.save_pretrained(tmp, safe_serialization=True)
    module.tokenizer.save_pretrained(tmp)
    from rlreason.policy.lora import save_extras  # LoRA: the adapter above, a merged copy on request

    save_extras(module.policy, tmp, getattr(getattr(module, "cfg", None), "model", {}).get("lora"))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


class Checkpointer(pl.Callback):
    """Every N steps and at the end: `<run>/checkpoints/step-N.ckpt` (+ manifest) and `step-N-hf/`.

    Written to `*.tmp`, flushed, described by a manifest (size + SHA-256), then renamed: a kill at any
    moment leaves either the previous set or a complete new one (see rlreason/train/resume.py). Only
    the newest `keep_last_n` are kept (0 keeps all).
    """

    def __init__(self, run_dir: Path, every_n_steps: int, keep_last_n: int) -> None:
        self.dir = run_dir / "checkpoints"
        self.every, self.keep = every_n_steps, keep_last_n
        self._saved: set[str] = set()  # names written by this process (the last step is saved once)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = batch_idx + 1
        if self.every and step % self.every == 0:
            self.save(trainer, module, step)

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        self.save(trainer, module, trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def save(self, trainer: pl.Trainer, module: Any, step: int, suffix: str = "") -> Path:
        from rlreason.train import faults
        from rlreason.train.resume import fsync_file, write_manifest

        ckpt = self.dir / f"step-{step:06d}{suffix}.ckpt"
        if ckpt.name in self._saved:
            return ckpt
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP/FSDP; rank zero writes
        if trainer.is_global_zero:
            faults.maybe_kill("checkpoint_write", step)  # tests: SIGKILL with only the .tmp on disk
            fsync_file(tmp)
            write_manifest(tmp, ckpt, step)
            tmp.replace(ckpt)
            save_hf_policy(module, self.dir / f"step-{step:06d}{suffix}-hf")
            self._prune()
        self._saved.add(ckpt.name)
        trainer.strategy.barrier()
        return ckpt

    def _prune(self) -> None:
        from rlreason.train.resume import list_checkpoints, manifest_path

        if self.keep <= 0:
            return
        for old in list_checkpoints(self.dir)[: -self.keep]:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)  # sharded (FSDP) or a file
            manifest_path(old).unlink(missing_ok=True)
            shutil.rmtree(old.with_name(old.stem + "-hf"), ignore_errors=True)

