"""Where a benchmark split's rows come from: a local JSONL file or one split of a Hugging Face dataset.

Each source yields `(where, row)` pairs, `where` naming the row for error messages (`file:line` or
`dataset[i]`). Reading the rows is the only thing a source does; turning them into problems is the
task's job (`rlreason.tasks.benchmarks`).

Hugging Face datasets and the network: without `HF_HUB_OFFLINE`, `datasets.load_dataset` on a
machine that cannot reach the Hub retries every request five times with back-off (about 25 s per
dataset) before it fails. So a Hub dataset is loaded in offline mode when `rlreason.hub` finds the
Hub unreachable: a cached copy still loads, a missing one fails at once with one line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlreason.errors import DataError
from rlreason.hub import hub_offline, hub_reachable, offline_mode

Rows = Iterator[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class JsonlFile:
    """One split stored as a JSONL file, one JSON object per line (blank lines ignored)."""

    path: Path
    key: str  # the config key that names the file, for "file not found"

    def check(self) -> None:
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found ({self.key}, or set RLREASON_DATA to the data folder)")

    def rows(self, fail: Callable[[str], None]) -> Rows:
        self.check()
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    fail(f"{self.path}:{lineno}: invalid JSON ({exc.msg}); expected one object per line")
                    continue
                if not isinstance(row, dict):
                    fail(f"{self.path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                    continue
                yield f"{self.path}:{lineno}", row


def stop_at_first(message: str) -> None:
    """A `rows(fail)` policy: the first malformed line ends the read with a one-line DataError."""
    raise DataError(message)


@dataclass(frozen=True)
class HFSplit:
    """One split of a Hugging Face dataset (hub name or local folder), with its config name."""

    dataset: str
    config: str | None
    split: str
    key: str  # task.hf_train_split | task.hf_test_split

    def rows(self, fail: Callable[[str], None]) -> Rows:
        ds = load_hf_split(self.dataset, self.config, self.split, self.key)
        for i, row in enumerate(ds):
            yield f"{self.dataset}[{self.split}][{i}]", dict(row)


def load_hf_split(dataset: str, config: str | None, split: str, key: str) -> Any:
    """`datasets.load_dataset(dataset, config, split=split)`, failing fast and in one line offline."""
    import datasets

    local = Path(dataset).exists()
    forced = offline_mode()  # HF_HUB_OFFLINE: the libraries fail fast by themselves
    offline = not local and (forced or not hub_reachable())
    what = f"'{dataset}'" + (f" (config '{config}')" if config else "")
    try:
        with hub_offline() if offline and not forced else contextlib.nullcontext():
            return datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:
        msg = " ".join(str(exc).split(" Example of usage")[0].split())[:200] or type(exc).__name__
        if "split" in msg.lower() and split in msg:
            raise DataError(f"task.hf_dataset: {what} has no split '{split}' ({key}): {msg}") from None
        if "config" in msg.lower() and ("missing" in msg.lower() or "not found" in msg.lower()):
            raise DataError(f"task.hf_config: {what}: {msg}") from None
        if offline:
            raise DataError(
                f"task.hf_dataset: cannot load {what}: the Hugging Face Hub is "
                f"{'off (HF_HUB_OFFLINE)' if forced else 'not reachable (offline)'} and the "
                f"dataset is not in the local cache; download it once with network access, or use a local JSONL "
                f"file (task.path / task.train_path)"
            ) from None
        raise DataError(f"task.hf_dataset: cannot load {what} split '{split}' ({msg})") from None
