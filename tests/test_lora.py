"""LoRA through PEFT on real tiny models and the real Trainer: only adapters train, the reference is
the base under disabled adapters (no copy), the policy saves as an adapter (+ merged export on
request), resume is exact, and the tiny Qwen2 with the R1-Distill vocabulary runs a LoRA RL step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft", reason="LoRA needs the optional extra peft (pip install 'rlreason[peft]')")

from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.policy.lab_tiny import build_lab_tiny
from rlreason.policy.load import load_policy
from rlreason.policy.lora import load_adapter_model
from rlreason.train.run import run_experiment

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1}
LORA = "model.lora={r: 4, alpha: 8, target_modules: [q_proj, v_proj], merged_export: true}"


def overrides(tmp: Path, model: Path, steps: int, *extra: str) -> list[str]:
    return [
        "init.from=null",
        f"model.name_or_path={model}",
        LORA,
        "task.n_train_per_level=20",
        "task.n_test_per_level=2",
        "eval.n=2",
        "eval.every_n_steps=0",
        "rollout.prompts_per_step=2",
        "rollout.group_size=4",
        "rollout.max_new_tokens=8",
        f"optim.steps={steps}",
        "optim.lr=0.01",
        "algo.beta=0.05",
        "algo.entropy_coef=0.01",  # a gradient whatever the rewards of a random model
        "logging.checkpoint_every_n_steps=1",
        "logging.keep_last_n=0",
        "logging.samples_every_n_steps=0",
        f"logging.dir={tmp}",
        "logging.progress_bar=false",
        "logging.histograms=false",
        *extra,
    ]


def scalars(run_dir: Path, tag: str) -> list[float]:
    newest = max(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    ea = EventAccumulator(str(newest), size_guidance={"scalars": 0})
    ea.Reload()
    return [e.value for e in ea.Scalars(tag)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    return build_lab_tiny(tmp_path_factory.mktemp("m") / "lab", intermediate_size=64, **TINY)


@pytest.fixture(scope="module")
def lora_run(lab, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    cache = tmp / "cache"
    import os

    old = os.environ.get("RLREASON_CACHE")
    os.environ["RLREASON_CACHE"] = str(cache)
    try:
        return run_experiment(load_config("experiments/lab/grpo.yaml", overrides(tmp, lab, 2)))
    finally:
        os.environ.pop("RLREASON_CACHE") if old is None else os.environ.__setitem__("RLREASON_CACHE", old)


def test_only_adapters_train_and_the_reference_is_the_base(lab, lora_run):
    policy = lora_run / "policy"
    assert (policy / "adapter_config.json").is_file() and not (policy / "model.safetensors").exists()
    adapter = load_file(str(policy / "adapter_model.safetensors"))
    # adapters, plus the embeddings PEFT saves because the control tokens resized them
    assert adapter and all("lora_" in k or "embed_tokens" in k or "lm_head" in k for k in adapter)
    assert any(v.abs().max() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0: it trained
    kl = scalars(lora_run, "algo/kl")
    assert kl[0] == 0.0 and kl[1] > 0  # step 0: base == policy; step 1: the frozen base, not a moving copy
    # the merged export is a plain checkpoint: adapted projections changed, every other weight is the base's
    base = load_file(str(lab / "model.safetensors"))
    merged = load_file(str(policy / "merged" / "model.safetensors"))
    for k, w in base.items():
        m = merged[k][: w.shape[0]]  # control-token rows were added after the base was built
        if "q_proj.weight" in k or "v_proj.weight" in k:
            assert not torch.equal(m, w), k
        else:
            assert torch.equal(m, w), k


def test_adapter_and_merged_export_give_the_same_model(lora_run):
    ids = torch.tensor([[5, 17, 40, 41, 3, 200, 7]])
    with torch.no_grad():
        adapted = load_adapter_model(lora_run / "policy", trainable=False)  # base, resized, + adapter
        merged = AutoModelForCausalLM.from_pretrained(lora_run / "policy" / "merged")
        torch.testing.assert_close(adapted(ids).logits, merged(ids).logits, rtol=1e-4, atol=1e-5)


def test_lora_resume_is_exact(lab, lora_run, tmp_path, monkeypatch):
    """A copy of the run after step 1, resumed: step 2 again gives the same adapter."""
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "copy" / lora_run.parent.name / lora_run.name
    shutil.copytree(lora_run, copy)
    for path in [copy / "results.json", copy / "policy", *(copy / "checkpoints").glob("step-000002*")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    ckpt = copy / "checkpoints" / "step-000001.ckpt"
    cfg = load_config("experiments/lab/grpo.yaml", overrides(tmp_path, lab, 2, f"init.resume={ckpt}"))
    assert run_experiment(cfg) == copy
    full = load_file(str(lora_run / "policy" / "adapter_model.safetensors"))
    resumed = load_file(str(copy / "policy" / "adapter_model.safetensors"))
    step1 = load_file(str(copy / "checkpoints" / "step-000001-hf" / "adapter_model.safetensors"))
    assert any(not torch.equal(full[k], step1[k]) for k in full)  # step 2 moved the adapter
    assert all(torch.equal(resumed[k], full[k]) for k in full)


def test_lora_keeps_a_bf16_base_frozen_and_fp32_adapters(lab, tmp_path):
    cfg = load_config("experiments/lab/grpo.yaml", overrides(tmp_path, lab, 1, "model.dtype=bfloat16"))
    policy, _, _ = load_policy(cfg.model, cache_dir=tmp_path, training=True, quiet=True)
    trainable = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n and p.dtype == torch.float32 for n, p in trainable.items())
    frozen = [p for p in policy.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{rank: 4}", r"model.lora.rank: unknown key"),
        ("{r: 0}", r"model.lora.r: expected a positive integer rank"),
        ("{dropout: 1.5}", r"model.lora.dropout: expected a probability"),
    ],
)
def test_bad_lora_config_is_a_one_line_error(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("experiments/lab/grpo.yaml", [f"model.lora={value}"])


def test_lora_rl_step_on_the_real_vocabulary(tmp_path, monkeypatch):
    """The tiny Qwen2 with R1-Distill's token table (vocab 151,936, untied head): one LoRA step."""
    from fixtures.tokenizers.build import build_tiny_model

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    model = build_tiny_model("r1_distill_qwen_1.5b", tmp_path / "r1")
    cfg = load_config(
        "experiments/paper/thinkless_r1_1.5b.yaml",
        [
            f"init.from={model}",
            "model.dtype=float32",
            "model.gradient_checkpointing=false",
            "model.logit_chunk_size=4",
            "model.lora={r: 2, alpha: 4, target_modules: all-linear}",
            "task.limit=4",
            "rollout.max_new_tokens=4",
            "rollout.prompts_per_step=2",
            "rollout.batch_size=0",
            "rollout.backend=hf",  # the recipe's vLLM engine: tests/test_paper_configs.py
            "optim.steps=1",
            "optim.minibatches=1",  # one update: its KL is the policy at step 0 against the base
            "optim.lr=0.01",
            "eval.n=1",
            "eval.samples=1",
            "eval.max_new_tokens=2",
            "eval.suite=[]",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.strategy=auto",
            "trainer.precision=32-true",
            f"logging.dir={tmp_path}",
            "logging.progress_bar=false",
            "logging.checkpoint_every_n_steps=0",
        ],
    )
    run_dir = run_experiment(cfg)
    assert json.loads((run_dir / "policy" / "adapter_config.json").read_text())["r"] == 2
    assert scalars(run_dir, "algo/kl")[0] == 0.0
