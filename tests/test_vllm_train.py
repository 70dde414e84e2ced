"""`rollout.backend: vllm` in real `rlreason run` subprocesses on a tiny lab model (head size 32, as
vLLM's CPU attention needs): 3-step GRPO with the engine in sync (parity, policy versions, sync time),
bitwise resume after kill -9, DeGRPO with a mode sampler and truncated IS, L2T-PPO with info-gain,
the parity alarm when a sync is skipped, and the one-line refusal when vLLM is not installed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

LAB = "{hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64}"
CONFIG = f"""\
base: {REPO / "experiments/lab/grpo.yaml"}
name: v
init: {{from: null}}
model: {{lab: {LAB}}}
task: {{name: lab-arith, n_train_per_level: 30, n_test_per_level: 4}}
reward: {{name: callable, fn: "reward_fns:length_bonus"}}  # varied rewards: real updates from step 1
rollout: {{backend: vllm, prompts_per_step: 4, group_size: 4, max_new_tokens: 12, temperature: 0.8, top_p: 0.95,
          vllm: {{kv_cache_memory_bytes: 16777216, max_model_len: 256}}}}
optim: {{steps: 3, lr: 1.0e-3}}
eval: {{n: 6, every_n_steps: 0}}
logging: {{checkpoint_every_n_steps: 1, logger: csv, samples_every_n_steps: 0, progress_bar: false, histograms: false}}
"""


def _run(tmp: Path, *overrides: str, faults: str = "", check: bool = True) -> subprocess.CompletedProcess:
    config = tmp / "v.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{REPO}", "RLREASON_CACHE": str(tmp / "cache")}
    env["OMP_NUM_THREADS"] = "1"
    env.pop("RLREASON_FAULTS", None)
    if faults:
        env["RLREASON_FAULTS"] = faults
    cmd = [sys.executable, "-m", "rlreason.cli", "run", str(config), f"logging.dir={tmp / 'runs'}", "logging.version=r"]
    proc = subprocess.run([*cmd, *overrides], capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _run_dir(tmp: Path) -> Path:
    return tmp / "runs" / "v" / "r"


def _metrics(tmp: Path) -> list[dict[str, float]]:
    """One dict per logged training step (the CSV logger's rows that carry parity)."""
    rows = list(csv.DictReader((_run_dir(tmp) / "metrics.csv").open()))
    return [{k: float(v) for k, v in r.items() if v} for r in rows if r.get("parity/logprob_diff_mean")]


needs_vllm = pytest.mark.skipif(
    __import__("importlib").util.find_spec("vllm") is None, reason="the optional extra vllm (scripts/setup.sh)"
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("vllm-grpo")
    _run(tmp)
    return tmp


@needs_vllm
def test_grpo_trains_with_the_engine_in_sync(reference):
    steps = _metrics(reference)
    assert len(steps) == 3
    assert [s["rollout/policy_version"] for s in steps] == [0.0, 1.0, 2.0]
    for s in steps:
        assert s["parity/logprob_diff_max"] <= 1e-5
        assert 0 < s["perf/weight_sync_time"] < 5
    results = json.loads((_run_dir(reference) / "results.json").read_text())
    assert results["lab-arith"]["n"] == 6  # evaluated through the same engine


@needs_vllm
def test_kill_9_during_a_checkpoint_write_then_resume_is_bitwise(tmp_path, reference):
    proc = _run(tmp_path, faults="checkpoint_write@2", check=False)
    assert proc.returncode == -signal.SIGKILL
    proc = _run(tmp_path, "--resume")
    assert "step-000001.ckpt" in proc.stdout
    ref = load_file(str(_run_dir(reference) / "policy" / "model.safetensors"))
    got = load_file(str(_run_dir(tmp_path) / "policy" / "model.safetensors"))
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    resumed = _metrics(tmp_path)[-1]
    assert resumed["rollout/policy_version"] == 2.0  # the rebuilt engine starts at the resumed step count
    first = {k: v for k, v in _metrics(reference)[-1].items() if not k.startswith("perf/")}
    assert {k: v for k, v in resumed.items() if not k.startswith("perf/") and k in first} == first


@needs_vllm
def test_degrpo_with_a_mode_sampler_and_truncated_is(tmp_path):
    _run(
        tmp_path,
        "optim.steps=2",
        "algo={name: degrpo}",
        "reward={name: thinkless}",
        "rollout.sampler=forced_mode",
        "rollout.is_correction=token_truncate",
    )
    steps = _metrics(tmp_path)
    assert len(steps) == 2
    for s in steps:
        assert s["parity/logprob_diff_max"] <= 1e-5
        assert 0 <= s["rollout/forced_short_share"] <= 1
        assert abs(s["rollout_is/weight_mean"] - 1) < 1e-4  # in sync: every weight ~1
        assert "perf/recompute_old_time" in s


@needs_vllm
def test_l2t_ppo_with_info_gain(tmp_path):
    _run(tmp_path, "optim.steps=2", "algo={name: l2t_ppo}", "reward={name: info_gain}", "rollout.max_new_tokens=16")
    steps = _metrics(tmp_path)
    assert len(steps) == 2 and all(s["parity/logprob_diff_max"] <= 1e-5 for s in steps)


@needs_vllm
def test_a_skipped_sync_trips_the_parity_alarm_within_one_step(tmp_path):
    proc = _run(tmp_path, "optim.steps=2", faults="skip_sync@1")
    steps = _metrics(tmp_path)
    assert steps[0]["parity/logprob_diff_mean"] < 1e-5
    assert steps[1]["rollout/policy_version"] == 0.0  # sampled by the weights before step 1's update
    assert steps[1]["parity/logprob_diff_mean"] > 1e-3
    assert "step 2: sampler/trainer log-prob gap jumped" in proc.stderr


@needs_vllm
def test_two_process_ddp_one_engine_per_rank_matches_one_process(tmp_path, reference):
    """Each rank builds its own engine in the gloo group and samples its half of the batch with the
    same per-sample seeds: the 2-rank run ends on the 1-process run's weights (to 1e-5: three AdamW
    steps at lr 1e-3 turn the all-reduce's rounding into updates of that size)."""
    _run(tmp_path, "rollout.prompts_per_step=2", "trainer={accelerator: cpu, devices: 2, strategy: ddp}")
    steps = _metrics(tmp_path)
    assert [s["rollout/policy_version"] for s in steps] == [0.0, 1.0, 2.0]
    assert all(s["parity/logprob_diff_max"] <= 1e-5 for s in steps)
    ref = load_file(str(_run_dir(reference) / "policy" / "model.safetensors"))
    got = load_file(str(_run_dir(tmp_path) / "policy" / "model.safetensors"))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-5, rtol=0)


def test_without_vllm_the_backend_is_refused_in_one_line(tmp_path):
    """vLLM hidden from the import system, as on a machine without the extra."""
    hide = "import sys; sys.modules['vllm'] = None\nfrom rlreason.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    config = tmp_path / "v.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{REPO}", "RLREASON_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", hide, "run", str(config)], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "rollout.backend" in line]
    assert len(lines) == 1
    assert "'vllm' needs vLLM, which is not installed: pip install 'rlreason[vllm]'" in lines[0]


def test_sleep_mode_without_cuda_is_refused_in_one_line_when_the_run_starts(tmp_path):
    """A GPU recipe loads anywhere; the run on a machine without CUDA refuses sleep mode in one line."""
    proc = _run(tmp_path, "rollout.vllm.sleep_mode=true", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "sleep_mode" in line]
    assert lines == [
        "rlreason: error: rollout.vllm.sleep_mode: CUDA only (vLLM refuses enable_sleep_mode on CPU): set it false"
    ]
    assert "Traceback" not in proc.stderr
