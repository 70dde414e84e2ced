"""Rollout: per-sample reproducibility, recorded log-probs, EOS, truncation, filtering."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlreason.policy.padding import left_pad
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.policy.sampling import filter_logits, sample_tokens
from rlreason.train.forward import response_logprobs

PAD, EOS = 0, 1


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=32,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        tie_word_embeddings=True,
        pad_token_id=PAD,
    )
    return Qwen2ForCausalLM(cfg).eval()


PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14], [3]]


def test_samples_do_not_depend_on_batching(model):
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    seeds = [11, 22, 33, 44]
    together = HFRolloutBackend([EOS], PAD).generate(model, PROMPTS, params, seeds)
    alone = HFRolloutBackend([EOS], PAD, batch_size=1).generate(model, PROMPTS, params, seeds)
    torch.testing.assert_close(together.response_ids, alone.response_ids)
    torch.testing.assert_close(together.logprobs, alone.logprobs, atol=1e-5, rtol=0)
    other = HFRolloutBackend([EOS], PAD).generate(model, PROMPTS, params, [12, 22, 33, 44])
    assert not torch.equal(other.response_ids[0], together.response_ids[0])  # seed matters
    torch.testing.assert_close(other.response_ids[1:], together.response_ids[1:])


def test_recorded_logprobs_equal_a_training_forward(model):
    params = SamplingParams(max_new_tokens=10, temperature=0.7)
    gen = HFRolloutBackend([EOS], PAD).generate(model, PROMPTS, params, [1, 2, 3, 4])
    ids, mask = left_pad(PROMPTS, PAD)
    out = response_logprobs(model, ids, mask, gen.response_ids, gen.response_mask, temperature=0.7)
    m = gen.response_mask.bool()
    torch.testing.assert_close(out.logprobs[m], gen.logprobs[m], atol=1e-5, rtol=0)


def test_eos_stops_and_truncation_flag(model):
    # make EOS overwhelmingly likely by adding to its logit at the output layer
    bias = torch.zeros(model.config.vocab_size)
    bias[EOS] = 100.0
    hook = model.lm_head.register_forward_hook(lambda mod, inp, out: out + bias)
    try:
        gen = HFRolloutBackend([EOS], PAD).generate(model, PROMPTS, SamplingParams(max_new_tokens=8), [0, 1, 2, 3])
    finally:
        hook.remove()
    assert gen.response_ids.shape[1] == 1 and (gen.response_ids[:, 0] == EOS).all()
    assert not gen.truncated.any() and gen.response_mask.sum() == 4
    long = HFRolloutBackend([], PAD).generate(model, PROMPTS, SamplingParams(max_new_tokens=5), [0, 1, 2, 3])
    assert long.truncated.all() and long.response_mask.sum() == 20


def test_greedy_equals_argmax_and_top_k_one(model):
    greedy = HFRolloutBackend([EOS], PAD).generate(
        model, PROMPTS, SamplingParams(max_new_tokens=6, temperature=0), [0] * 4
    )
    topk1 = HFRolloutBackend([EOS], PAD).generate(model, PROMPTS, SamplingParams(max_new_tokens=6, top_k=1), [5] * 4)
    torch.testing.assert_close(greedy.response_ids, topk1.response_ids)


def test_filtering_and_inverse_cdf_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    # cumulative probs 0.5, 0.8, 0.95, 1.0: u=0.49 -> 0, u=0.51 -> 1, u=0.96 -> 3
    for u, expected in [(0.49, 0), (0.51, 1), (0.96, 3)]:
        assert int(sample_tokens(logits, torch.tensor([u]))[0]) == expected


def test_a_ready_decode_mask_gives_the_attention_transformers_builds(model):
    """The rollout hands sdpa a padded batch's decoding mask as [rows, 1, 1, keys] booleans instead of
    letting transformers rebuild it from the 2D mask every token: the logits are bit for bit equal."""
    from transformers import DynamicCache

    from rlreason.policy.cache_arg import cache_kwarg

    assert model.config._attn_implementation == "sdpa"
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10], [11, 12, 13]], PAD)
    kw = cache_kwarg(model)
    with torch.no_grad():
        logits = []
        for ready in (False, True):
            cache = DynamicCache(config=model.config)
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, **{kw: cache})
            step_mask = torch.cat([mask, torch.ones(3, 1, dtype=mask.dtype)], dim=1)
            out = model(
                input_ids=torch.tensor([[3], [4], [5]]),
                attention_mask=step_mask[:, None, None, :].bool() if ready else step_mask,
                position_ids=position[:, -1:] + 1,
                use_cache=True,
                **{kw: cache},
            )
            logits.append(out.logits)
    assert torch.equal(logits[0], logits[1])


def test_rows_without_padding_after_compaction_get_no_mask(model, monkeypatch):
    """Once the short-prompt row has finished and left the batch, the rest has no padding: as
    transformers would, the rollout then passes sdpa no mask (a ready all-True mask takes another
    kernel path and changed a logged log-prob at rounding in the lab main job)."""
    import transformers.integrations.sdpa_attention as sdpa_module
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    prompts, free_run = [[5, 6, 7, 8], [9]], SamplingParams(max_new_tokens=6, stop_on_eos=False)
    for first_seed in range(0, 200, 2):  # seeds where the short row's first token ends no step of the long row
        seeds = [first_seed, first_seed + 1]
        free = HFRolloutBackend([EOS], PAD).generate(model, prompts, free_run, seeds)
        short, long = free.response_ids[1, :2].tolist(), free.response_ids[0, :5].tolist()
        stop = short[1]  # the short row's second token will end it, after one decoding step of both
        if EOS not in short and short[0] != stop and not {stop, EOS} & set(long):
            break
    else:
        pytest.fail("no seed pair separates the two rows")
    masks: list[tuple[int, bool]] = []

    def spy(module, query, key, value, attention_mask, *args, **kwargs):
        if query.shape[2] == 1 and module.layer_idx == 0:  # decoding steps, once per step
            masks.append((query.shape[0], attention_mask is None))
        return sdpa_module.sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS, "sdpa", spy)
    gen = HFRolloutBackend([EOS, stop], PAD).generate(model, prompts, SamplingParams(max_new_tokens=6), seeds)
    assert gen.response_mask.sum(-1).tolist()[1] == 2 and masks[0] == (2, False)  # padded: a mask
    assert masks[1:] and all(m == (1, True) for m in masks[1:])  # the long row alone: none
    assert torch.equal(gen.response_ids[0, :5], free.response_ids[0, :5])
