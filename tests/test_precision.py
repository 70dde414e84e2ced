"""fp32 master weights under bf16 compute, dropout off during RL, and the sampler/trainer parity metric,
on real tiny Qwen2 models through the real Lightning Trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.config import load_config
from rlreason.errors import RLReasonError
from rlreason.policy.lab_tiny import build_lab_tiny
from rlreason.train.optim import build_optimizer
from rlreason.train.parity import parity_jump
from rlreason.train.run import run_experiment

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
}


def rl_overrides(tmp: Path, model: Path, *extra: str) -> list[str]:
    return [
        f"model.name_or_path={model}",
        "task.n_train_per_level=20",
        "task.n_test_per_level=2",
        "eval.n=2",
        "rollout.prompts_per_step=2",
        "rollout.group_size=4",
        "rollout.max_new_tokens=8",
        "optim.steps=1",
        f"logging.dir={tmp}",
        "logging.progress_bar=false",
        "logging.histograms=false",
        *extra,
    ]


def scalars(run_dir: Path) -> dict[str, list[float]]:
    ea = EventAccumulator(str(run_dir))
    ea.Reload()
    return {t: [e.value for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_lab_tiny(tmp_path_factory.mktemp("m") / "tiny", **TINY)


@pytest.fixture(scope="module")
def tiny_dropout(tmp_path_factory) -> Path:
    """The same tiny Qwen2 with attention dropout 0.1 (as some released checkpoints have)."""
    path = build_lab_tiny(tmp_path_factory.mktemp("m") / "dropout", **TINY)
    cfg = json.loads((path / "config.json").read_text())
    cfg["attention_dropout"] = 0.1
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def test_bf16_run_at_lr_1e6_changes_the_fp32_master_weights(tiny, tmp_path, monkeypatch):
    """bf16 weights would drop almost every 1e-6 update (below half an ulp); fp32 masters keep them."""
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    before = load_file(str(tiny / "model.safetensors"))
    cfg = load_config(
        "experiments/lab/grpo.yaml",
        rl_overrides(
            tmp_path,
            tiny,
            "init.from=null",
            "model.dtype=bfloat16",  # trainer.precision defaults to bf16-mixed
            "optim.lr=1e-6",
            "algo.entropy_coef=0.01",  # a non-zero gradient whatever the rewards of a random model
            "logging.checkpoint_every_n_steps=1",
        ),
    )
    run_dir = run_experiment(cfg)
    after = load_file(str(run_dir / "policy" / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in after.values())
    changed = sum(int((after[k][: len(before[k])] != before[k]).sum()) for k in before)  # rows added: control tokens
    total = sum(t.numel() for t in before.values())
    assert changed / total > 0.5, f"only {changed}/{total} weights moved"
    ckpt = torch.load(run_dir / "checkpoints" / "step-000001.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["rlreason"]["dtypes"]["master_weights"] == "float32"
    assert ckpt["rlreason"]["dtypes"]["compute"] == "bfloat16"
    assert ckpt["rlreason"]["dtypes"]["precision"] == "bf16-mixed"
    state = ckpt["optimizer_states"][0]["state"]
    assert all(v.dtype == torch.float32 for s in state.values() for v in s.values() if v.dim() > 0)
    assert all(v.dtype == torch.float32 for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_optimizer_refuses_half_precision_master_weights():
    cfg = load_config(None, []).optim
    with pytest.raises(RLReasonError, match="master weights must be float32"):
        build_optimizer([torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.bfloat16))], cfg)


@pytest.mark.parametrize("disable", [True, False])
def test_dropout_is_off_during_rl_so_the_first_ratio_is_one(tiny_dropout, tmp_path, monkeypatch, disable):
    """With attention dropout 0.1 left on, the trainer's first pass disagrees with the sampler and the
    reference (KL != 0 at step 0); disabled (the default) the ratio is 1 and the KL 0."""
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    cfg = load_config(
        "experiments/lab/grpo.yaml",
        rl_overrides(tmp_path, tiny_dropout, "init.from=null", "algo.beta=0.01", f"model.disable_dropout={disable}"),
    )
    m = scalars(run_experiment(cfg))
    gap_mean, gap_max, kl = m["parity/logprob_diff_mean"][0], m["parity/logprob_diff_max"][0], m["algo/kl"][0]
    if disable:
        assert gap_max < 1e-4  # log ratio trainer/sampler of every sampled token: ratio 1 up to float noise
        assert kl == 0.0
    else:
        assert gap_mean > 1e-3 and kl > 1e-6


def test_parity_jump_rule():
    assert parity_jump([], 0.5) == 0.0  # nothing to compare with yet
    assert parity_jump([1e-4, 2e-4, 1e-4], 5e-3) == pytest.approx(1e-4)
    assert parity_jump([1e-4, 2e-4, 1e-4], 5e-4) == 0.0  # below the floor
    assert parity_jump([0.02, 0.03], 0.04) == 0.0  # bf16 noise level, no jump


@pytest.mark.parametrize(
    "reward",
    ["reward.name=info_gain", "reward={name: sum, terms: [{name: binary}, {name: info_gain, weight: 0.5}]}"],
)
def test_fsdp_with_info_gain_is_refused_in_one_line(reward):
    """Lightning runs FSDP on GPUs only (untestable here), and info_gain needs unsharded parameters."""
    from rlreason.errors import ConfigError

    with pytest.raises(ConfigError, match=r"trainer.strategy: 'fsdp' shards the parameters.*use strategy: ddp"):
        load_config("experiments/lab/l2t.yaml", [reward, "trainer.strategy=fsdp"])
    load_config("experiments/lab/l2t.yaml", [reward, "trainer.strategy=ddp"])  # fine
    load_config("experiments/lab/grpo.yaml", ["trainer.strategy=fsdp"])  # binary reward: not refused
