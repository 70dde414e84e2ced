"""The paper recipes load, and run one step with a tiny random model of the same template logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlreason.config import load_config
from rlreason.policy.lab_tiny import build_lab_tiny
from rlreason.policy.load import format_prompt, load_policy
from rlreason.train.run import run_experiment

pytestmark = pytest.mark.shared_data("gsm8k", "aime24", "amc23", "math500", "minerva_algebra")

R1_SPECIALS = ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<|box_start|>", "<think>", "</think>"]


@pytest.fixture(scope="module")
def tiny_r1_like(tmp_path_factory) -> Path:
    """A tiny Qwen2 whose tokenizer has R1-Distill's chat tokens, <think>/</think> and an unused token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_lab_tiny(
        tmp_path_factory.mktemp("m") / "tiny",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=2048,
    )
    tok = AutoTokenizer.from_pretrained(path)
    tok.add_special_tokens({"additional_special_tokens": R1_SPECIALS})
    model = AutoModelForCausalLM.from_pretrained(path)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def shrink(tmp: Path, model: Path) -> list[str]:
    return [
        f"model.name_or_path={model}",
        "init.from=null",
        "model.dtype=float32",
        "task.limit=4",
        "rollout.max_new_tokens=8",
        "rollout.prompts_per_step=2",
        "optim.steps=1",
        "optim.micro_batch_size=8",
        "eval.n=2",
        "eval.max_new_tokens=8",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        f"logging.dir={tmp}",
        "logging.progress_bar=false",
    ]


def test_thinkless_paper_config_one_step(tmp_path, tiny_r1_like, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    cfg = load_config("experiments/paper/thinkless_r1_1.5b.yaml", shrink(tmp_path, tiny_r1_like))
    raw = load_config("experiments/paper/thinkless_r1_1.5b.yaml")
    assert (raw.algo.alpha, raw.rollout.group_size, raw.optim.lr, raw.algo.eps_low, raw.algo.beta) == (
        1e-3,
        8,
        1e-6,
        0.2,
        1e-3,
    )
    assert (raw.rollout.temperature, raw.rollout.max_new_tokens) == (0.6, 24576)
    _policy, tok, control = load_policy(cfg.model, cache_dir=tmp_path)
    assert control.short_id == tok.convert_tokens_to_ids("<|box_start|>")  # mapped, not added
    assert control.think_id == tok.convert_tokens_to_ids("<think>")
    prompt = format_prompt(tok, "What is 1+1?", cfg.model)
    assert prompt.endswith("<｜Assistant｜>")  # the first generated token is the control token
    run_dir = run_experiment(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["gsm8k"]["n"] == 2 and "think_ratio" in results["gsm8k"]


def test_l2t_paper_config_one_step(tmp_path, tiny_r1_like, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    raw = load_config("experiments/paper/l2t_deepscaler_1.5b.yaml")
    assert (
        raw.reward.alpha,
        raw.reward.beta,
        raw.optim.lr,
        raw.optim.schedule,
        raw.optim.warmup_ratio,
        raw.optim.weight_decay,
        raw.rollout.max_new_tokens,
    ) == (0.8, 0.6, 1e-6, "cosine", 0.1, 0.01, 16384)
    assert raw.rollout.prompts_per_step * raw.trainer.devices == 256
    template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}{% elif m['role'] == 'user' %}"
        "<｜User｜>{{ m['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<｜Assistant｜>{% endif %}"
    )
    cfg = load_config("experiments/paper/l2t_deepscaler_1.5b.yaml", shrink(tmp_path, tiny_r1_like))
    cfg.model.chat_template = template  # R1-Distill's template logic, on the tiny tokenizer
    run_dir = run_experiment(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["gsm8k"]["n"] == 2


@pytest.mark.parametrize("suite", ["thinkless", "l2t"])
def test_eval_suites_run_on_a_tiny_model(tmp_path, tiny_r1_like, suite, monkeypatch):
    """The suites run end to end on a tiny model (scores near zero are expected)."""
    from rlreason.cli import main

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results.json"
    args = [
        "eval",
        f"benchmarks/suites/{suite}.yaml",
        "eval.n=2",
        "eval.max_new_tokens=8",
        "model.dtype=float32",
        "model.chat_template='{% for m in messages %}{{ m.content }}{% endfor %}<｜Assistant｜>'",
        "--model",
        str(tiny_r1_like),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert {"aime24", "math500", "minerva_algebra", "gsm8k"} <= set(results)
    assert all(results[b]["n"] == 2 and 0 <= results[b]["accuracy"] <= 1 for b in ("aime24", "gsm8k"))
