"""Shared machinery of the paper-claim reproductions: run variants x seeds, collect results and curves."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.config import load_config
from rlreason.train.run import resolve_init, run_experiment

RESULTS = Path(__file__).parent / "results"


def run_variant(config: str, seed: int, out_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Run (or reuse) one experiment; returns its results.json and its training curves."""
    cfg = load_config(config, [f"seed={seed}", f"logging.dir={out_dir}", "logging.progress_bar=false", *overrides])
    run_dir = out_dir / cfg.name / f"seed{seed}"
    if not (run_dir / "results.json").is_file():
        run_experiment(cfg, version=f"seed{seed}")
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    curves = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return {"results": json.loads((run_dir / "results.json").read_text()), "curves": curves, "run_dir": str(run_dir)}


def init_results(config: str, out_dir: Path) -> dict[str, Any]:
    """results.json of the SFT initialisation that `config`'s init.from points at."""
    cfg = load_config(config, [f"logging.dir={out_dir}"])
    policy = Path(resolve_init(cfg))
    return json.loads((policy.parent / "results.json").read_text())


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
