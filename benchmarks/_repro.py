"""Shared machinery of the paper-claim reproductions: run variants x seeds, collect results and curves."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.ablate.runner import FAILED, INTERRUPTED, run_cell
from rlreason.config import load_config
from rlreason.train.run import resolve_init

RESULTS = Path(__file__).parent / "results"
# RL seeds of the claim rates: the three the lab recipes were tuned on, and three drawn before any of
# their runs, as the first three 32-bit words of
# sha256("rlreason issue 26: unseen RL seeds, drawn 2026-12-07 before any run") mod 10,000.
TUNED, UNSEEN = [0, 1, 2], [4733, 5021, 834]
SEEDS = TUNED + UNSEEN


# a timed benchmark run: a 3-problem final evaluation and nothing periodic; vLLM on a small KV budget
BENCH_VLLM = "rollout.vllm={kv_cache_memory_bytes: 67108864, max_model_len: 256}"


def bench_logging(out: Path | str) -> list[str]:
    return [
        "eval.n=3",
        "eval.every_n_steps=0",
        "logging.samples_every_n_steps=0",
        "logging.progress_bar=false",
        "logging.histograms=false",
        "logging.checkpoint_every_n_steps=0",
        f"logging.dir={out}",
    ]


def run_variant(config: str, seed: int, tag: str, overrides: list[str]) -> dict[str, Any]:
    """Run (or reuse) one experiment as `runs/<name>/<tag>-seed<seed>`; returns results and curves.

    Runs live in the default `runs/` so that every variant reuses the one SFT warm-up stage. The run
    is a sweep cell's run (`rlreason.ablate.runner.run_cell`): a subprocess that resumes a killed run
    and is retried once; its failed attempts' output lands in `<logging.dir>/repro-logs/`.
    """
    overrides = [f"seed={seed}", *overrides]
    cfg = load_config(config, overrides)
    run_dir = Path(cfg.logging.dir) / cfg.name / f"{tag}-seed{seed}"
    logs = Path(cfg.logging.dir) / "repro-logs"
    status = run_cell(config, overrides, run_dir, logs=logs, say=lambda msg: print(f"  {msg}", flush=True))
    if status in (FAILED, INTERRUPTED):
        raise SystemExit(f"{run_dir}: {status}")
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    curves = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return {"results": json.loads((run_dir / "results.json").read_text()), "curves": curves, "run_dir": str(run_dir)}


def init_results(config: str) -> dict[str, Any]:
    """results.json of the SFT initialisation that `config`'s init.from points at."""
    cfg = load_config(config)
    policy = Path(resolve_init(cfg))
    return json.loads((policy.parent / "results.json").read_text())


def mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float]]:
    """Pointwise mean over runs of (step, value) curves, at the steps every run logged."""
    if not curves:
        return [], []
    by_run = [dict(c) for c in curves]
    steps = sorted(set.intersection(*(set(d) for d in by_run)))
    return steps, [statistics.fmean(d[s] for d in by_run) for s in steps]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the defined values (a rate with no samples, e.g. think accuracy of a run
    that never thinks, is NaN and left out)."""
    values = [v for v in values if v == v]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
