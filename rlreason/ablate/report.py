"""`rlreason report SWEEP_DIR`: a sweep's summary, rebuilt from its run directories alone.

`summary.csv` and `summary.md` (one row per cell, seeds averaged, Pareto front of accuracy vs
tokens marked), `pareto.png`, `think_ratio.png` and a TensorBoard HParams entry per run. Each run
is identified by its `cell.json` (written by the runner; sweeps from before it are given theirs from
their saved `ablation.yaml` first), never by its directory name.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlreason.ablate.cell_file import CELL_FILE, backfill_cell_files, read_cell_file
from rlreason.config import flat_hparams
from rlreason.errors import ConfigError

Curve = list[tuple[int, float]]


@dataclass
class CellRuns:
    """A cell's seeds: their held-out summaries and their training curves, concatenated."""

    summaries: list[dict[str, Any]] = field(default_factory=list)
    think_curve: Curve = field(default_factory=list)
    hard_think_curve: Curve = field(default_factory=list)
    forced_modes: bool = False  # a mode sampler chose the first token: the training think ratio is its share


def _scalars(run_dir: Path, tag: str) -> Curve:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def cell_hparams(cfg: dict[str, Any], grid_keys: list[str]) -> dict[str, Any]:
    """A cell's HParams entry: the value of every grid key in its resolved config, component sections
    flattened (`algo.name`, `algo.alpha`, ...), so cells that differ in any swept key differ here."""
    out: dict[str, Any] = {}
    for key in grid_keys:
        value: Any = cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.update(flat_hparams(value, f"{key}.") if isinstance(value, dict) else flat_hparams(value, key))
    return out


def write_hparams(run_dir: Path, grid_keys: list[str], summary: dict[str, Any]) -> None:
    """The run's HParams entry in `run_dir/hparams` (kept if it exists: TensorBoard would show two)."""
    from torch.utils.tensorboard import SummaryWriter

    hp_dir = run_dir / "hparams"
    if hp_dir.exists():
        return
    hparams = cell_hparams(yaml.safe_load((run_dir / "config.yaml").read_text()), grid_keys)
    with SummaryWriter(str(hp_dir)) as w:
        w.add_hparams(
            hparams,
            {"hparam/accuracy": summary["accuracy"], "hparam/tokens": summary["mean_response_tokens"]},
            run_name=".",
        )


def collect_cells(sweep: Path) -> dict[str, CellRuns]:
    """Every finished run of the sweep, grouped by its cell (in the order of the sorted run paths);
    writes each run's HParams entry on the way."""
    found = sorted(sweep.glob("runs/*/*/results.json")) if sweep.is_dir() else []
    if not found:
        raise ConfigError(f"{sweep}: not a sweep directory (no runs/*/*/results.json; `rlreason ablate` makes one)")
    backfill_cell_files(sweep, [f.parent for f in found])
    cells: dict[str, CellRuns] = {}
    for results_file in found:
        run_dir = results_file.parent
        if not (run_dir / CELL_FILE).is_file():
            continue  # backfill_cell_files said why
        info = read_cell_file(run_dir)
        res = json.loads(results_file.read_text())
        task = next(k for k, v in res.items() if isinstance(v, dict) and "accuracy" in v)
        summary = res[task]
        runs = cells.setdefault(info["cell"], CellRuns())
        runs.summaries.append({**summary, "train_time_s": res.get("train_time_s", 0.0)})
        runs.think_curve.extend(_scalars(run_dir, "mode/think_ratio"))
        runs.hard_think_curve.extend(_scalars(run_dir, "mode/think_ratio/hard"))
        rollout = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("rollout") or {}
        runs.forced_modes |= str(rollout.get("sampler", "none")) != "none"
        write_hparams(run_dir, list(info["grid"]), summary)
    return cells


def per_level_think(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean evaluated think ratio per difficulty level over a cell's seeds (`think_<level>`)."""
    levels = sorted({lv for r in runs for lv in (r.get("per_difficulty") or {})})
    out: dict[str, float | None] = {}
    for lv in levels:
        vals = [r["per_difficulty"][lv].get("think_ratio") for r in runs if lv in (r.get("per_difficulty") or {})]
        vals = [v for v in vals if v is not None]
        out[f"think_{lv}"] = statistics.fmean(vals) if vals else None
    return out


def first_step_above(points: Curve, threshold: float) -> int | None:
    """The first step (1-based) at which the mean over seeds exceeds `threshold`; None if never."""
    by_step: dict[int, list[float]] = {}
    for step, value in points:
        by_step.setdefault(step, []).append(value)
    for step in sorted(by_step):
        if statistics.fmean(by_step[step]) > threshold:
            return step + 1
    return None


def aggregate_seeds(cell: str, runs: CellRuns) -> dict[str, Any]:
    """A cell's row: means (and the accuracy's std) over its seeds."""
    acc = [r["accuracy"] for r in runs.summaries]
    tok = [r["mean_response_tokens"] for r in runs.summaries]
    think = [r.get("think_ratio") for r in runs.summaries if r.get("think_ratio") is not None]
    return {
        "cell": cell,
        "seeds": len(runs.summaries),
        "accuracy": statistics.fmean(acc),
        "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
        "tokens": statistics.fmean(tok),
        "think_ratio": statistics.fmean(think) if think else None,
        "acc_per_1k_tokens": 1000 * statistics.fmean(acc) / max(statistics.fmean(tok), 1e-9),
        "wall_time_s": statistics.fmean(r["train_time_s"] for r in runs.summaries),
        **per_level_think(runs.summaries),
        # under a mode sampler the sampled think ratio is the sampler's share, not the policy's choice
        "steps_to_hard_think": None if runs.forced_modes else first_step_above(runs.hard_think_curve, 0.5),
        # the warm-up already thinks on about half the hard items, so 0.5 is crossed at once; 0.9 is
        # when thinking on hard items has been learnt (Thinkless's U: down first, then up)
        "steps_to_hard_think_90": None if runs.forced_modes else first_step_above(runs.hard_think_curve, 0.9),
        "modes_forced": runs.forced_modes,
    }


def pareto_front(rows: list[dict[str, Any]]) -> set[str]:
    """Cells no other cell beats on accuracy (higher) and tokens (fewer) at once."""
    return {
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


def write_csv(path: Path, rows: list[dict[str, Any]], front: set[str]) -> None:
    with path.open("w", newline="") as f:
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ["cell"]  # cells may lack a level
        writer = csv.DictWriter(f, fieldnames=[*fields, "pareto"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "pareto": r["cell"] in front})


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown_table(rows: list[dict[str, Any]], front: set[str]) -> str:
    lines = [
        "| cell | seeds | accuracy | tokens | think ratio | think easy / medium / hard | steps to hard think > 0.5 "
        "| > 0.9 | acc / 1k tok | time (s) | Pareto |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        think = "-" if r["think_ratio"] is None else f"{100 * r['think_ratio']:.1f}%"
        levels = " / ".join(_pct(r.get(f"think_{lv}")) for lv in ("easy", "medium", "hard"))
        steps = "-" if r["steps_to_hard_think"] is None else str(r["steps_to_hard_think"])
        steps90 = "-" if r.get("steps_to_hard_think_90") is None else str(r["steps_to_hard_think_90"])
        if r.get("modes_forced"):
            steps = steps90 = "forced"  # the training think ratio is the sampler's share
        lines.append(
            f"| {r['cell']} | {r['seeds']} | {100 * r['accuracy']:.1f} ± {100 * r['accuracy_std']:.1f} | "
            f"{r['tokens']:.1f} | {think} | {levels} | {steps} | {steps90} | {r['acc_per_1k_tokens']:.1f} | "
            f"{r['wall_time_s']:.0f} | {'*' if r['cell'] in front else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot_pareto(path: Path, rows: list[dict[str, Any]], front: set[str]) -> None:
    """Accuracy vs tokens per cell, std over seeds as error bars, the front joined by a line.

    Cells that land on the same spot would hide each other's text labels: numbered markers and a
    legend outside the axes stay readable for any grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_think_ratio(path: Path, curves: dict[str, Curve]) -> None:
    """The sampled think ratio over training, mean over seeds per step, one line per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (cell, pts) in enumerate(curves.items()):
        by_step: dict[int, list[float]] = {}
        for step, value in pts:
            by_step.setdefault(step, []).append(value)
        if by_step:
            steps = sorted(by_step)
            means = [sum(by_step[k]) / len(by_step[k]) for k in steps]
            ax.plot(steps, means, color=plt.cm.tab10(i % 10), linestyle="-" if i < 10 else "--", label=cell)
    ax.set_xlabel("step")
    ax.set_ylabel("sampled think ratio (mean over seeds)")
    if any(curves.values()):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(sweep: Path) -> list[dict[str, Any]]:
    """summary.md / summary.csv / pareto.png / think_ratio.png and TensorBoard HParams, from run dirs."""
    cells = collect_cells(sweep)
    rows = [aggregate_seeds(cell, runs) for cell, runs in sorted(cells.items())]
    front = pareto_front(rows)
    write_csv(sweep / "summary.csv", rows, front)
    (sweep / "summary.md").write_text(markdown_table(rows, front))
    plot_pareto(sweep / "pareto.png", rows, front)
    plot_think_ratio(sweep / "think_ratio.png", {cell: runs.think_curve for cell, runs in cells.items()})
    print((sweep / "summary.md").read_text())
    return rows
