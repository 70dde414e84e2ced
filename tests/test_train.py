"""The training spine end to end: a real tiny model, a real Lightning Trainer, real event files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM

from rlreason.config import load_config
from rlreason.train.run import run_experiment

TINY = [
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "task.n_train_per_level=50",
    "task.n_test_per_level=8",
    "eval.n=9",
    "logging.progress_bar=false",
]


def sft_cfg(tmp: Path, *extra: str):
    return load_config(
        "experiments/lab/sft.yaml",
        [*TINY, f"logging.dir={tmp}", "optim.steps=3", "optim.batch_size=4", "eval.per_mode=false", *extra],
    )


def grpo_cfg(tmp: Path, init: Path, *extra: str):
    return load_config(
        "experiments/lab/grpo.yaml",
        [
            *TINY,
            f"logging.dir={tmp}",
            f"init.from={init}",
            "optim.steps=2",
            "rollout.prompts_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=12",
            "eval.every_n_steps=1",
            "logging.samples_every_n_steps=1",
            "algo.beta=0.04",
            "optim.minibatches=2",
            "algo.num_iterations=2",
            "logging.checkpoint_every_n_steps=1",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, monkeypatch_module) -> Path:
    """The policy directory of a tiny SFT run."""
    tmp = tmp_path_factory.mktemp("runs")
    return run_experiment(sft_cfg(tmp)) / "policy"


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RLREASON_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield mp
    mp.undo()


def scalars(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_grpo_run_writes_events_checkpoint_and_results(sft_run, tmp_path):
    run_dir = run_experiment(grpo_cfg(tmp_path, sft_run))
    acc = scalars(run_dir)
    tags = set(acc.Tags()["scalars"])
    for tag in [
        "train/reward_mean",
        "train/reward_std",
        "train/accuracy",
        "train/response_len_mean",
        "train/response_len_max",
        "algo/clip_frac",
        "algo/kl",
        "algo/entropy",
        "optim/grad_norm",
        "optim/lr",
        "perf/tokens_per_sec",
        "perf/step_time",
        "eval/accuracy",
        "mode/think_ratio",
        "mode/think_ratio/hard",  # when the policy thinks, per difficulty
        "train/accuracy/easy",
    ]:
        assert tag in tags, tag
    assert len(acc.Scalars("train/reward_mean")) == 2
    for tag in tags - {t for t in tags if t.startswith(("eval/", "hparam/"))}:  # a key at most once per step
        steps = [e.step for e in acc.Scalars(tag)]
        assert len(steps) == len(set(steps)) and set(steps) <= {0, 1}, tag
    assert "train/response_length" in acc.Tags()["histograms"]
    assert any("samples" in t for t in acc.Tags()["tensors"])
    # checkpoints: Lightning state + HF policy that reloads to identical logits
    ckpts = sorted((run_dir / "checkpoints").glob("step-*.ckpt"))
    assert [c.name for c in ckpts] == ["step-000001.ckpt", "step-000002.ckpt"]
    final = AutoModelForCausalLM.from_pretrained(run_dir / "policy")
    from_ckpt = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "step-000002-hf")
    state = torch.load(ckpts[-1], weights_only=True, map_location="cpu")["state_dict"]
    lightning = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
    ids = torch.tensor([[52, 55, 42, 56, 61]])
    torch.testing.assert_close(final(ids).logits, from_ckpt(ids).logits, rtol=0, atol=0)
    from_ckpt.load_state_dict(lightning, strict=False)
    torch.testing.assert_close(final(ids).logits, from_ckpt(ids).logits, rtol=0, atol=0)
    results = json.loads((run_dir / "results.json").read_text())
    lab = results["lab-arith"]
    assert lab["n"] == 9 and 0 <= lab["accuracy"] <= 1 and lab["mean_response_tokens"] > 0
    assert 0 <= lab["think_ratio"] <= 1 and set(lab["per_difficulty"]) == {"easy", "medium", "hard"}
    assert (run_dir / "config.yaml").is_file()


def test_same_seed_same_metrics(sft_run, tmp_path):
    runs = [
        run_experiment(
            grpo_cfg(tmp_path / str(k), sft_run, "eval.every_n_steps=0", "logging.checkpoint_every_n_steps=0")
        )
        for k in range(2)
    ]
    curves = [[e.value for e in scalars(r).Scalars("train/reward_mean")] for r in runs]
    losses = [[e.value for e in scalars(r).Scalars("algo/loss")] for r in runs]
    assert curves[0] == curves[1] and losses[0] == losses[1]
    results = [json.loads((r / "results.json").read_text())["lab-arith"] for r in runs]
    assert results[0] == results[1]
    p0, p1 = (AutoModelForCausalLM.from_pretrained(r / "policy").state_dict() for r in runs)
    assert all(torch.equal(p0[k], p1[k]) for k in p0)


@pytest.mark.shared_data("aime24")
def test_eval_cli_on_a_run_directory(sft_run, tmp_path, capsys):
    from rlreason.cli import main

    run_dir = sft_run.parent
    out = tmp_path / "results.json"
    assert main(["eval", str(run_dir), "eval.n=6", "eval.suite=[{name: aime24, limit: 2}]", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["lab-arith"]["n"] == 6 and results["aime24"]["n"] == 2
    assert "lab-arith" in capsys.readouterr().out


def test_missing_model_path_is_a_one_line_error(tmp_path, capsys):
    from rlreason.cli import main

    assert main(["run", "experiments/lab/grpo.yaml", f"init.from={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "model.name_or_path" in err and "nope" in err and err.count("\n") == 1
