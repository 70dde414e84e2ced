"""`rlreason ablate` / `report` through the real CLI: run dirs, cell files, summaries, plots, HParams,
resume, reports of sweeps made before cell files; the shared cell runner through the reproductions."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tests_helpers import TINY_LAB, wait_while_running

from rlreason.ablate.runner import FAILED, SKIPPED, run_cell
from rlreason.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = [
    *TINY_LAB,
    "init.from=null",
    "optim.steps=2",
    "rollout.prompts_per_step=2",
    "rollout.group_size=4",
    "rollout.max_new_tokens=10",
]
GRID = "  reward: [{name: binary}, {name: thinkless}]\n  seed: [0, 1]\n"
CELLS = {"reward=binary", "reward=thinkless"}


def write_ablation(tmp: Path, grid: str) -> Path:
    path = tmp / "abl.yaml"
    base = (REPO / "experiments/lab/grpo.yaml").resolve()
    path.write_text(f"base: {base}\nname: tiny-sweep\ngrid:\n{grid}\noverrides: {TINY!r}\n")
    return path


def sweep_cmd(path: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "rlreason.cli", "ablate", str(path), f"logging.dir={tmp / 'out'}"]


def results_files(sweep: Path) -> list[Path]:
    return sorted(sweep.glob("runs/*/*/results.json"))


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """A 2 x 2 sweep killed (with its running cell) after its first finished cell, then run again to
    the end: (sweep directory, cells finished before the kill, the second run's output)."""
    tmp = tmp_path_factory.mktemp("sweep")
    env = {**os.environ, "RLREASON_CACHE": str(tmp / "cache"), "PYTHONWARNINGS": "ignore"}
    path = write_ablation(tmp, GRID)
    sweep = tmp / "out" / "tiny-sweep"
    proc = subprocess.Popen(
        sweep_cmd(path, tmp), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_while_running(proc, lambda: bool(results_files(sweep)), "the first finished cell", poll_s=0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the cell it is running
    proc.wait()
    finished = len(results_files(sweep))
    again = subprocess.run(sweep_cmd(path, tmp), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    return sweep, finished, again.stdout


def summary_rows(sweep: Path) -> dict[str, dict[str, str]]:
    with (sweep / "summary.csv").open() as f:
        return {row["cell"]: row for row in csv.DictReader(f)}


def copy_sweep(sweep: Path, dest: Path) -> Path:
    """The sweep's run records without its report, checkpoints and policies (a report needs none)."""
    copy = shutil.copytree(sweep, dest, ignore=shutil.ignore_patterns("checkpoints", "policy", "hparams"))
    for name in ("summary.md", "summary.csv", "pareto.png", "think_ratio.png"):
        (copy / name).unlink()
    return copy


def test_sweep_resumes_after_kill(resumed_sweep):
    sweep, finished, stdout = resumed_sweep
    assert 1 <= finished < 4
    assert stdout.count("done earlier, skipped") == finished
    assert len(results_files(sweep)) == 4


def test_sweep_report_summaries_plots_and_hparams(resumed_sweep):
    sweep, _, _ = resumed_sweep
    summary = (sweep / "summary.md").read_text()
    assert "| reward=binary | 2 |" in summary and "| reward=thinkless | 2 |" in summary
    rows = summary_rows(sweep)
    assert set(rows) == CELLS and {r["seeds"] for r in rows.values()} == {"2"}  # seeds averaged
    for png in ("pareto.png", "think_ratio.png"):
        assert matplotlib.image.imread(sweep / png).shape[2] in (3, 4)
    for results_file in results_files(sweep):
        acc = EventAccumulator(str(results_file.parent / "hparams"))
        acc.Reload()
        accuracy = json.loads(results_file.read_text())["lab-arith"]["accuracy"]
        assert [e.value for e in acc.Scalars("hparam/accuracy")] == [pytest.approx(accuracy)]
        start = plugin_data_pb2.HParamsPluginData.FromString(
            acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        ).session_start_info
        seed = yaml.safe_load((results_file.parent / "config.yaml").read_text())["seed"]
        assert start.hparams["seed"].number_value == seed
        assert start.hparams["reward.name"].string_value in ("binary", "thinkless")
    # the report rebuilds from the run directories alone
    (sweep / "summary.md").unlink()
    assert main(["report", str(sweep)]) == 0 and (sweep / "summary.md").read_text() == summary


def test_runner_writes_each_cell_its_cell_file(resumed_sweep):
    sweep, _, _ = resumed_sweep
    for results_file in results_files(sweep):
        run_dir = results_file.parent
        cell = json.loads((run_dir / "cell.json").read_text())
        seed = yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]
        assert cell["run"] == run_dir.name and cell["cell"] in CELLS and cell["seed"] == seed
        assert cell["grid"] == {"reward": {"name": cell["cell"].removeprefix("reward=")}, "seed": seed}
        assert f"seed={seed}" in cell["overrides"] and f"logging.dir={sweep.parent}" in cell["overrides"]
        assert cell["written_by"] == "runner"


def test_report_of_a_sweep_without_cell_files_writes_them_from_its_spec(resumed_sweep, tmp_path):
    sweep, _, _ = resumed_sweep
    old = copy_sweep(sweep, tmp_path / "old")
    for cell_file in old.glob("runs/*/*/cell.json"):
        cell_file.unlink()  # what the runner before cell files left
    assert main(["report", str(old)]) == 0
    assert summary_rows(old) == summary_rows(sweep)
    for results_file in results_files(old):
        written = json.loads((results_file.parent / "cell.json").read_text())
        runner = json.loads((sweep / results_file.relative_to(old).parent / "cell.json").read_text())
        assert {k: written[k] for k in ("cell", "run", "grid", "seed")} == {
            k: runner[k] for k in ("cell", "run", "grid", "seed")
        }


def test_report_groups_runs_by_cell_file_not_directory_name(resumed_sweep, tmp_path):
    sweep, _, _ = resumed_sweep
    copy = copy_sweep(sweep, tmp_path / "renamed")
    run_dir = results_files(copy)[-1].parent
    run_dir.rename(run_dir.with_name("moved-by-hand"))
    assert main(["report", str(copy)]) == 0
    assert summary_rows(copy) == summary_rows(sweep)


def test_report_refuses_runs_it_cannot_identify(resumed_sweep, tmp_path, capsys):
    sweep, _, _ = resumed_sweep
    copy = copy_sweep(sweep, tmp_path / "bare")
    for cell_file in copy.glob("runs/*/*/cell.json"):
        cell_file.unlink()
    (copy / "ablation.yaml").unlink()
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "no ablation.yaml" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "grid, message",
    [
        ("  optim.lrr: [0.1]\n", "Key 'lrr' not in"),
        ("  reward: [{name: binray}]\n", "unknown reward 'binray'"),
    ],
)
def test_invalid_grid_fails_before_any_run(tmp_path, capsys, grid, message):
    path = write_ablation(tmp_path, grid)
    assert main(["ablate", str(path), f"logging.dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list((tmp_path / "out").glob("*/runs/*"))


def test_reproductions_run_their_variants_through_the_cell_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from _repro import run_variant

    config = str(REPO / "experiments/lab/grpo.yaml")
    overrides = [*TINY, f"logging.dir={tmp_path / 'runs'}"]
    out = run_variant(config, 1, "tiny", overrides)
    run_dir = Path(out["run_dir"])
    assert run_dir == tmp_path / "runs" / "lab-grpo" / "tiny-seed1"
    assert out["results"] == json.loads((run_dir / "results.json").read_text())
    assert [s for s, _ in out["curves"]["train/reward_mean"]] == [0, 1]  # optim.steps=2
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == 1
    # the same cell again is not rerun
    assert run_cell(config, [*overrides, "seed=1"], run_dir, logs=tmp_path / "logs", say=print) == SKIPPED
    # a run that fails is tried twice, each attempt's output kept
    bad = tmp_path / "runs" / "lab-grpo" / "bad"
    assert run_cell(config, [*overrides, "optim.lrr=1"], bad, logs=tmp_path / "logs", say=print) == FAILED
    logs = sorted((tmp_path / "logs").iterdir())
    assert [p.name for p in logs] == ["bad.attempt1.log", "bad.attempt2.log"]
    assert all("lrr" in p.read_text() for p in logs)
