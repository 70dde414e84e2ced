"""Faults survived, through real `rlreason run` subprocesses on a tiny model.

kill -9 during training and during a checkpoint write, a corrupted latest checkpoint, a NaN reward
from a user's reward function and an injected NaN loss: each resumed or continued run must end with
exactly the parameters and metrics of the uninterrupted run with the same seed (bitwise on CPU), or
stop with one line, exit status 3 and a loadable checkpoint of its last good state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import wait_while_running

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

CONFIG = f"""\
base: {REPO / "experiments/lab/grpo.yaml"}
name: faults
init: {{from: null}}
model:
  lab: {{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64}}
task: {{name: lab-arith, n_train_per_level: 40, n_test_per_level: 4}}
reward: {{name: callable, fn: "reward_fns:length_bonus"}}  # varied rewards: real updates from step 1
algo: {{name: grpo, loss_type: dapo, beta: 0.05, num_iterations: 2}}
rollout: {{prompts_per_step: 4, group_size: 4, max_new_tokens: 12}}
optim: {{steps: 6, minibatches: 2, max_nonfinite_in_a_row: 2}}
eval: {{n: 8, every_n_steps: 3}}
logging: {{checkpoint_every_n_steps: 2, keep_last_n: 2, samples_every_n_steps: 2, progress_bar: false}}
"""


def _env(tmp: Path, faults: str = "") -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{REPO}", "RLREASON_CACHE": str(tmp / "cache")}
    env.pop("RLREASON_FAULTS", None)
    if faults:
        env["RLREASON_FAULTS"] = faults
    return env


def _cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rlreason.cli", "run", str(config), *args]


def _setup(tmp: Path, *overrides: str) -> tuple[Path, list[str]]:
    config = tmp / "faults.yaml"
    config.write_text(CONFIG)
    return config, [f"logging.dir={tmp / 'runs'}", "logging.version=v", *overrides]


def _run(tmp: Path, *args: str, faults: str = "", check: bool = True) -> subprocess.CompletedProcess:
    config, base = _setup(tmp)
    proc = subprocess.run(_cmd(config, *base, *args), capture_output=True, text=True, env=_env(tmp, faults))
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _kill_when(tmp: Path, marker: str, *args: str) -> None:
    """Start a run and SIGKILL it as soon as `marker` (a path under the run dir) exists."""
    config, base = _setup(tmp)
    cmd = _cmd(config, *base, *args)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(tmp))
    target = tmp / "runs" / "faults" / "v" / marker
    wait_while_running(proc, target.exists, marker, poll_s=0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    proc.stderr.close()


def _outcome(tmp: Path) -> tuple[dict[str, torch.Tensor], dict]:
    run_dir = tmp / "runs" / "faults" / "v"
    params = load_file(str(run_dir / "policy" / "model.safetensors"))
    results = json.loads((run_dir / "results.json").read_text())
    results.pop("train_time_s")
    return params, results


def _assert_same(a: tuple[dict[str, torch.Tensor], dict], b: tuple[dict[str, torch.Tensor], dict]) -> None:
    assert a[0].keys() == b[0].keys()
    for name in a[0]:
        assert torch.equal(a[0][name], b[0][name]), f"parameter {name} differs"
    assert json.dumps(a[1], sort_keys=True) == json.dumps(b[1], sort_keys=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict]:
    tmp = tmp_path_factory.mktemp("reference")
    _run(tmp)
    outcome = _outcome(tmp)
    step4 = load_file(str(tmp / "runs" / "faults" / "v" / "checkpoints" / "step-000004-hf" / "model.safetensors"))
    assert any(not torch.equal(outcome[0][k], v) for k, v in step4.items())  # steps 5-6 moved the parameters
    return outcome


def test_kill_9_during_training_then_resume_is_bitwise_identical(tmp_path, uninterrupted):
    _kill_when(tmp_path, "checkpoints/step-000004.ckpt")  # killed somewhere in step 5 or 6
    proc = _run(tmp_path, "--resume")
    assert "resuming" in proc.stdout and "step-000004.ckpt" in proc.stdout
    _assert_same(_outcome(tmp_path), uninterrupted)


def test_kill_9_and_resume_with_info_gain_and_l2t_ppo(tmp_path):
    """The dense-reward path: info-gain's snapshot of the initial parameters (theta_ref of its Fisher
    penalty) must come back from the checkpoint, not be re-taken from the step-4 parameters."""
    # + a length reward: the random-init policy is never right, and without varied rewards nothing moves
    terms = '[{name: info_gain}, {name: callable, fn: "reward_fns:length_bonus", weight: 0.1}]'
    dense = [f"reward={{name: sum, terms: {terms}}}", "algo={name: l2t_ppo, loss_type: dapo}", "optim.steps=4"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir(), killed.mkdir()
    _run(reference, *dense)
    _kill_when(killed, "checkpoints/step-000002.ckpt.json", *dense)
    state = torch.load(
        killed / "runs" / "faults" / "v" / "checkpoints" / "step-000002.ckpt", weights_only=True, map_location="cpu"
    )
    assert state["rlreason"]["initial_params"] is not None
    proc = _run(killed, *dense, "--resume")
    assert "step-000002.ckpt" in proc.stdout
    _assert_same(_outcome(killed), _outcome(reference))

    def snapshot(tmp: Path) -> dict[str, torch.Tensor]:
        ckpt = tmp / "runs" / "faults" / "v" / "checkpoints" / "step-000004.ckpt"
        return torch.load(ckpt, weights_only=True, map_location="cpu")["rlreason"]["initial_params"]

    # (the random-init policy writes no well-formed reasoning, so the penalty cannot show in the
    # metrics here: compare the snapshot the resumed run carried to step 4 with the reference's)
    resumed, original = snapshot(killed), snapshot(reference)
    assert resumed.keys() == original.keys()
    assert all(torch.equal(resumed[k], original[k]) for k in original)
    step2 = state["state_dict"]
    assert any(not torch.equal(v, step2[f"policy.{k}"]) for k, v in original.items())  # not the step-2 weights


def test_kill_9_during_a_checkpoint_write_then_resume(tmp_path, uninterrupted):
    proc = _run(tmp_path, faults="checkpoint_write@4", check=False)
    assert proc.returncode == -signal.SIGKILL
    ckpts = tmp_path / "runs" / "faults" / "v" / "checkpoints"
    assert (ckpts / "step-000004.ckpt.tmp").is_file() and not (ckpts / "step-000004.ckpt").exists()
    proc = _run(tmp_path, "--resume")
    assert "step-000002.ckpt" in proc.stdout  # the half-written step-4 file is never read
    _assert_same(_outcome(tmp_path), uninterrupted)


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, uninterrupted):
    # the checkpoint itself, not its manifest: the manifest is written before the rename (by design),
    # so a kill right after it may find no step-4 checkpoint yet (seen under load)
    _kill_when(tmp_path, "checkpoints/step-000004.ckpt")
    latest = tmp_path / "runs" / "faults" / "v" / "checkpoints" / "step-000004.ckpt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # inside tensor data: torch.load alone would not notice
    latest.write_bytes(bytes(data))
    proc = _run(tmp_path, "--resume")
    assert "step-000004.ckpt is unusable: SHA-256 does not match" in proc.stderr
    assert "step-000002.ckpt" in proc.stdout
    _assert_same(_outcome(tmp_path), uninterrupted)


def test_truncated_checkpoint_is_refused_when_named_explicitly(tmp_path):
    _kill_when(tmp_path, "checkpoints/step-000002.ckpt")
    ckpt = tmp_path / "runs" / "faults" / "v" / "checkpoints" / "step-000002.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    proc = _run(tmp_path, f"init.resume={ckpt}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("(truncated?)") and proc.stderr.count("rlreason: error") == 1


def test_checkpoints_load_with_weights_only_and_keep_last_n(tmp_path):
    _run(tmp_path)
    ckpts = tmp_path / "runs" / "faults" / "v" / "checkpoints"
    names = sorted(p.name for p in ckpts.glob("step-*.ckpt"))
    assert names == ["step-000004.ckpt", "step-000006.ckpt"]  # keep_last_n=2 pruned step 2
    state = torch.load(ckpts / "step-000006.ckpt", weights_only=True, map_location="cpu")
    assert state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 6
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"next_step": 6}]  # the data position
    assert {"python", "numpy", "torch"} <= set(state["rlreason"]["rng"])
    proc = _run(tmp_path, "--resume")  # a finished run is not trained again
    assert "already finished" in proc.stdout


def test_inf_reward_once_is_skipped_counted_and_training_goes_on(tmp_path):
    proc = _run(tmp_path, "reward.fn=reward_fns:inf_on_second_call", "logging.checkpoint_every_n_steps=0")
    run_dir = tmp_path / "runs" / "faults" / "v"
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    skipped = acc.Scalars("faults/nonfinite_reward")
    assert [e.value for e in skipped] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # step 2 only
    assert (run_dir / "results.json").is_file() and "error" not in proc.stderr


def test_nan_loss_is_skipped_and_counted(tmp_path):
    _run(tmp_path, "logging.checkpoint_every_n_steps=0", faults="nan_loss@2")
    acc = EventAccumulator(str(tmp_path / "runs" / "faults" / "v"), size_guidance={"scalars": 0})
    acc.Reload()
    skipped = acc.Scalars("faults/nonfinite_loss")
    assert [e.value for e in skipped] == [0.0, 4.0, 0.0, 0.0, 0.0, 0.0]  # step 2: 2 minibatches x 2 iterations
    assert [e.value for e in acc.Scalars("faults/nonfinite_total")] == [0.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_inf_rewards_in_a_row_stop_with_one_line_and_a_last_good_checkpoint(tmp_path):
    proc = _run(tmp_path, "reward.fn=reward_fns:always_inf", check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if "rlreason: error" in line]
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert "2 steps in a row with non-finite updates (last: non-finite reward at step 2" in err[0]
    stopped = tmp_path / "runs" / "faults" / "v" / "checkpoints" / "step-000001-stopped.ckpt"
    assert str(stopped) in err[0]
    state = torch.load(stopped, weights_only=True, map_location="cpu")
    assert state["rlreason"]["nonfinite_total"] == 2
