"""The console during a run: one start line, a progress bar per RL step, no third-party chatter.

Lightning's default bar reads `Epoch 0/0 ... v_num: on_0` (rlreason runs one "epoch" of exactly
`optim.steps` steps); this one names the step, shows the main metrics under short names, and tqdm's
elapsed time and ETA. Lightning's device lines (GPU/TPU/HPU available), its LitLogger/litmodels tips
and the deprecation that its own pytree helper triggers under newer torch are not about the user's
run, so they are silenced here (warnings Lightning gives about the user's settings still show).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import TQDMProgressBar

from rlreason.policy.control_tokens import ControlTokens

# progress-bar name for each metric shown (module._log_metrics puts them on the bar)
SHORT_NAMES = {
    "train/reward_mean": "reward",
    "train/accuracy": "acc",
    "train/loss": "loss",
    "mode/think_ratio": "think",
    "train/response_len_mean": "len",
}


class StepProgressBar(TQDMProgressBar):
    """`RL step 12/60 [00:31<01:34, reward=0.41, acc=0.62, think=0.55]`."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    @property
    def train_description(self) -> str:
        return self.label

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        # Lightning's version shows "Epoch 0" (one epoch is the whole run): the same, under our label
        from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf

        bar = self.train_progress_bar
        bar.set_description(self.label, refresh=False)
        bar.reset(total=convert_inf(self.total_train_batches))
        bar.initial = 0

    def get_metrics(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {SHORT_NAMES.get(k, k): v for k, v in metrics.items()}


def quiet_third_party() -> None:
    """Silence the start-up lines that are not about this run (see the module docstring)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r".*litlogger|.*litmodels")


def start_line(
    cfg: DictConfig,
    run_dir: Path,
    model: str,
    policy: torch.nn.Module,
    control: ControlTokens | None,
    n_train: int,
    n_eval: int,
) -> str:
    """The one line a run prints before training: where it writes, what it trains, on how much data."""
    params = sum(p.numel() for p in policy.parameters())
    size = f"{params / 1e6:.1f}M" if params >= 1e5 else f"{params / 1e3:.0f}k"
    tokens = "none"
    if control is not None and control.ids:
        tokens = control.describe()  # <short>=151650 <think>=151648 ... (the vocabulary's text where it differs)
    return (
        f"[rlreason] {cfg.name} -> {run_dir} | model {model} ({size} params) | control tokens: {tokens} | "
        f"task {cfg.task.name}: {n_train} train / {n_eval} eval | {cfg.optim.steps} steps"
    )
