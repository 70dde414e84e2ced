"""What a resumed run starts from: its run directory, its newest intact checkpoint, its RNG state.

A checkpoint is `checkpoints/step-N.ckpt` (written by Lightning: policy, value head, optimiser,
scheduler, loop progress including the data position, and `rlreason` state: RNG streams, fault
counters, the info-gain reference parameters) plus `step-N.ckpt.json`, a manifest with its byte count
and SHA-256 written *before* the checkpoint is renamed into place. So:

- a kill -9 during the write leaves only `*.tmp` files, which are never read;
- a truncated or bit-flipped checkpoint fails its manifest (torch's zip reader does not check CRCs, so
  a flipped byte in tensor data would otherwise load silently) and the previous one is used, with a
  warning;
- checkpoints load with `torch.load(weights_only=True)`: nothing in them executes code.

Exactness: the data batch of step k, the rollout sampling seeds and the evaluation seeds are pure
functions of (seed, step), so with the optimiser, scheduler and global RNG streams restored a resumed
run repeats the uninterrupted one bit for bit on CPU (tests/test_faults.py checks the final
parameters and metrics).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig

from rlreason.config import to_yaml
from rlreason.errors import ConfigError

MANIFEST_SUFFIX = ".json"
# keys that say how a run is started, shown or logged, not what it computes: they may differ on resume
# (every `logging.*` key: a run saved before a logging default changed stays resumable)
_BOOKKEEPING = {"init.resume"}
_BOOKKEEPING_PREFIXES = ("logging.",)


# -- checkpoints ------------------------------------------------------------------------------
def _files(path: Path) -> list[Path]:
    """The file itself, or a sharded (FSDP) checkpoint directory's files in a fixed order."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def checkpoint_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in _files(path))


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with file.open("rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a written checkpoint (file, or every file of a sharded one) to disk before its rename."""
    for file in _files(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def manifest_path(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.name + MANIFEST_SUFFIX)


def write_manifest(written: Path, final: Path, step: int) -> None:
    """Record size and digest of `written` (the temporary file) under the final checkpoint's name."""
    info = {"step": step, "bytes": checkpoint_bytes(written), "sha256": sha256_file(written)}
    target = manifest_path(final)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(target)


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why `ckpt` cannot be resumed from, or None if it is intact."""
    manifest = manifest_path(ckpt)
    if not manifest.is_file():
        return "no manifest (written by an older rlreason or interrupted before completion)"
    try:
        info = json.loads(manifest.read_text())
        size, digest = int(info["bytes"]), str(info["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if checkpoint_bytes(ckpt) != size:
        return f"size {checkpoint_bytes(ckpt)} bytes, manifest says {size} (truncated?)"
    if sha256_file(ckpt) != digest:
        return "SHA-256 does not match its manifest (corrupted)"
    if ckpt.is_dir():  # sharded: Lightning's FSDP loader reads it (torch.distributed.checkpoint)
        return None
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        return f"does not load with weights_only=True ({str(exc).splitlines()[0]})"
    if not isinstance(state, dict) or "state_dict" not in state or "loops" not in state:
        return "not a training checkpoint (no state_dict / loops)"
    return None


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Completed checkpoints, oldest first (`*.tmp` leftovers of interrupted writes are ignored)."""
    return sorted(ckpt_dir.glob("step-*.ckpt"))


def latest_intact_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint that passes `checkpoint_problem`, warning about each one skipped."""
    for ckpt in reversed(list_checkpoints(ckpt_dir)):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        print(f"[rlreason] warning: checkpoint {ckpt} is unusable: {problem}; trying the previous one", file=sys.stderr)
    return None


# -- which run to resume ----------------------------------------------------------------------
def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def config_differences(saved_yaml: str, cfg: DictConfig) -> list[str]:
    """`key: saved -> now` for every key that changes what the run computes."""
    old, new = _flat(yaml.safe_load(saved_yaml) or {}), _flat(yaml.safe_load(to_yaml(cfg)) or {})
    keys = sorted(k for k in (set(old) | set(new)) - _BOOKKEEPING if not k.startswith(_BOOKKEEPING_PREFIXES))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _version_dirs(root: Path) -> list[Path]:
    """Run directories of an experiment, newest first (by modification time)."""
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and (d / "config.yaml").is_file()]
    return sorted(dirs, key=lambda d: (d / "config.yaml").stat().st_mtime, reverse=True)


def find_resume_point(cfg: DictConfig) -> tuple[Path | None, Path | None]:
    """(run directory, checkpoint) to continue from per `init.resume`; (None, None) starts afresh.

    `auto`: the run directory `logging.dir/<name>/<logging.version>` if a version is given (its saved
    config must match), else the newest run directory of this experiment whose saved config matches
    (resuming a run made with other settings is never what is meant); nothing to resume starts a new
    run. A run directory or `.ckpt` path resumes exactly that, with a warning if the config changed
    (e.g. a lower learning rate after a divergence). A run directory without an intact checkpoint is
    restarted from step 0 in place.
    """
    how = cfg.init.resume
    if not how:
        return None, None
    root = Path(cfg.logging.dir) / cfg.name
    if how == "auto":
        if cfg.logging.version:
            run_dir = root / cfg.logging.version
            if not (run_dir / "config.yaml").is_file():
                print(f"[rlreason] init.resume=auto: {run_dir} does not exist yet; starting it", file=sys.stderr)
                return None, None
            diffs = config_differences((run_dir / "config.yaml").read_text(), cfg)
            if diffs:
                raise ConfigError(
                    f"init.resume: {run_dir} was run with a different config ({'; '.join(diffs[:3])}"
                    f"{' ...' if len(diffs) > 3 else ''}); pass init.resume={run_dir} to resume it anyway"
                )
        else:
            matching = [d for d in _version_dirs(root) if not config_differences((d / "config.yaml").read_text(), cfg)]
            if not matching:
                print(f"[rlreason] init.resume=auto: no earlier run of this config under {root}", file=sys.stderr)
                return None, None
            run_dir = matching[0]
        ckpt = latest_intact_checkpoint(run_dir / "checkpoints")
    else:
        path = Path(how)
        if path.suffix == ".ckpt" and path.exists():
            run_dir, ckpt = path.parent.parent, path
            problem = checkpoint_problem(path)
            if problem is not None:
                raise ConfigError(f"init.resume: {how}: {problem}")
        elif (path / "config.yaml").is_file():
            run_dir, ckpt = path, latest_intact_checkpoint(path / "checkpoints")
        else:
            raise ConfigError(f"init.resume: {how!r} is neither 'auto', a run directory nor a .ckpt file")
        diffs = config_differences((run_dir / "config.yaml").read_text(), cfg)
        if diffs:
            print(f"[rlreason] warning: resuming {run_dir} with a changed config: {'; '.join(diffs)}", file=sys.stderr)
    if ckpt is None:
        print(f"[rlreason] {run_dir}: no intact checkpoint; restarting it from step 0", file=sys.stderr)
    return run_dir, ckpt


# -- RNG streams ------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) generator states, in types `weights_only` loading accepts."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
