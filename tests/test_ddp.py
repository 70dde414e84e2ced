"""Real 2-process CPU DDP (gloo): the same global batch gives the same parameters as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.config import load_config
from rlreason.train.run import run_experiment

TINY = [
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "task.n_train_per_level=50",
    "task.n_test_per_level=8",
    "eval.n=8",
    "logging.progress_bar=false",
    "logging.histograms=false",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "RLREASON_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def sft_policy(tmp_path_factory, env) -> Path:
    tmp = tmp_path_factory.mktemp("sft")
    old = os.environ.get("RLREASON_CACHE")
    os.environ["RLREASON_CACHE"] = env["RLREASON_CACHE"]
    try:
        cfg = load_config(
            "experiments/lab/sft.yaml",
            [*TINY, f"logging.dir={tmp}", "optim.steps=3", "optim.batch_size=4", "eval.per_mode=false"],
        )
        return run_experiment(cfg) / "policy"
    finally:
        if old is None:
            os.environ.pop("RLREASON_CACHE")
        else:
            os.environ["RLREASON_CACHE"] = old


def run_cli(config: str, overrides: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlreason.cli", "run", config, *overrides]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "policy" / "model.safetensors"))


# a length term makes rewards differ within groups even when an untrained model gets all answers wrong
RECIPES = {
    "grpo": ("experiments/lab/grpo.yaml", ["reward={name: sum, terms: [{name: binary}, {name: kimi}]}"]),
    "degrpo": ("experiments/lab/thinkless.yaml", ["reward={name: sum, terms: [{name: thinkless}, {name: kimi}]}"]),
    # the opt-in fast paths: info-gain scored on each rank's own rollout cache, copies run once
    "l2t_fast": (
        "experiments/lab/l2t.yaml",
        [
            "reward={name: sum, terms: [{name: info_gain, fast: true, scoring: rollout_cache}, {name: kimi}]}",
            "optim.dedup_sequences=true",
        ],
    ),
}


@pytest.mark.parametrize("algo", list(RECIPES))
def test_two_process_ddp_matches_one_process(tmp_path, sft_policy, env, algo):
    config, reward = RECIPES[algo]
    common = [
        *TINY,
        f"init.from={sft_policy}",
        "optim.steps=1",
        "optim.optimizer=sgd",
        "optim.lr=0.5",
        "rollout.group_size=4",
        "rollout.max_new_tokens=12",
        "eval.every_n_steps=0",
        "trainer.accelerator=cpu",
        "logging.samples_every_n_steps=0",
        "algo.beta=0.0",
        *reward,
    ]
    single = run_cli(config, [*common, f"logging.dir={tmp_path / 'one'}", "rollout.prompts_per_step=4"], env)
    assert single.returncode == 0, single.stderr[-2000:]
    double = run_cli(
        config,
        [
            *common,
            f"logging.dir={tmp_path / 'two'}",
            "rollout.prompts_per_step=2",
            "trainer.devices=2",
            "trainer.strategy=ddp",
        ],
        env,
    )
    assert double.returncode == 0, double.stderr[-2000:]
    one_dir = next((tmp_path / "one").glob("*/version_0"))
    two_dir = next((tmp_path / "two").glob("*/version_0"))
    w1, w2, w0 = weights(one_dir), weights(two_dir), load_file(str(sft_policy / "model.safetensors"))
    assert any(not torch.equal(w1[k], w0[k]) for k in w1)  # the step did change the policy
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-6, rtol=0)
    # one set of event files, one checkpoint, one results file: rank zero wrote them
    assert len(list(two_dir.glob("events.out.tfevents.*"))) == 1
    assert len(list((two_dir / "checkpoints").glob("*.ckpt"))) == 1
    r1 = json.loads((one_dir / "results.json").read_text())["lab-arith"]
    r2 = json.loads((two_dir / "results.json").read_text())["lab-arith"]
    assert r1["n"] == r2["n"] == 8 and r1["accuracy"] == r2["accuracy"]
    if algo == "l2t_fast":  # each rank scored from its own rollout's cache
        acc = EventAccumulator(str(two_dir))
        acc.Reload()
        assert [e.value for e in acc.Scalars("info_gain/cache_scored")] == [1.0]


def test_two_process_ddp_resume_is_exact(tmp_path, sft_policy, env):
    """Resume a 2-rank run from its step-2 checkpoint: steps 3-4 again give the same final weights.

    (Each rank restores its own data position and RNG state from the one rank-zero checkpoint.)"""
    common = [
        *TINY,
        f"init.from={sft_policy}",
        "optim.steps=4",
        "rollout.group_size=4",
        "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=12",
        "eval.every_n_steps=0",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "logging.samples_every_n_steps=0",
        "logging.checkpoint_every_n_steps=2",
        "logging.keep_last_n=0",
        "reward={name: sum, terms: [{name: binary}, {name: kimi}]}",
    ]
    full = run_cli("experiments/lab/grpo.yaml", [*common, f"logging.dir={tmp_path / 'full'}"], env)
    assert full.returncode == 0, full.stderr[-2000:]
    run_dir = next((tmp_path / "full").glob("*/version_0"))
    # a copy of the run as it stood after step 2: later checkpoints, final policy and results removed
    copy = tmp_path / "copy" / "lab-grpo" / "version_0"
    shutil.copytree(run_dir, copy)
    for path in [copy / "results.json", *(copy / "checkpoints").glob("step-000004*")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(copy / "policy")
    ckpt = copy / "checkpoints" / "step-000002.ckpt"
    resumed = run_cli("experiments/lab/grpo.yaml", [*common, f"init.resume={ckpt}"], env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "from step-000002.ckpt" in resumed.stdout
    newest = max(copy.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    acc = EventAccumulator(str(newest), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/reward_mean")] == [2, 3]  # only steps 3-4 were trained again
    w_full, w_resumed = weights(run_dir), weights(copy)
    step2 = load_file(str(copy / "checkpoints" / "step-000002-hf" / "model.safetensors"))
    assert any(not torch.equal(w_full[k], step2[k]) for k in w_full)  # steps 3-4 moved the policy
    for k in w_full:
        assert torch.equal(w_resumed[k], w_full[k]), k
    r_full = json.loads((run_dir / "results.json").read_text())["lab-arith"]
    r_resumed = json.loads((copy / "results.json").read_text())["lab-arith"]
    assert r_full == r_resumed
