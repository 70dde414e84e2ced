"""Pre-flight checks run before training starts: is there room on disk for a checkpoint?

A full disk discovered when the first checkpoint is written costs the whole run up to that point,
so `rlreason run` estimates what one checkpoint needs and refuses to start when the run directory's
file system has less free space, with a one-line `ConfigError` naming `logging.dir`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import rlreason.train.optim  # noqa: F401  (registers the optimisers)
from rlreason.errors import ConfigError
from rlreason.registry import OPTIMIZERS

GIB = 1024**3

# Bytes per parameter held by each optimizer's state (torch.optim, fp32): AdamW keeps two moments
# (exp_avg, exp_avg_sq); plain SGD without momentum (how `rlreason.train.optim` builds it) keeps none.


def estimate_checkpoint_bytes(num_params: int, optimizer: str = "adamw") -> int:
    """Bytes one checkpoint takes on disk: 16 B/parameter with AdamW, 8 B with SGD.

    A checkpoint (`Checkpointer`) is the Lightning state, fp32 parameters (4 B each) plus the
    optimizer state, and next to it a Hugging Face copy of the policy (safetensors, 4 B at fp32).
    Everything is counted at fp32, so a bf16 policy is over-estimated (its tensors take 2 B); file
    metadata, tokenizer and config files are small against any real model and not counted.
    """
    if num_params < 0:
        raise ValueError(f"num_params: expected >= 0, got {num_params}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optim.optimizer: expected {' | '.join(OPTIMIZERS.names())}, got {optimizer!r}")
    return num_params * (4 + OPTIMIZERS.get(optimizer).state_bytes_per_param + 4)


def checkpoints_on_disk_at_once(keep_last_n: int, steps: int, every_n_steps: int) -> int:
    """Most checkpoints that exist together during a run (multiply `estimate_checkpoint_bytes` by it).

    The Checkpointer saves every `every_n_steps` steps (0: only at the end) and at the end, and
    deletes old ones only after the new one is written: with `keep_last_n` = k > 0 up to k + 1 exist
    at the moment of a save; with k = 0 all are kept. The run's final `policy/` (a Hugging Face copy,
    4 B/parameter at fp32) comes on top.
    """
    saves = (steps // every_n_steps if every_n_steps > 0 else 0) + 1
    if every_n_steps > 0 and steps % every_n_steps == 0:
        saves -= 1  # the last periodic save is the final one (Checkpointer skips an existing step)
    return saves if keep_last_n <= 0 else min(saves, keep_last_n + 1)


def _existing_ancestor(path: Path) -> Path:
    """The deepest existing directory on the way to `path` (the run dir may not exist yet)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path(path.anchor or ".")


def check_disk_space(run_dir: Path, need_bytes: int) -> None:
    """Raise `ConfigError` when the file system holding `run_dir` has less than `need_bytes` free."""
    where = _existing_ancestor(Path(run_dir))
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:  # e.g. a permission problem: prepare_run_dir's write probe reports it
        raise ConfigError(f"logging.dir: cannot read the free space of {where}: {exc.strerror or exc}") from None
    if free < need_bytes:
        raise ConfigError(
            f"logging.dir: only {free / GIB:.2f} GiB free on {where}, a checkpoint needs about "
            f"{need_bytes / GIB:.2f} GiB (free space, or point logging.dir elsewhere)"
        )
