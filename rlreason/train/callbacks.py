"""Callbacks: sample completions and histograms in TensorBoard, periodic evaluation, checkpoints.

Checkpoints hold the Lightning state (`.ckpt`: optimiser, scheduler, step) and the policy in Hugging
Face format (`hf/`, loadable with `from_pretrained`). Both are written to a temporary name and
renamed, so a crash mid-write never leaves a checkpoint that looks complete; only rank zero writes.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


def _tb(trainer: pl.Trainer) -> Any:
    logger = trainer.logger
    return getattr(logger, "experiment", None) if logger is not None else None


class SampleLogger(pl.Callback):
    """Response-length histogram every step; a table of sample completions every N steps."""

    def __init__(self, every_n_steps: int, num_samples: int, histograms: bool = True) -> None:
        self.every, self.num, self.histograms = every_n_steps, num_samples, histograms

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero or getattr(module, "last_batch", None) is None:
            return
        tb = _tb(trainer)
        if tb is None:
            return
        rb, rout = module.last_batch, module.last_reward
        if self.histograms:
            tb.add_histogram("train/response_length", rb.response_lengths.float(), batch_idx)
            rewards = rout.rewards.float()
            if torch.isfinite(rewards).any():  # a skipped non-finite step logs its finite values only
                tb.add_histogram("train/reward", rewards[torch.isfinite(rewards)], batch_idx)
        if self.every and batch_idx % self.every == 0:
            rows = ["| prompt | response | gold | reward |", "|---|---|---|---|"]
            step = max(1, rb.num_samples // max(1, self.num))
            for i in range(0, rb.num_samples, step)[: self.num]:
                cells = [rb.prompts[i], rb.completions[i], rb.golds[i], f"{float(rout.rewards[i]):.3f}"]
                rows.append("| " + " | ".join(_md(c) for c in cells) + " |")
            tb.add_text("samples", "\n".join(rows), batch_idx)


def _md(text: str) -> str:
    return html.escape(text).replace("|", "\\|").replace("\n", "⏎")[:500]


class PeriodicEval(pl.Callback):
    """Evaluates the policy on held-out problems every N steps (and at the start if asked)."""

    def __init__(self, evaluate_fn: Any, every_n_steps: int, at_start: bool) -> None:
        self.evaluate_fn, self.every, self.at_start = evaluate_fn, every_n_steps, at_start

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        if self.at_start and trainer.ckpt_path is None:  # a resumed run evaluated step 0 the first time
            self._run(trainer, module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = batch_idx + 1
        if self.every and step % self.every == 0 and step < trainer.num_training_batches:
            self._run(trainer, module, step)

    def _run(self, trainer: pl.Trainer, module: Any, step: int) -> None:
        summary = self.evaluate_fn(module)
        tb = _tb(trainer)
        if trainer.is_global_zero and tb is not None:
            for k, v in _flatten(summary).items():
                tb.add_scalar(f"eval/{k}", v, step)


class FinalEval(pl.Callback):
    """Evaluates once at the end of training, while the logger and process group are still open
    (so the final `eval/*` scalars land in the run's one event file)."""

    def __init__(self, evaluate_fn: Any, step: int) -> None:
        self.evaluate_fn, self.step = evaluate_fn, step
        self.results: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        self.results, self.records = self.evaluate_fn(module)
        tb = _tb(trainer)
        if trainer.is_global_zero and tb is not None:
            first = next(iter(self.results.values()))
            for k, v in _flatten(first).items():
                tb.add_scalar(f"eval/{k}", v, self.step)
            tb.flush()


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


def checkpoint_state(module: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.policy.state_dict().items()}
