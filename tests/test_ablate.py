"""`rlreason ablate` / `report` through the real CLI: run dirs, summaries, plots, HParams, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.cli import main

TINY = [
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "init.from=null",
    "optim.steps=2",
    "rollout.prompts_per_step=2",
    "rollout.group_size=4",
    "rollout.max_new_tokens=10",
    "eval.n=3",
    "eval.every_n_steps=0",
    "task.n_train_per_level=20",
    "logging.samples_every_n_steps=0",
]


def write_ablation(tmp: Path, grid: str) -> Path:
    path = tmp / "abl.yaml"
    base = Path("experiments/lab/grpo.yaml").resolve()
    path.write_text(f"base: {base}\nname: tiny-sweep\ngrid:\n{grid}\noverrides: {TINY!r}\n")
    return path


GRID = "  reward: [{name: binary}, {name: thinkless}]\n  seed: [0, 1]\n"


def sweep_cmd(path: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "rlreason.cli", "ablate", str(path), f"logging.dir={tmp / 'out'}"]


def test_sweep_runs_reports_and_resumes_after_kill(tmp_path):
    env = {**os.environ, "RLREASON_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore"}
    path = write_ablation(tmp_path, GRID)
    sweep = tmp_path / "out" / "tiny-sweep"
    proc = subprocess.Popen(
        sweep_cmd(path, tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(sweep.glob("runs/*/*/results.json"))) < 1:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the cell it is running
    proc.wait()
    finished = len(list(sweep.glob("runs/*/*/results.json")))
    assert 1 <= finished < 4
    again = subprocess.run(sweep_cmd(path, tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done earlier, skipped") == finished
    assert len(list(sweep.glob("runs/*/*/results.json"))) == 4
    summary = (sweep / "summary.md").read_text()
    assert "reward=binary" in summary and "reward=thinkless" in summary and "| 2 |" in summary
    assert (sweep / "summary.csv").read_text().count("\n") == 3  # header + 2 cells (seeds averaged)
    for png in ("pareto.png", "think_ratio.png"):
        assert matplotlib.image.imread(sweep / png).shape[2] in (3, 4)
    hp = next(sweep.glob("runs/*/*/hparams"))
    acc = EventAccumulator(str(hp))
    acc.Reload()
    assert "hparam/accuracy" in acc.Tags()["scalars"] or acc.Tags()["tensors"]
    # the report rebuilds from the run directories alone
    (sweep / "summary.md").unlink()
    assert main(["report", str(sweep)]) == 0 and (sweep / "summary.md").is_file()


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
