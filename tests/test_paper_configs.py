"""The paper recipes on the real token tables: tiny random Qwen2 models whose tokenizers carry the
added tokens of R1-Distill-Qwen-1.5B and of the Thinkless warm-up at their real ids and strings
(tests/fixtures/tokenizers), with the real vocabulary size 151,936, run one RL step of each recipe
through the CLI, and the evaluation suites end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.tokenizers.build import build_tiny_model, build_tokenizer

from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.policy.load import check_round_trip, format_prompt, load_policy

pytestmark = pytest.mark.shared_data("gsm8k", "aime24", "amc23", "math500", "minerva_algebra")

R1_SPECIALS = ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<|box_start|>", "<think>", "</think>"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def warmup(tmp_path_factory) -> Path:
    """The Thinkless warm-up's tokenizer (<short> = 151650) over a tiny random Qwen2, vocab 151,936."""
    return build_tiny_model("thinkless_warmup", tmp_path_factory.mktemp("m") / "warmup")


@pytest.fixture(scope="module")
def r1_distill(tmp_path_factory) -> Path:
    """R1-Distill-Qwen-1.5B's tokenizer (151650 = <|quad_start|>) over a tiny random Qwen2."""
    return build_tiny_model("r1_distill_qwen_1.5b", tmp_path_factory.mktemp("m") / "r1")


def shrink(tmp: Path, model: Path) -> list[str]:
    """The recipe at CPU size: same components, tokens, templates and normalisations; tiny lengths."""
    return [
        f"init.from={model}",
        "model.dtype=float32",
        "model.gradient_checkpointing=false",
        "model.logit_chunk_size=3",
        "task.limit=4",
        "rollout.max_new_tokens=6",
        "rollout.prompts_per_step=2",
        "rollout.group_size=2",
        "rollout.batch_size=0",
        "optim.steps=1",
        "eval.n=2",
        "eval.samples=1",
        "eval.max_new_tokens=4",
        "eval.suite=[]",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        f"logging.dir={tmp}",
        "logging.progress_bar=false",
        "logging.checkpoint_every_n_steps=0",
        "rollout.backend=hf",  # the recipes' vLLM engine: test_thinkless_recipe_with_its_vllm_engine
    ]


def run_cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RLREASON_CACHE": str(tmp / "cache"), "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "rlreason.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=REPO)


def test_fixture_tables_are_the_real_ones(warmup, r1_distill):
    from transformers import AutoTokenizer

    r1 = AutoTokenizer.from_pretrained(r1_distill)
    wu = AutoTokenizer.from_pretrained(warmup)
    assert len(r1) == len(wu) == 151665  # 151,643 BPE tokens + 22 added (151643-151664)
    assert (r1.bos_token_id, r1.eos_token_id, r1.pad_token_id) == (151646, 151643, 151643)
    assert r1.convert_ids_to_tokens([151648, 151649, 151650]) == ["<think>", "</think>", "<|quad_start|>"]
    assert wu.convert_ids_to_tokens([151648, 151649, 151650]) == ["<think>", "</think>", "<short>"]
    assert "<|box_start|>" not in r1.get_vocab()  # renamed to the think tags in R1-Distill


@pytest.mark.parametrize("which", ["warmup", "r1_distill"])
def test_control_tokens_resolve_by_id_on_both_tokenizers(which, request, tmp_path, capsys):
    path = request.getfixturevalue(which)
    cfg = load_config("experiments/paper/thinkless_r1_1.5b.yaml", shrink(tmp_path, path))
    cfg.model.name_or_path = str(path)
    policy, tok, control = load_policy(cfg.model, cache_dir=tmp_path, training=True)
    assert (control.short_id, control.think_id, control.think_end_id) == (151650, 151648, 151649)
    assert len(tok) == 151665 and policy.get_input_embeddings().weight.shape[0] == 151936  # nothing added
    line = capsys.readouterr().out
    expected = "<short>=151650" + (" (<|quad_start|>)" if which == "r1_distill" else "")
    assert f"control tokens: {expected} <think>=151648 </think>=151649" in line
    # canonical text is rendered onto the mapped token and decoded back
    ids = tok(control.render("<short>The answer is 2."), add_special_tokens=False)["input_ids"]
    assert ids[0] == 151650
    assert control.canonicalize(tok.decode(ids)) == "<short>The answer is 2."


def test_warmup_prompt_ends_where_the_control_token_is_generated(warmup, tmp_path):
    cfg = load_config("experiments/paper/thinkless_r1_1.5b.yaml", shrink(tmp_path, warmup))
    cfg.model.name_or_path = str(warmup)
    _, tok, _ = load_policy(cfg.model, cache_dir=tmp_path, quiet=True)
    prompt = format_prompt(tok, "What is 1+1?", cfg.model)
    # the warm-up's own template: no forced <think>, the bare problem (the released RL data)
    assert prompt == "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜>\n"


def test_add_mode_mean_initialises_a_new_token_below_the_padded_embedding_size(r1_distill, tmp_path):
    """<short> added to R1-Distill gets id 151665 < 151936 rows: no resize, but a mean-initialised row."""
    import torch

    cfg = load_config("experiments/paper/thinkless_r1_1.5b.yaml", shrink(tmp_path, r1_distill))
    cfg.model.name_or_path = str(r1_distill)
    cfg.model.control_tokens = "add"
    cfg.model.control_token_map = {}
    policy, _tok, control = load_policy(cfg.model, cache_dir=tmp_path, quiet=True)
    assert control.short_id == 151665 and control.think_id == 151648  # <think> exists: not added
    emb = policy.get_input_embeddings().weight
    assert emb.shape[0] == 151936
    torch.testing.assert_close(emb[151665], emb[:151665].mean(0))
    head = policy.get_output_embeddings().weight  # R1-Distill-1.5B does not tie its embeddings
    torch.testing.assert_close(head[151665], head[:151665].mean(0))


def test_round_trip_check_refuses_a_swapped_pre_tokenizer(tmp_path):
    """A Metaspace pre-tokenizer over the ByteLevel vocabulary (what a Llama-class rebuild produces)
    loses the text; the check names the model and the sample in one line. transformers below 5.20
    (the CPU vLLM build's pin) rebuilds R1-Distill's own tokenizer that way (`tokenizer_class:
    LlamaTokenizer`): there the real layout is refused as well."""
    import transformers
    from transformers import AutoTokenizer

    path = build_tokenizer("r1_distill_qwen_1.5b", tmp_path / "tok")
    if tuple(int(x) for x in transformers.__version__.split(".")[:2]) < (5, 20):
        with pytest.raises(ConfigError, match=r"does not round-trip .* \(LlamaTokenizer; a transformers version"):
            check_round_trip(AutoTokenizer.from_pretrained(path), "r1")
    else:
        check_round_trip(AutoTokenizer.from_pretrained(path), "r1")  # the real layout round-trips
    data = json.loads((path / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    data["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    (path / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    with pytest.raises(ConfigError, match=r"model.name_or_path: the tokenizer of 'r1' does not round-trip") as err:
        check_round_trip(AutoTokenizer.from_pretrained(path), "r1")
    assert "\n" not in str(err.value).replace("\\n", "")


def test_thinkless_recipe_values_match_the_released_script():
    raw = load_config("experiments/paper/thinkless_r1_1.5b.yaml")
    assert raw.model.control_token_map == {"<short>": 151650, "<think>": 151648, "</think>": 151649}
    assert (raw.algo.alpha, raw.algo.eps_low, raw.algo.beta, raw.algo.entropy_coef) == (1e-3, 0.2, 1e-3, 1e-3)
    assert (raw.algo.normalization, raw.algo.scale_rewards, raw.reward.gamma) == ("official", "none", 0.5)
    assert raw.rollout.prompts_per_step * raw.trainer.devices == 128 and raw.optim.minibatches == 2
    assert (raw.rollout.group_size, raw.rollout.temperature, raw.rollout.max_new_tokens) == (8, 0.6, 24576)
    assert (raw.optim.lr, list(raw.optim.betas), raw.optim.weight_decay) == (1e-6, [0.9, 0.95], 0.01)
    assert raw.task.template == "plain"
    assert (raw.eval.temperature, raw.eval.top_p, raw.eval.samples) == (0.6, 0.95, 5)
    assert all(t.template == "thinkless" for t in raw.eval.suite)


def test_thinkless_recipe_one_rl_step_through_the_cli(warmup, tmp_path):
    proc = run_cli(["run", "experiments/paper/thinkless_r1_1.5b.yaml", *shrink(tmp_path, warmup)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "control tokens: <short>=151650 <think>=151648 </think>=151649" in proc.stdout
    results = json.loads(next(tmp_path.glob("thinkless-r1-1.5b/*/results.json")).read_text())
    assert results["gsm8k"]["n"] == 2 and "think_ratio" in results["gsm8k"]


def test_thinkless_recipe_with_its_vllm_engine(tmp_path):
    """The recipe's own engine block (bf16, eager, one GPU per engine, pi_old recomputed) on the CPU
    build: a tiny warm-up of head size 32 (vLLM's CPU attention), a small KV budget and no sleep mode
    (CUDA only), one DeGRPO step and the evaluation through the engine."""
    pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup.sh installs the CPU build)")
    raw = load_config("experiments/paper/thinkless_r1_1.5b.yaml")
    assert (raw.rollout.backend, raw.rollout.recompute_old_logprobs, raw.rollout.vllm.dtype) == (
        "vllm",
        True,
        "bfloat16",
    )
    assert (raw.rollout.vllm.gpu_memory_utilization, raw.rollout.vllm.tensor_parallel_size) == (0.85, 1)
    warmup = build_tiny_model("thinkless_warmup", tmp_path / "warmup", hidden_size=64)
    engine = ["rollout.backend=vllm", "rollout.vllm.kv_cache_memory_bytes=33554432", "rollout.vllm.sleep_mode=false"]
    proc = run_cli(["run", "experiments/paper/thinkless_r1_1.5b.yaml", *shrink(tmp_path, warmup), *engine], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = next(tmp_path.glob("thinkless-r1-1.5b/*"))
    assert json.loads((run / "results.json").read_text())["gsm8k"]["n"] == 2
    assert "control tokens: <short>=151650 <think>=151648 </think>=151649" in proc.stdout


def test_l2t_recipe_one_rl_step_through_the_cli(r1_distill, tmp_path):
    raw = load_config("experiments/paper/l2t_deepscaler_1.5b.yaml")
    assert (raw.reward.alpha, raw.reward.beta, raw.optim.lr, raw.optim.schedule, raw.optim.warmup_ratio) == (
        0.8,
        0.6,
        1e-6,
        "cosine",
        0.1,
    )
    assert raw.rollout.prompts_per_step * raw.trainer.devices == 256 and raw.rollout.max_new_tokens == 16384
    args = [
        "run",
        "experiments/paper/l2t_deepscaler_1.5b.yaml",
        *shrink(tmp_path, r1_distill),
        "init.from=null",
        f"model.name_or_path={r1_distill}",
        "reward.chunk_size=3",
    ]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(tmp_path.glob("l2t-deepscaler-1.5b/*/results.json")).read_text())
    assert results["gsm8k"]["n"] == 2


@pytest.mark.parametrize("suite", ["thinkless", "l2t"])
def test_eval_suites_run_on_a_tiny_model(tmp_path, warmup, suite, monkeypatch):
    """The suites run end to end on a tiny model (scores near zero are expected)."""
    from rlreason.cli import main

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results.json"
    args = [
        "eval",
        f"benchmarks/suites/{suite}.yaml",
        "eval.n=2",
        "eval.samples=1",
        "eval.max_new_tokens=4",
        "model.dtype=float32",
        "--model",
        str(warmup),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert {"aime24", "math500", "minerva_algebra", "gsm8k"} <= set(results)
    assert all(results[b]["n"] == 2 and 0 <= results[b]["accuracy"] <= 1 for b in ("aime24", "gsm8k"))
