"""`rlreason ablate ABLATION.yaml` and `rlreason report SWEEP_DIR`: grids of ordinary runs.

An ablation file names a base experiment and a grid over any config keys::

    base: grpo.yaml                   # relative to this file
    name: lab-ablation                # sweep directory: <logging.dir>/<name>
    grid:
      reward: [{name: binary}, {name: thinkless}]
      algo: [{name: grpo}, {name: degrpo}]
      seed: [0, 1]
    exclude:                          # cells matching every key of an entry are skipped
      - {reward.name: info_gain, algo.name: degrpo}
    overrides: [optim.steps=30]       # applied to every cell

A grid may also have the key `method`: each value is a bundle of config keys set together (a
published method is a reward *and* an algorithm *and* perhaps a rollout option), named by its
`label`: ``method: [{label: arm, reward: {name: ada_grpo}, algo: {name: grpo}}, ...]``.

Every cell is validated before any runs (a bad key or component fails the whole sweep in one
line), then run as an ordinary `rlreason run` in a subprocess (`--workers N` at a time) into
`<sweep>/runs/<experiment name>/<cell>`. Finished cells (a results.json) are skipped, so a killed sweep
continues where it stopped; a failed cell is retried once and reported. Ctrl-C lets every running cell
checkpoint (each exits 130), starts no new cell and exits 130: the same command continues the sweep.
`summary.md`, `summary.csv`, `pareto.png` and `think_ratio.png` are rebuilt from the run directories
alone (`rlreason report`).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from rlreason.config import load_config
from rlreason.errors import ConfigError


def _label(value: Any) -> str:
    """A grid value's part of the cell name: its `label` if given, else name + parameters."""
    if isinstance(value, dict):
        if "label" in value:
            return str(value["label"])
        return str(value.get("name", "x")) + "".join(f",{k}={v}" for k, v in value.items() if k != "name")
    return str(value)


def _without_label(value: Any) -> Any:
    return {k: v for k, v in value.items() if k != "label"} if isinstance(value, dict) else value


METHOD = "method"  # grid key whose values are bundles of config keys (see the module docstring)


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value) if isinstance(value, (dict, list)) else value}"


def _cell_overrides(values: dict[str, Any]) -> list[str]:
    out = []
    for k, v in values.items():
        if k == METHOD:
            out += [_override(mk, mv) for mk, mv in v.items()]
        else:
            out.append(_override(k, v))
    return out


def load_ablation(path: Path) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
    """The ablation spec and its cells as (cell name, overrides)."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    unknown = set(spec) - {"base", "name", "grid", "exclude", "overrides"}
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}: unknown key (valid: base, name, grid, exclude, overrides)")
    for key in ("base", "grid"):
        if key not in spec:
            raise ConfigError(f"{path}: {key}: required")
    grid = spec["grid"]
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid: expected a mapping of config keys to non-empty lists")
    for i, method in enumerate(grid.get(METHOD) or []):
        if not isinstance(method, dict) or "label" not in method or len(method) < 2:
            raise ConfigError(f"{path}: grid.method[{i}]: expected a mapping with a label and config keys")
    spec["base"] = str((path.parent / spec["base"]).resolve()) if not Path(spec["base"]).is_absolute() else spec["base"]
    spec.setdefault("name", path.stem)
    cells = []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        if any(_matches(values, ex) for ex in spec.get("exclude") or []):
            continue
        name = "-".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in values.items()).replace("/", "_").replace(" ", "")
        values = {k: _without_label(v) for k, v in values.items()}  # a label names the cell, nothing else
        overrides = _cell_overrides(values)
        cells.append((name, overrides + list(spec.get("overrides") or [])))
    return spec, cells


def _matches(values: dict[str, Any], exclude: dict[str, Any]) -> bool:
    def get(key: str) -> Any:
        head, _, rest = key.partition(".")
        v = values.get(key, values.get(head))
        return v.get(rest) if rest and isinstance(v, dict) else v

    return all(get(k) == v for k, v in exclude.items())


def _resolve_init_stages(base: str, cells: list[tuple[str, list[str]]], extra: list[str]) -> dict[str, list[str]]:
    """Run each distinct `init.from` YAML stage once, up front, in the user's run directory.

    Left to the cells, every cell would look for the stage under the sweep's own `runs/` and the
    first ones would each train it again (in parallel with --workers): the SFT warm-up would be
    paid per sweep instead of once. Cells get the resolved checkpoint as `init.from=<dir>`.
    """
    from rlreason.train.run import resolve_init

    out: dict[str, list[str]] = {}
    for name, overrides in cells:
        cfg = load_config(base, [*overrides, *extra])
        src = str(cfg.init.from_ or "")
        out[name] = [f"init.from={resolve_init(cfg)}"] if src.endswith((".yaml", ".yml")) else []
    return out


def run_sweep(path: Path, workers: int = 1, extra: list[str] | None = None) -> Path:
    spec, cells = load_ablation(path)
    base_cfg = load_config(spec["base"], list(extra or []))
    sweep = Path(base_cfg.logging.dir) / spec["name"]
    for name, overrides in cells:  # validate everything before the first run
        try:
            load_config(spec["base"], [*overrides, *(extra or [])])
        except ConfigError as exc:
            raise ConfigError(f"{path}: cell {name}: {exc}") from None
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "ablation.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    init_overrides = _resolve_init_stages(spec["base"], cells, extra or [])

    # Cells running side by side share the cores: each gets its share of threads (unless the user
    # chose), because two 2-thread torch processes on 2 cores thrash (measured 15x slower).
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    cell_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    stop = threading.Event()  # set by a cell stopped with Ctrl-C: start no more cells, retry none

    def one(i_cell: tuple[int, tuple[str, list[str]]]) -> tuple[str, str]:
        i, (name, overrides) = i_cell
        if stop.is_set():
            return name, "interrupted"
        cfg = load_config(spec["base"], [*overrides, *(extra or [])])
        run_dir = sweep / "runs" / cfg.name / name
        if (run_dir / "results.json").is_file():
            print(f"[{i + 1}/{len(cells)}] {name}: done earlier, skipped", flush=True)
            return name, "skipped"
        for attempt in (1, 2):
            t0 = time.time()
            cmd = [
                sys.executable,
                "-m",
                "rlreason.cli",
                "run",
                spec["base"],
                *overrides,
                *(extra or []),
                *init_overrides[name],
                f"logging.dir={sweep / 'runs'}",
                f"logging.version={name}",
                "init.resume=auto",  # a cell killed mid-run continues from its last checkpoint
                "logging.progress_bar=false",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=cell_env)
            if proc.returncode == 130:  # Ctrl-C: the cell checkpointed; `ablate` again resumes it
                stop.set()
                print(f"[{i + 1}/{len(cells)}] {name}: interrupted (checkpointed)", flush=True)
                return name, "interrupted"
            if proc.returncode == 0 and (run_dir / "results.json").is_file():
                print(f"[{i + 1}/{len(cells)}] {name}: ok in {time.time() - t0:.0f}s", flush=True)
                return name, "ok"
            (sweep / "logs").mkdir(exist_ok=True)
            (sweep / "logs" / f"{name}.attempt{attempt}.log").write_text(proc.stdout + proc.stderr)
            print(f"[{i + 1}/{len(cells)}] {name}: failed (attempt {attempt}), log in {sweep / 'logs'}", flush=True)
        return name, "failed"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            statuses = list(pool.map(one, enumerate(cells)))
        except KeyboardInterrupt:  # the cells got the same SIGINT: let them checkpoint, start no more
            stop.set()
            statuses = [(name, "interrupted") for name, _ in cells]
    if stop.is_set():
        from rlreason.train.interrupt import RunInterrupted

        again = " ".join(["rlreason ablate", str(path), *(extra or [])])
        raise RunInterrupted(f"sweep interrupted; finished cells are kept, resume with: {again}")
    write_report(sweep)
    failed = [n for n, s in statuses if s == "failed"]
    if failed:
        print(f"{len(failed)} cell(s) failed: {', '.join(failed)}", file=sys.stderr)
    return sweep


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def _grid_keys(sweep: Path) -> list[str]:
    """The swept keys, from the sweep's saved ablation.yaml (older sweeps: the usual five)."""
    spec_file = sweep / "ablation.yaml"
    spec = yaml.safe_load(spec_file.read_text()) if spec_file.is_file() else None
    if isinstance(spec, dict) and isinstance(spec.get("grid"), dict):
        return [str(k) for k in spec["grid"]]
    return ["reward.name", "algo.name", "seed", "optim.lr", "rollout.group_size"]


def cell_hparams(cfg: dict[str, Any], grid_keys: list[str]) -> dict[str, Any]:
    """A cell's HParams entry: the value of every grid key in its resolved config, component sections
    flattened (`algo.name`, `algo.alpha`, ...), so cells that differ in any swept key differ here."""
    from rlreason.train.loggers import flat_hparams

    out: dict[str, Any] = {}
    for key in grid_keys:
        value: Any = cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.update(flat_hparams(value, f"{key}.") if isinstance(value, dict) else flat_hparams(value, key))
    return out


def _per_level_think(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean evaluated think ratio per difficulty level over a cell's seeds (`think_<level>`)."""
    levels = sorted({lv for r in runs for lv in (r.get("per_difficulty") or {})})
    out: dict[str, float | None] = {}
    for lv in levels:
        vals = [r["per_difficulty"][lv].get("think_ratio") for r in runs if lv in (r.get("per_difficulty") or {})]
        vals = [v for v in vals if v is not None]
        out[f"think_{lv}"] = statistics.fmean(vals) if vals else None
    return out


def _first_step_above(points: list[tuple[int, float]], threshold: float) -> int | None:
    """The first step (1-based) at which the mean over seeds exceeds `threshold`; None if never."""
    by_step: dict[int, list[float]] = {}
    for step, value in points:
        by_step.setdefault(step, []).append(value)
    for step in sorted(by_step):
        if statistics.fmean(by_step[step]) > threshold:
            return step + 1
    return None


def write_report(sweep: Path) -> list[dict[str, Any]]:
    """summary.md / summary.csv / pareto.png / think_ratio.png and TensorBoard HParams, from run dirs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    cells: dict[str, list[dict[str, Any]]] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    hard_curves: dict[str, list[tuple[int, float]]] = {}
    found = sorted(sweep.glob("runs/*/*/results.json")) if sweep.is_dir() else []
    if not found:
        raise ConfigError(f"{sweep}: not a sweep directory (no runs/*/*/results.json; `rlreason ablate` makes one)")
    grid_keys = _grid_keys(sweep)
    for results_file in found:
        run_dir = results_file.parent
        res = json.loads(results_file.read_text())
        task = next(k for k, v in res.items() if isinstance(v, dict) and "accuracy" in v)
        summary = res[task]
        cell = "-".join(p for p in run_dir.name.split("-") if not p.startswith("seed="))
        cells.setdefault(cell, []).append({**summary, "train_time_s": res.get("train_time_s", 0.0)})
        curves.setdefault(cell, []).extend(_scalars(run_dir, "mode/think_ratio"))
        hard_curves.setdefault(cell, []).extend(_scalars(run_dir, "mode/think_ratio/hard"))
        hp_dir = run_dir / "hparams"
        if not hp_dir.exists():
            hparams = cell_hparams(yaml.safe_load((run_dir / "config.yaml").read_text()), grid_keys)
            with SummaryWriter(str(hp_dir)) as w:
                w.add_hparams(
                    hparams,
                    {"hparam/accuracy": summary["accuracy"], "hparam/tokens": summary["mean_response_tokens"]},
                    run_name=".",
                )
    rows = []
    for cell, runs in sorted(cells.items()):
        acc = [r["accuracy"] for r in runs]
        tok = [r["mean_response_tokens"] for r in runs]
        think = [r.get("think_ratio") for r in runs if r.get("think_ratio") is not None]
        rows.append(
            {
                "cell": cell,
                "seeds": len(runs),
                "accuracy": statistics.fmean(acc),
                "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "tokens": statistics.fmean(tok),
                "think_ratio": statistics.fmean(think) if think else None,
                "acc_per_1k_tokens": 1000 * statistics.fmean(acc) / max(statistics.fmean(tok), 1e-9),
                "wall_time_s": statistics.fmean(r["train_time_s"] for r in runs),
                **_per_level_think(runs),
                "steps_to_hard_think": _first_step_above(hard_curves.get(cell, []), 0.5),
            }
        )
    front = {
        r["cell"]
        for r in rows
        if not any(
            o["accuracy"] >= r["accuracy"]
            and o["tokens"] <= r["tokens"]
            and o is not r
            and (o["accuracy"] > r["accuracy"] or o["tokens"] < r["tokens"])
            for o in rows
        )
    }
    with (sweep / "summary.csv").open("w", newline="") as f:
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ["cell"]  # cells may lack a level
        writer = csv.DictWriter(f, fieldnames=[*fields, "pareto"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "pareto": r["cell"] in front})
    lines = [
        "| cell | seeds | accuracy | tokens | think ratio | think easy / medium / hard | steps to hard think > 0.5 "
        "| acc / 1k tok | time (s) | Pareto |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    for r in rows:
        think = "-" if r["think_ratio"] is None else f"{100 * r['think_ratio']:.1f}%"
        levels = " / ".join(pct(r.get(f"think_{lv}")) for lv in ("easy", "medium", "hard"))
        steps = "-" if r["steps_to_hard_think"] is None else str(r["steps_to_hard_think"])
        lines.append(
            f"| {r['cell']} | {r['seeds']} | {100 * r['accuracy']:.1f} ± {100 * r['accuracy_std']:.1f} | "
            f"{r['tokens']:.1f} | {think} | {levels} | {steps} | {r['acc_per_1k_tokens']:.1f} | "
            f"{r['wall_time_s']:.0f} | {'*' if r['cell'] in front else ''} |"
        )
    (sweep / "summary.md").write_text("\n".join(lines) + "\n")
    # cells that land on the same spot would hide each other's text labels: numbered markers and a
    # legend outside the axes stay readable for any grid; error bars are the std over seeds
    fig, ax = plt.subplots(figsize=(9, 4.5))
    markers = "osD^vP*Xh<>p"
    for i, r in enumerate(rows):
        on = r["cell"] in front
        ax.errorbar(
            r["tokens"],
            100 * r["accuracy"],
            yerr=100 * r["accuracy_std"],
            fmt=markers[i % len(markers)],
            color=plt.cm.tab10(i % 10),
            markersize=8 if on else 6,
            markeredgecolor="black" if on else "none",
            label=f"{r['cell']}{'  (Pareto)' if on else ''}",
            zorder=3,
            capsize=2,
        )
    pareto = sorted((r["tokens"], 100 * r["accuracy"]) for r in rows if r["cell"] in front)
    if pareto:
        ax.plot(*zip(*pareto), color="tab:red", linewidth=1, zorder=2)
    ax.set_xlabel("mean response tokens (held-out eval)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs tokens; red line: Pareto front (black-edged markers)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(sweep / "pareto.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (cell, pts) in enumerate(curves.items()):
        by_step: dict[int, list[float]] = {}
        for step, value in pts:
            by_step.setdefault(step, []).append(value)
        if by_step:  # the mean over seeds per step, one line per cell
            steps = sorted(by_step)
            means = [sum(by_step[k]) / len(by_step[k]) for k in steps]
            ax.plot(steps, means, color=plt.cm.tab10(i % 10), linestyle="-" if i < 10 else "--", label=cell)
    ax.set_xlabel("step")
    ax.set_ylabel("sampled think ratio (mean over seeds)")
    if any(curves.values()):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(sweep / "think_ratio.png", dpi=120)
    plt.close(fig)
    print((sweep / "summary.md").read_text())
    return rows
