"""Real 2-process CPU DDP (gloo): the same global batch gives the same parameters as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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


@pytest.mark.parametrize("algo", ["grpo", "degrpo"])
def test_two_process_ddp_matches_one_process(tmp_path, sft_policy, env, algo):
    config = "experiments/lab/thinkless.yaml" if algo == "degrpo" else "experiments/lab/grpo.yaml"
    first = "thinkless" if algo == "degrpo" else "binary"
    # a length term makes rewards differ within groups even when an untrained model gets all answers wrong
    reward = f"reward={{name: sum, terms: [{{name: {first}}}, {{name: kimi}}]}}"
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
        reward,
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
