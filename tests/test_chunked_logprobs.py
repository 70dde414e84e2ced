"""Chunked scoring (`model.logit_chunk_size`, `reward.chunk_size`) equals the one-pass path: response
log-probs, entropy, hidden states and their gradients (update, reference and value passes), and
info-gain's forced-answer scores and JVP penalty. Float64 models, so "equal" means to 1e-10."""

from __future__ import annotations

import pytest
import torch
from tests_helpers import perturbed_tiny_qwen, rollout_batch

from rlreason.policy.lab_tiny import build_lab_tokenizer
from rlreason.rewards.base import RewardContext
from rlreason.rewards.forced_answer import packed_forced_answer_scores
from rlreason.rewards.info_gain import InfoGain
from rlreason.train.forward import response_logprobs


@pytest.fixture(scope="module")
def tok():
    tok = build_lab_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<short>", "<think>", "</think>"]})
    return tok


def tiny_qwen(tok, tied: bool) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    return perturbed_tiny_qwen(tok, tied, seed=3)


def batch(tok):
    responses = [
        "<think>\n7*8=56\n4*8=32\n32+5=37\n</think>376<eos>",
        "<short>376<eos>",
        "<think>\n7*8=56\n</think>376<eos>",
        "<think>\n4*8=32\n7*8=56\n7*8=56\n320+56=376\n</think>376<eos>",
    ]
    questions = ["47*8=", "47*8=", "1+47*8=", "47*8="]
    prompts = [tok(q, add_special_tokens=False)["input_ids"] for q in questions]
    resp = [tok(r, add_special_tokens=False)["input_ids"] for r in responses]
    return rollout_batch(prompts, resp, tok.pad_token_id, ["376"] * 4)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_response_logprobs_and_gradients_equal_the_one_pass_path(tok, tied, chunk):
    model, _ = tiny_qwen(tok, tied)
    b = batch(tok)
    args = (b.prompt_ids, b.prompt_mask, b.response_ids, b.response_mask)
    results = {}
    for c in (0, chunk):
        model.zero_grad()
        out = response_logprobs(
            model, *args, temperature=0.6, with_entropy=True, entropy_grad=True, with_hidden=True, chunk_size=c
        )
        mask = b.response_mask.double()
        loss = -(out.logprobs * mask).sum() - 0.1 * (out.entropy * mask).sum() + out.hidden.pow(2).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[c] = (out, grads)
    (one, g1), (chunked, g2) = results[0], results[chunk]
    for a, b_ in ((one.logprobs, chunked.logprobs), (one.entropy, chunked.entropy), (one.hidden, chunked.hidden)):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-10)
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], rtol=0, atol=1e-10, msg=n)


def test_no_grad_passes_equal_and_entropy_without_grad_is_detached(tok):
    """The reference and value passes (no grad), and an update without an entropy bonus."""
    model, _ = tiny_qwen(tok, True)
    b = batch(tok)
    args = (b.prompt_ids, b.prompt_mask, b.response_ids, b.response_mask)
    with torch.no_grad():
        ref = response_logprobs(model, *args, with_hidden=True)
        ref_chunked = response_logprobs(model, *args, with_hidden=True, chunk_size=4)
    torch.testing.assert_close(ref.logprobs, ref_chunked.logprobs, rtol=0, atol=1e-10)
    torch.testing.assert_close(ref.hidden, ref_chunked.hidden, rtol=0, atol=1e-10)
    out = response_logprobs(model, *args, with_entropy=True, entropy_grad=False, chunk_size=4)
    assert out.logprobs.requires_grad and not out.entropy.requires_grad


def run_reward(tok, model, initial, **kw):
    ctx = RewardContext(
        correct=torch.tensor([True, True, True, False]),
        answered=torch.ones(4, dtype=torch.bool),
        policy=model,
        tokenizer=tok,
        initial_params=initial,
        answer_cue="</think>",
    )
    return InfoGain(episodes="lab", **kw)(batch(tok), ctx)


@pytest.mark.parametrize("params", ["last_block", "lm_head"])
def test_info_gain_chunked_equals_one_pass(tok, params):
    """Forced-answer scores (packed) and the JVP penalty, untied head (the lm_head subset is a real
    separate parameter, passed through the chunked head)."""
    model, initial = tiny_qwen(tok, False)
    one = run_reward(tok, model, initial, params=params, damping=0.0)
    chunked = run_reward(tok, model, initial, params=params, damping=0.0, chunk_size=3)
    assert one.metrics["info_gain/penalty_mean"] > 0 and one.metrics["info_gain/gain_mean"] != 0
    for a, b_ in zip(one.episode_rewards, chunked.episode_rewards):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-10)


def test_packed_scores_chunked_with_padding(tok):
    model, _ = tiny_qwen(tok, True)
    bases = [[5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7], [20, 21, 22, 23, 24]]
    contexts, suffix, scored = [[3, 5, 8], [2, 3], [4]], [[30, 31, 2], [30, 2], [31, 32, 33, 2]], [2, 1, 3]
    one = packed_forced_answer_scores(model, bases, contexts, suffix, scored, tok.pad_token_id, 2)
    chunked = packed_forced_answer_scores(model, bases, contexts, suffix, scored, tok.pad_token_id, 2, chunk_size=2)
    for a, b_ in zip(one, chunked):
        torch.testing.assert_close(a, b_, rtol=0, atol=1e-10)
