"""`info_gain`'s `scoring: rollout_cache`: the rollout keeps its KV cache (same samples), the cache
equals a whole-sequence forward, and J / rewards from it equal the packed pass's (float64: to
rounding; float32 lab rollouts: within the estimator's tolerance); without a usable cache the
reward falls back to the packed pass, and a real run scores from the cache every step."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_info_gain_speed_fast import assert_rewards_close, context, moved
from tests_helpers import TINY_LAB, tiny_qwen_config
from transformers import Qwen2ForCausalLM

from rlreason.policy.decode_state import DecodeState, teacher_forced_state
from rlreason.policy.episodes import segment_batch
from rlreason.policy.lab_tiny import build_lab_tokenizer
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.rewards.info_gain import InfoGain


@pytest.fixture(scope="module")
def tok():
    tok = build_lab_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<short>", "<think>", "</think>"]})
    return tok


@pytest.fixture(scope="module")
def qwen64(tok):
    torch.manual_seed(0)
    return moved(Qwen2ForCausalLM(tiny_qwen_config(tok, tied=True)).double())


def valid_columns(state: DecodeState, i: int) -> torch.Tensor:
    return torch.nonzero(state.valid[i]).squeeze(-1)


def test_rollout_keeps_its_cache_without_changing_the_samples(tok, qwen64):
    model, _ = qwen64
    gen = torch.Generator().manual_seed(1)
    sizes = torch.randint(2, 7, (7,), generator=gen)
    prompts = [torch.randint(0, 250, (int(n),), generator=gen).tolist() for n in sizes]
    params = SamplingParams(max_new_tokens=12)
    stops = [tok.eos_token_id, *range(0, 250, 6)]  # random weights: rows stop at different steps, some never
    plain = HFRolloutBackend(stops, tok.pad_token_id).generate(model, prompts, params, list(range(7)))
    keeping = HFRolloutBackend(stops, tok.pad_token_id, keep_decode_state=True)
    kept = keeping.generate(model, prompts, params, list(range(7)))
    assert plain.decode_state is None
    for name in ("response_ids", "response_mask", "logprobs", "truncated"):
        assert torch.equal(getattr(plain, name), getattr(kept, name)), name
    state = kept.decode_state
    assert state is not None and len(set(kept.response_mask.sum(-1).tolist())) > 1  # rows of different lengths
    from rlreason.policy.padding import left_pad

    p_ids, p_mask = left_pad(prompts, tok.pad_token_id)
    ref = teacher_forced_state(model, p_ids, p_mask, kept.response_ids, kept.response_mask)
    assert torch.equal(state.valid, ref.valid)
    for i in range(len(prompts)):
        cols = valid_columns(state, i)
        for a, b in zip(state.keys + state.values, ref.keys + ref.values):
            torch.testing.assert_close(a[i][:, cols], b[i][:, cols], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(state.layer_input[i, cols], ref.layer_input[i, cols], rtol=1e-10, atol=1e-10)
    # chunked sampling (rollout.batch_size) gives the same state, its columns aligned to the widest chunk
    keeping.batch_size = 3
    chunked = keeping.generate(model, prompts, params, list(range(7))).decode_state
    assert chunked is not None and torch.equal(chunked.valid, state.valid)
    seen = state.valid[:, None, :, None]
    for a, b in zip(chunked.keys + chunked.values, state.keys + state.values):
        torch.testing.assert_close(a[seen.expand_as(a)], b[seen.expand_as(b)])


@pytest.mark.parametrize("fast", [False, True])
def test_cached_scoring_equals_the_packed_pass(tok, qwen64, fast):
    model, initial = qwen64
    batch, ctx = context(tok, model, initial)
    packed = InfoGain(fast=fast)(batch, ctx)
    ctx.decode_state = teacher_forced_state(
        model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask
    )
    reward = InfoGain(fast=fast, scoring="rollout_cache")
    cached = reward(batch, ctx)
    assert cached.metrics["info_gain/cache_scored"] == 1.0
    assert_rewards_close(packed, cached, rtol=1e-9, atol=1e-12)
    assert cached.metrics["info_gain/J_final_mean"] == pytest.approx(packed.metrics["info_gain/J_final_mean"], rel=1e-6)


def test_the_gains_are_read_from_the_cache(tok, qwen64):
    model, initial = qwen64
    batch, ctx = context(tok, model, initial)
    eps = segment_batch(batch.response_ids, batch.response_mask, tok, "lab", None)
    ctx.decode_state = teacher_forced_state(
        model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask
    )
    reward = InfoGain(scoring="rollout_cache", fast=True)
    before = reward(batch, ctx)
    gains = torch.cat(reward._score_prefixes(batch, eps, ctx)[0])
    ctx.decode_state.keys[-1].mul_(3.0)  # a wrong cache must give other gains
    changed = torch.cat(reward._score_prefixes(batch, eps, ctx)[0])
    assert (changed - gains).abs().max() > 0.02 * gains.abs().max()
    ctx.decode_state.layer_input.mul_(1.5)  # and, with `fast`, another penalty
    after = reward(batch, ctx)
    assert abs(after.metrics["info_gain/penalty_mean"] - before.metrics["info_gain/penalty_mean"]) > 1e-9


@pytest.mark.parametrize("fast", [False, True])
def test_a_prefix_ending_at_the_last_token_is_scored_from_the_cache_too(tok, qwen64, fast):
    """`episodes: tags` puts the last boundary at the response's end: the last token, which the cache
    never saw, leads that block."""
    model, initial = qwen64
    batch, ctx = context(tok, model, initial)
    packed = InfoGain(fast=fast, episodes="tags")(batch, ctx)
    ctx.decode_state = teacher_forced_state(
        model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask
    )
    cached = InfoGain(fast=fast, scoring="rollout_cache", episodes="tags")(batch, ctx)
    assert cached.metrics["info_gain/cache_scored"] == 1.0
    assert_rewards_close(packed, cached, rtol=1e-9, atol=1e-12)


def test_falls_back_to_the_packed_pass_without_a_cache_a_cue_or_the_same_weights(tok, qwen64):
    model, initial = qwen64
    batch, ctx = context(tok, model, initial)
    packed = InfoGain(fast=True)(batch, ctx)
    no_cache = InfoGain(fast=True, scoring="rollout_cache")(batch, ctx)  # e.g. a mode sampler's rollout
    assert no_cache.metrics["info_gain/cache_scored"] == 0.0
    assert torch.equal(no_cache.rewards, packed.rewards)
    ctx.decode_state = teacher_forced_state(
        model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask
    )
    with torch.no_grad():  # the weights changed in place since the rollout (values kept: only the version)
        next(model.parameters()).add_(0.0)
    stale = InfoGain(fast=True, scoring="rollout_cache")(batch, ctx)
    assert stale.metrics["info_gain/cache_scored"] == 0.0
    assert torch.equal(stale.rewards, packed.rewards)
    ctx.decode_state = teacher_forced_state(
        model, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask
    )
    ctx.answer_cue = ""  # the first gold token would be predicted by a position the cache has no output for
    no_cue = InfoGain(fast=True, scoring="rollout_cache")(batch, ctx)
    assert no_cue.metrics["info_gain/cache_scored"] == 0.0
    assert torch.equal(no_cue.rewards, InfoGain(fast=True)(batch, ctx).rewards)


def test_a_bad_scoring_name_is_one_line(tok):
    with pytest.raises(ValueError, match=r"scoring: expected 'packed'.*'rollout_cache'.*got 'cached'"):
        InfoGain(scoring="cached")


def scalars(run_dir, tag: str) -> list[float]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


def test_the_l2t_fast_recipe_scores_from_the_rollout_cache(tmp_path, monkeypatch, tiny_sft_policy):
    from rlreason.config import load_config
    from rlreason.train.run import run_experiment

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    base = [
        *TINY_LAB,
        f"init.from={tiny_sft_policy}",
        "optim.steps=2",
        "rollout.prompts_per_step=3",
        "rollout.group_size=4",
        "rollout.max_new_tokens=24",
    ]
    runs = {}
    recipes = {"packed": ("l2t.yaml", ["reward.fast=true"]), "rollout_cache": ("l2t_fast.yaml", [])}
    for name, (recipe, extra) in recipes.items():
        cfg = load_config(f"experiments/lab/{recipe}", [*base, *extra, f"logging.dir={tmp_path / name}"])
        runs[name] = run_experiment(cfg)
    assert scalars(runs["rollout_cache"], "info_gain/cache_scored") == [1.0, 1.0]
    # keeping the cache does not change what is sampled: the same responses at step 0 (same seed and
    # weights); the rewards' agreement is tested above on well-formed responses
    for tag in ("train/response_len_mean", "train/truncated_frac"):
        assert scalars(runs["packed"], tag)[0] == scalars(runs["rollout_cache"], tag)[0], tag
