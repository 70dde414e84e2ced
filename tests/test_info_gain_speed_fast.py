"""`info_gain(fast=True)`: length-sorted scoring passes and the penalty's JVP on the last block from
the scoring pass's recorded layer inputs give the exact path's rewards within the estimator's
tolerance (tests/test_l2t.py: g_k . Delta_theta to 1e-5 relative; J to 1e-5 relative, 1e-6 absolute
in float32), on <short>, malformed and empty responses too; other subsets fall back to the full JVP.
"""

from __future__ import annotations

import pytest
import torch
from tests_helpers import LAB_QUESTIONS, LAB_RESPONSES, lab_reward_inputs, rollout_batch, tiny_qwen_config
from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

from rlreason.policy.control_tokens import setup_control_tokens
from rlreason.policy.episodes import segment_batch
from rlreason.policy.jvp import directional_logprobs, last_block_directional_logprobs, last_block_tangent
from rlreason.policy.lab_tiny import build_lab_tiny, build_lab_tokenizer
from rlreason.policy.length_passes import length_sorted_passes
from rlreason.rewards.base import RewardContext
from rlreason.rewards.info_gain import InfoGain

RESPONSES, QUESTIONS = LAB_RESPONSES, LAB_QUESTIONS


@pytest.fixture(scope="module")
def tok():
    tok = build_lab_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<short>", "<think>", "</think>"]})
    return tok


def moved(model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The model moved away from its snapshot (a nonzero Delta_theta on every parameter)."""
    initial = {n: q.detach().clone() for n, q in model.named_parameters()}
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for q in model.parameters():
            q.add_(0.01 * torch.randn(q.shape, generator=gen, dtype=q.dtype))
    return model, initial


@pytest.fixture(scope="module")
def qwen(tok):
    torch.manual_seed(0)
    return moved(Qwen2ForCausalLM(tiny_qwen_config(tok, tied=True)).double())


def context(tok, model, initial) -> tuple[object, RewardContext]:
    return lab_reward_inputs(tok, model, initial)


def assert_rewards_close(exact, fast, rtol: float, atol: float) -> None:
    torch.testing.assert_close(fast.rewards, exact.rewards, rtol=rtol, atol=atol)
    for a, b in zip(exact.episode_rewards, fast.episode_rewards):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    assert fast.episode_spans == exact.episode_spans


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_fast_equals_exact_within_the_estimator_tolerance(tok, qwen, batch_size):
    model, initial = qwen
    batch, ctx = context(tok, model, initial)
    fast_reward = InfoGain(fast=True, batch_size=batch_size)
    assert fast_reward._penalty_layer(ctx) is model.model.layers[-1]  # the recorded-input JVP runs
    exact, fast = InfoGain(batch_size=batch_size)(batch, ctx), fast_reward(batch, ctx)
    assert exact.metrics["info_gain/penalty_mean"] > 0 and exact.metrics["info_gain/gain_mean"] != 0
    assert_rewards_close(exact, fast, rtol=1e-5, atol=1e-9)
    for key in ("info_gain/gain_mean", "info_gain/penalty_mean", "info_gain/J_final_mean"):
        assert fast.metrics[key] == pytest.approx(exact.metrics[key], rel=1e-5, abs=1e-9)


def test_last_block_jvp_equals_the_full_jvp_per_token(tok, qwen):
    """Per token, on every response (<short>, malformed, empty included), in passes of 2 rows."""
    model, initial = qwen
    batch, ctx = context(tok, model, initial)
    reward = InfoGain(fast=True)
    eps = segment_batch(batch.response_ids, batch.response_mask, tok, "lab")
    _, layer_inputs = reward._score_prefixes(batch, eps, ctx, reward._penalty_layer(ctx))
    tangent, _ = reward.tangent(model, initial)
    local = last_block_tangent(model, tangent)
    assert local is not None and set(local) == {n for n, _ in model.model.layers[-1].named_parameters()}
    full = directional_logprobs(model, batch, tangent, batch_size=2)
    tail = last_block_directional_logprobs(model, batch, layer_inputs, local, batch_size=2)
    assert full.abs().max() > 0
    torch.testing.assert_close(tail, full, rtol=1e-5, atol=1e-9 * float(full.abs().max()))


def test_other_subsets_fall_back_to_the_full_jvp(tok, qwen):
    model, initial = qwen
    batch, ctx = context(tok, model, initial)
    for params in ("all", "lm_head"):
        assert last_block_tangent(model, InfoGain(params=params).tangent(model, initial)[0]) is None
        assert InfoGain(fast=True, params=params)._penalty_layer(ctx) is None
        exact, fast = InfoGain(params=params)(batch, ctx), InfoGain(params=params, fast=True)(batch, ctx)
        assert_rewards_close(exact, fast, rtol=1e-5, atol=1e-9)


def test_fast_on_float32_lab_tiny(tmp_path):
    """float32 with sdpa scoring: the float32 tolerance of packed scoring (J to 1e-5 / 1e-6)."""
    tok = build_lab_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(build_lab_tiny(tmp_path / "lab"))
    setup_control_tokens(model, tok)
    model, initial = moved(model)
    batch, ctx = context(tok, model, initial)
    exact, fast = InfoGain(batch_size=2)(batch, ctx), InfoGain(fast=True, batch_size=2)(batch, ctx)
    assert exact.metrics["info_gain/penalty_mean"] > 0
    assert_rewards_close(exact, fast, rtol=1e-5, atol=1e-6)


def test_length_sorted_passes_partition_by_length_within_the_budget():
    lengths = [30, 5, 6, 40, 7, 5, 31, 8]
    passes = length_sorted_passes(lengths, max_rows=3)
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
    flat = [lengths[i] for p in passes for i in p]
    assert flat == sorted(flat)
    budget = 3 * sum(lengths) / len(lengths)
    for p in passes:
        assert len(p) <= 3 and (len(p) == 1 or len(p) * max(lengths[i] for i in p) <= budget)
    assert length_sorted_passes([], 4) == [] and length_sorted_passes([50], 4) == [[0]]


def test_fast_scores_each_distinct_sequence_once(tok, qwen, monkeypatch):
    """Copies of a (prompt, response, gold) share one scoring and one JVP; per-sample values and the
    metrics are those of the batch without copies (J_final_mean still averages over samples)."""
    from rlreason.batch import unique_samples

    model, initial = qwen
    batch, ctx = context(tok, model, initial)
    single = InfoGain(fast=True)(batch, ctx)
    prompts = [tok(q, add_special_tokens=False)["input_ids"] for q in QUESTIONS]
    responses = [tok(r, add_special_tokens=False)["input_ids"] for r in RESPONSES]
    order = [0, 1, 0, 2, 3, 4, 4, 4, 5, 1]  # samples 0, 1 and 4 sampled several times
    doubled = rollout_batch(
        [prompts[i] for i in order], [responses[i] for i in order], tok.pad_token_id, ["376"] * len(order)
    )
    ctx.correct = torch.tensor([True, True, True, False, True, False])[order]
    ctx.answered = torch.ones(len(order), dtype=torch.bool)
    assert unique_samples(doubled) == ([0, 1, 3, 4, 5, 8], [0, 1, 0, 2, 3, 4, 4, 4, 5, 1])
    scored_rows: list[int] = []
    original = InfoGain._score_prefixes

    def counting(self, b, eps, c, layer=None):
        scored_rows.append(b.num_samples)
        return original(self, b, eps, c, layer)

    monkeypatch.setattr(InfoGain, "_score_prefixes", counting)
    out = InfoGain(fast=True)(doubled, ctx)
    assert scored_rows == [6]
    torch.testing.assert_close(out.rewards, single.rewards[order], rtol=1e-9, atol=1e-12)
    for a, i in zip(out.episode_rewards, order):
        torch.testing.assert_close(a, single.episode_rewards[i], rtol=1e-9, atol=1e-12)
    from rlreason.policy.decode_state import teacher_forced_state

    ctx.decode_state = teacher_forced_state(
        model, doubled.prompt_ids, doubled.prompt_mask, doubled.response_ids, doubled.response_mask
    )
    cached = InfoGain(fast=True, scoring="rollout_cache")(doubled, ctx)  # the copies' cache rows are dropped too
    assert cached.metrics["info_gain/cache_scored"] == 1.0 and scored_rows == [6, 6]
    torch.testing.assert_close(cached.rewards, out.rewards, rtol=1e-9, atol=1e-12)
    exact = InfoGain()(doubled, ctx)  # the exact path scores every sample
    assert out.metrics["info_gain/J_final_mean"] == pytest.approx(exact.metrics["info_gain/J_final_mean"], rel=1e-5)
    assert out.metrics["info_gain/J_final_mean"] != pytest.approx(single.metrics["info_gain/J_final_mean"], rel=1e-3)
