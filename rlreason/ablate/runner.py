"""Running configs as `rlreason run` subprocesses: one cell (`run_cell`), and a whole sweep (`run_sweep`).

`run_cell` is the one code path that runs a config with overrides into a given run directory, with
resume and one retry; the sweep and the paper-claim reproductions (`benchmarks/_repro.py`) both use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from rlreason.ablate.cell_file import SPEC_FILE, write_cell_file
from rlreason.ablate.report import write_report
from rlreason.ablate.spec import Cell, load_ablation
from rlreason.config import load_config
from rlreason.errors import ConfigError, RunInterrupted

SKIPPED, OK, FAILED, INTERRUPTED = "skipped", "ok", "failed", "interrupted"


def run_cell(
    config: str,
    overrides: list[str],
    run_dir: Path,
    *,
    logs: Path,
    env: dict[str, str] | None = None,
    say: Callable[[str], None] = print,
    attempts: int = 2,
) -> str:
    """Run `config` with `overrides` into `run_dir` (`<logging.dir>/<name>/<version>`); returns a status.

    A run with a results.json is not run again (`skipped`); a run killed part-way continues from its
    last checkpoint (`init.resume=auto`); a failed attempt's output goes to
    `logs/<version>.attempt<k>.log` and the run is tried again, `attempts` times in all (`ok` or
    `failed`). Ctrl-C (exit 130: the run checkpointed) is `interrupted` and not retried.
    """
    if (run_dir / "results.json").is_file():
        say("done earlier, skipped")
        return SKIPPED
    cmd = [
        sys.executable,
        "-m",
        "rlreason.cli",
        "run",
        config,
        *overrides,
        f"logging.dir={run_dir.parent.parent}",
        f"logging.version={run_dir.name}",
        "init.resume=auto",  # a cell killed mid-run continues from its last checkpoint
        "logging.progress_bar=false",
    ]
    for attempt in range(1, attempts + 1):
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode == 130:  # Ctrl-C: the run checkpointed; the same call again resumes it
            say("interrupted (checkpointed)")
            return INTERRUPTED
        if proc.returncode == 0 and (run_dir / "results.json").is_file():
            say(f"ok in {time.time() - t0:.0f}s")
            return OK
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{run_dir.name}.attempt{attempt}.log").write_text(proc.stdout + proc.stderr)
        say(f"failed (attempt {attempt}), log in {logs}")
    return FAILED


def _resolve_init_stages(base: str, cells: list[Cell], extra: list[str]) -> dict[str, list[str]]:
    """Run each distinct `init.from` YAML stage once, up front, in the user's run directory.

    Left to the cells, every cell would look for the stage under the sweep's own `runs/` and the
    first ones would each train it again (in parallel with --workers): the SFT warm-up would be
    paid per sweep instead of once. Cells get the resolved checkpoint as `init.from=<dir>`.
    """
    from rlreason.train.run import resolve_init  # trains the stage here: lightning + transformers, else unloaded

    out: dict[str, list[str]] = {}
    for cell in cells:
        cfg = load_config(base, [*cell.overrides, *extra])
        src = str(cfg.init.from_ or "")
        out[cell.name] = [f"init.from={resolve_init(cfg)}"] if src.endswith((".yaml", ".yml")) else []
    return out


def cell_env(workers: int) -> dict[str, str]:
    """The environment of cells run `workers` at a time: each gets its share of the cores' threads
    (unless the user chose), because two 2-thread torch processes on 2 cores thrash (measured 15x slower)."""
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}


def run_sweep(path: Path, workers: int = 1, extra: list[str] | None = None) -> Path:
    """`rlreason ablate`: validate every cell, run them `workers` at a time, then write the report."""
    extra = list(extra or [])
    spec, cells = load_ablation(path)
    base_cfg = load_config(spec["base"], extra)
    sweep = Path(base_cfg.logging.dir) / spec["name"]
    for cell in cells:  # validate everything before the first run
        try:
            load_config(spec["base"], [*cell.overrides, *extra])
        except ConfigError as exc:
            raise ConfigError(f"{path}: cell {cell.name}: {exc}") from None
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    init_overrides = _resolve_init_stages(spec["base"], cells, extra)
    env = cell_env(workers)
    stop = threading.Event()  # set by a cell stopped with Ctrl-C: start no more cells, retry none

    def one(i_cell: tuple[int, Cell]) -> tuple[str, str]:
        i, cell = i_cell
        if stop.is_set():
            return cell.name, INTERRUPTED
        overrides = [*cell.overrides, *extra, *init_overrides[cell.name]]
        cfg = load_config(spec["base"], [*cell.overrides, *extra])
        run_dir = sweep / "runs" / cfg.name / cell.name
        write_cell_file(run_dir, cell, cfg.seed, overrides)

        def say(msg: str) -> None:
            print(f"[{i + 1}/{len(cells)}] {cell.name}: {msg}", flush=True)

        status = run_cell(spec["base"], overrides, run_dir, logs=sweep / "logs", env=env, say=say)
        if status == INTERRUPTED:
            stop.set()
        return cell.name, status

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            statuses = list(pool.map(one, enumerate(cells)))
        except KeyboardInterrupt:  # the cells got the same SIGINT: let them checkpoint, start no more
            stop.set()
            statuses = [(cell.name, INTERRUPTED) for cell in cells]
    if stop.is_set():
        again = " ".join(["rlreason ablate", str(path), *extra])
        raise RunInterrupted(f"sweep interrupted; finished cells are kept, resume with: {again}")
    write_report(sweep)
    failed = [n for n, s in statuses if s == FAILED]
    if failed:
        print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
    return sweep
