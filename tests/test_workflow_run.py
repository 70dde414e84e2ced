"""The everyday workflow end to end, through real `rlreason` subprocesses on a tiny model.

One project (a folder with pyproject.toml, an SFT stage and an RL config that chains it) is run
from one working directory; its saved config.yaml is then re-run from another one, interrupted with
SIGINT and resumed with the command the run printed; finally the first run is re-evaluated. Between
them they check: the stage cache and run directories do not depend on the working directory; the
`eval.suite` scores, HParams, resolved config and code-block completions reach results.json /
TensorBoard / CSV; Ctrl-C checkpoints, exits 130 in one line and resumes bit for bit; `rlreason eval`
writes into the run's own version directory; the console is quiet.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tests_helpers import wait_while_running

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "experiments" / "lab"
TINY_MODEL = (
    "{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64}"
)

SFT = f"""\
base: {LAB / "sft.yaml"}
name: wf-sft
model: {{lab: {TINY_MODEL}}}
task: {{name: lab-arith, n_train_per_level: 30, n_test_per_level: 4, pool: sft}}
optim: {{steps: 2, batch_size: 4}}
eval: {{n: 4, per_mode: false}}
logging: {{progress_bar: false}}
"""

GRPO = f"""\
base: {LAB / "grpo.yaml"}
name: wf-grpo
init: {{from: sft.yaml}}          # relative to this file; run once, then reused from any directory
task: {{name: lab-arith, n_train_per_level: 30, n_test_per_level: 4}}
rollout: {{prompts_per_step: 2, group_size: 4, max_new_tokens: 10}}
optim: {{steps: 5}}
eval:
  n: 6
  every_n_steps: 2
  suite: [{{name: lab-arith, n_test_per_level: 1, levels: [easy]}}]
logging: {{logger: [tensorboard, csv], samples_every_n_steps: 2}}
"""


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RLREASON_CACHE": str(tmp / "cache")}
    env.pop("RLREASON_FAULTS", None)
    return env


def _rlreason(tmp: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cwd.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "rlreason.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(tmp), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("workflow")
    proj = tmp / "proj"
    (proj / "exp").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'my-experiments'\n")
    (proj / "exp" / "sft.yaml").write_text(SFT)
    (proj / "exp" / "grpo.yaml").write_text(GRPO)
    first = _rlreason(tmp, tmp / "a", "run", "../proj/exp/grpo.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    return {"tmp": tmp, "proj": proj, "first": first, "run": proj / "runs" / "wf-grpo" / "version_0"}


def _events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _no_nan(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"results.json holds {name}: not JSON")

    return json.loads(text, parse_constant=refuse)


def test_run_writes_under_the_project_and_prints_one_start_line(project):
    proc, proj = project["first"], project["proj"]
    assert "init.from: running stage" in proc.stdout  # the warm-up ran once, here
    assert not (project["tmp"] / "a" / "runs").exists()  # nothing relative to the working directory
    start = [line for line in proc.stdout.splitlines() if line.startswith("[rlreason] wf-grpo -> ")]
    assert len(start) == 1, proc.stdout
    assert str(project["run"]) in start[0] and "<think>" in start[0] and " train / 6 eval" in start[0]
    assert "model " + str(proj / "runs" / "wf-sft") in start[0]
    assert "control tokens: <short>=" in start[0]  # the resolved ids are part of the start line ...
    assert not [line for line in proc.stdout.splitlines() if line.startswith("[rlreason] control tokens")]  # only


def test_console_is_quiet_and_the_bar_names_the_rl_step(project):
    err = project["first"].stderr + project["first"].stdout
    for noise in ("GPU available", "TPU available", "💡", "litlogger", "LeafSpec", "past_key_values", "v_num"):
        assert noise not in err, noise
    assert "Epoch 0" not in err and "RL step" in err and "reward=" in err


def test_results_steps_suite_and_per_step_scalars(project):
    run = project["run"]
    results = _no_nan((run / "results.json").read_text())
    assert results["steps"] == 5
    assert results["lab-arith"]["n"] == 6 and results["lab-arith_0"]["n"] == 1  # the eval.suite task
    acc = _events(run)
    final = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in ("eval/accuracy", "eval/lab-arith_0/accuracy")}
    assert [s for s, _ in final["eval/accuracy"]] == [2, 4, 5]  # periodic at 2 and 4, final at 5
    assert final["eval/lab-arith_0/accuracy"] == [(5, pytest.approx(results["lab-arith_0"]["accuracy"]))]
    assert [e.step for e in acc.Scalars("train/reward_mean")] == [0, 1, 2, 3, 4]


def test_hparams_hold_the_whole_resolved_config_with_final_metrics(project):
    acc = _events(project["run"])
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    hparams = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content).session_start_info.hparams
    assert hparams["algo.loss_type"].string_value == "dapo"
    assert hparams["optim.steps"].number_value == 5 and hparams["rollout.group_size"].number_value == 4
    assert hparams["eval.suite"].string_value.startswith("[{")
    assert len(hparams) > 60  # every key, not a hard-coded five
    assert acc.Scalars("hparam/accuracy")[0].step == 5
    config = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert config.startswith("```") and "loss_type: dapo" in config
    samples = acc.Tensors("samples/text_summary")
    assert [e.step for e in samples] == [0, 2, 4]
    assert samples[0].tensor_proto.string_val[0].decode().count("```text") >= 2


def test_csv_logger_gets_the_same_metrics(project):
    rows = list(csv.DictReader((project["run"] / "metrics.csv").open()))
    reward = {int(r["step"]): float(r["train/reward_mean"]) for r in rows if r.get("train/reward_mean")}
    tb = {e.step: e.value for e in _events(project["run"]).Scalars("train/reward_mean")}
    assert reward.keys() == tb.keys() and all(reward[k] == pytest.approx(tb[k]) for k in tb)
    assert any(r.get("eval/lab-arith_0/accuracy") and int(r["step"]) == 5 for r in rows)


def _outcome(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    results = _no_nan((run_dir / "results.json").read_text())
    results.pop("train_time_s")
    return load_file(str(run_dir / "policy" / "model.safetensors")), results


def test_saved_config_reruns_elsewhere_ctrl_c_checkpoints_and_resumes_bitwise(project):
    tmp, first = project["tmp"], project["run"]
    second = first.parent / "version_1"
    cwd = tmp / "b"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "rlreason.cli", "run", str(first / "config.yaml")]
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = second / "checkpoints" / "step-000001.ckpt.json"
    wait_while_running(proc, marker.exists, "the first checkpoint")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "running stage" not in out  # the saved config found the same warm-up
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rlreason: interrupted at step ") and "/5; checkpoint " in last, err[-2000:]
    step = int(last.split("interrupted at step ")[1].split("/")[0])
    assert 1 <= step < 5 and (second / "checkpoints" / f"step-{step:06d}.ckpt").is_file()
    assert not (second / "results.json").exists()
    resume = shlex.split(last.split("resume with: ")[1])
    assert resume[:2] == ["rlreason", "run"] and resume[-1] == "--resume"
    again = _rlreason(tmp, cwd, *resume[1:])
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"step-{step:06d}.ckpt" in again.stdout and "running stage" not in again.stdout
    (p0, r0), (p1, r1) = _outcome(first), _outcome(second)
    assert r0 == r1
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)


def test_eval_writes_into_the_run_version_with_per_mode_rows(project, monkeypatch, capsys):
    from rlreason.cli import main

    elsewhere = project["tmp"] / "c"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("RLREASON_CACHE", str(project["tmp"] / "cache"))
    run = project["run"]
    assert main(["eval", str(run), "eval.per_mode=true", "eval.n=3"]) == 0
    err = capsys.readouterr().err
    results = _no_nan((run / "eval" / "results.json").read_text())
    assert set(results) >= {"lab-arith", "lab-arith[short]", "lab-arith[think]", "lab-arith_0", "model"}
    assert results["lab-arith[think]"]["think_ratio"] == 1.0 and results["lab-arith"]["n"] == 3
    assert "eval [1/4] lab-arith: 3 problems" in err and "eval [4/4] lab-arith_0: accuracy" in err
    assert (run / "eval" / "eval_samples.jsonl").is_file() and not list(elsewhere.iterdir())
