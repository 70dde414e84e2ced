"""`cell.json`: what a sweep's run directory is, so the report never parses directory names.

The runner writes it before the cell starts: the cell's row in the report (`cell`, its name without
the seed keys), the run directory's name (`run`), the grid values as written (`grid`, labels kept),
the resolved `seed` and the `overrides` the run got. Sweeps from before this file existed are given
theirs from the sweep's saved `ablation.yaml` (cell names are a function of the spec) by
`backfill_cell_files`, which `rlreason report` calls first; their `overrides` then lack what was
given on the `ablate` command line, which `written_by` says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from rlreason.ablate.spec import Cell, load_ablation
from rlreason.errors import ConfigError

CELL_FILE = "cell.json"
SPEC_FILE = "ablation.yaml"  # the spec as the runner resolved it, saved in the sweep directory


def write_cell_file(run_dir: Path, cell: Cell, seed: int, overrides: list[str], written_by: str = "runner") -> Path:
    """Write `run_dir/cell.json` (creating the directory) and return its path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "cell": cell.group,
        "run": cell.name,
        "grid": cell.grid,
        "seed": seed,
        "overrides": overrides,
        "written_by": written_by,
    }
    path = run_dir / CELL_FILE
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_cell_file(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / CELL_FILE).read_text())


def backfill_cell_files(sweep: Path, run_dirs: list[Path]) -> list[Path]:
    """Write the missing cell files of `run_dirs` from `sweep/ablation.yaml`; returns those written.

    A run directory is matched to its cell by its name, which the old runner set to the cell name.
    One that matches no cell of the spec is left alone (the report skips it, saying so).
    """
    missing = [d for d in run_dirs if not (d / CELL_FILE).is_file()]
    if not missing:
        return []
    spec_file = sweep / SPEC_FILE
    if not spec_file.is_file():
        raise ConfigError(f"{sweep}: runs without {CELL_FILE} and no {SPEC_FILE} to say which cells they are")
    _, cells = load_ablation(spec_file)
    by_name = {c.name: c for c in cells}
    written = []
    for run_dir in missing:
        cell = by_name.get(run_dir.name)
        if cell is None:
            print(f"[rlreason] {run_dir}: not a cell of {spec_file}; left out of the report", file=sys.stderr)
            continue
        config = run_dir / "config.yaml"
        seed = (yaml.safe_load(config.read_text()) or {}).get("seed") if config.is_file() else None
        written.append(write_cell_file(run_dir, cell, seed, cell.overrides, written_by=f"report, from {SPEC_FILE}"))
    return written
