"""The `info_gain` reward: fitting gain on a model with hand-set logits, batching invariance, damping,
the random projection, parameter subsets and config errors.

The JVP penalty against an explicit autograd backward on every subset is in tests/test_l2t.py.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from tests_helpers import lab_reward_inputs, perturbed_tiny_qwen, rollout_batch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlreason.errors import RegistryError, RLReasonError
from rlreason.policy.lab_tiny import build_lab_tiny, build_lab_tokenizer
from rlreason.policy.tangent import subset_names
from rlreason.registry import REWARDS
from rlreason.rewards.base import RewardContext
from rlreason.rewards.forced_answer import forced_answer_scores, packed_forced_answer_scores
from rlreason.rewards.info_gain import InfoGain, cue_ids


@pytest.fixture(scope="module")
def tok():
    tok = build_lab_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<short>", "<think>", "</think>"]})
    return tok


class NewlineCounterLM(torch.nn.Module):
    """A causal LM with hand-set logits: after c newlines, tokens `targets` have logit c * ln 2, all
    others 0. So every target token has probability p(c) = 2^c / (|targets| 2^c + V - |targets|)."""

    def __init__(self, vocab: int, newline: int, targets: list[int]) -> None:
        super().__init__()
        self.vocab, self.newline, self.targets = vocab, newline, targets
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> SimpleNamespace:
        count = (input_ids == self.newline).cumsum(-1).double()
        logits = torch.zeros(*input_ids.shape, self.vocab, dtype=torch.float64) + self.unused
        logits[..., self.targets] += count[..., None] * math.log(2)
        return SimpleNamespace(logits=logits)


def test_fitting_gain_by_hand(tok):
    gold = tok("3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    model = NewlineCounterLM(len(tok), newline=10, targets=gold)
    v = len(tok)

    def p(c: int) -> float:  # J = geometric mean of the two gold tokens' probabilities, both p(c)
        return 2**c / (2 * 2**c + v - 2)

    responses = ["<think>\n1\n2\n3\n</think>3<eos>", "<short>3<eos>", "<think>\n1\n2\n</think>4<eos>"]
    prompt = tok("1+2=", add_special_tokens=False)["input_ids"]
    batch = rollout_batch(
        [prompt] * 3, [tok(r, add_special_tokens=False)["input_ids"] for r in responses], tok.pad_token_id, ["3"] * 3
    )
    ctx = RewardContext(
        correct=torch.tensor([True, True, False]),
        answered=torch.ones(3, dtype=torch.bool),
        policy=model,
        tokenizer=tok,
        answer_cue="</think>",
    )
    model.train()
    # this model counts newlines over the whole row and ignores masks: score prefixes separately
    out = InfoGain(alpha=0.8, beta=0.0, wrong=-1.0, batch_size=2, scoring="separate")(batch, ctx)
    assert model.training  # eval only while scoring
    # prefix 0 ends after "<think>\n" (1 newline); episode k adds one newline each
    gains_a = [p(2) - p(1), p(3) - p(2), p(4) - p(3)]
    gains_c = [p(2) - p(1), p(3) - p(2)]
    assert out.episode_rewards[0].tolist() == pytest.approx([1 / 3 + 0.8 * g for g in gains_a], abs=1e-7)
    assert out.episode_rewards[1].tolist() == [1.0]  # <short>: r_out, no gain
    assert out.episode_rewards[2].tolist() == pytest.approx([-1 / 2 + 0.8 * g for g in gains_c], abs=1e-7)
    torch.testing.assert_close(out.rewards, torch.stack([r.sum() for r in out.episode_rewards]))
    assert out.episode_spans[1] == [(0, 3)]  # <short> 3 <eos>
    assert out.metrics["info_gain/J_final_mean"] == pytest.approx((p(4) + p(3)) / 2)
    assert out.metrics["info_gain/gain_mean"] == pytest.approx(sum(gains_a + gains_c) / 6)
    assert out.metrics["info_gain/episodes_per_sample"] == pytest.approx(2.0)
    assert out.metrics["info_gain/format_fail"] == 0.0
    assert out.metrics["info_gain/penalty_mean"] == 0.0


@pytest.fixture(scope="module")
def qwen(tok):
    return perturbed_tiny_qwen(tok, tied=True, seed=0)


def lab_batch(tok):
    return lab_reward_inputs(tok, None, None)[0]


def run_reward(tok, qwen, **kw):
    return InfoGain(**kw)(*lab_reward_inputs(tok, *qwen))


def test_batching_invariance_and_damping(tok, qwen):
    one = run_reward(tok, qwen, batch_size=1, damping=0.0)
    many = run_reward(tok, qwen, batch_size=64, damping=0.0)
    assert one.metrics["info_gain/penalty_mean"] > 0 and one.metrics["info_gain/gain_mean"] != 0
    for a, b in zip(one.episode_rewards, many.episode_rewards):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert [len(r) for r in one.episode_rewards] == [3, 1, 1, 1, 4, 1]
    assert one.metrics["info_gain/format_fail"] == pytest.approx(2 / 6)
    assert torch.isfinite(one.rewards).all()
    # damping adds alpha * beta * damping * ||Delta_theta||^2 to every episode's penalty
    damped = run_reward(tok, qwen, batch_size=64, damping=0.5)
    _, sq = InfoGain().tangent(qwen[0], qwen[1])
    for a, b in zip(many.episode_rewards, damped.episode_rewards):
        torch.testing.assert_close(a - b, torch.full_like(a, 0.8 * 0.6 * 0.5 * sq), atol=1e-6, rtol=1e-6)


def test_random_projection_is_an_orthogonal_projection(qwen):
    model, initial = qwen
    full, sq_full = InfoGain(params="all").tangent(model, initial)
    proj, sq = InfoGain(params="random_projection", rank=4, seed=3).tangent(model, initial)
    again, _ = InfoGain(params="random_projection", rank=4, seed=3).tangent(model, initial)
    other, _ = InfoGain(params="random_projection", rank=4, seed=4).tangent(model, initial)
    dot = sum(float((proj[n] * (full[n] - proj[n])).sum()) for n in full)  # residual orthogonal to the image
    assert abs(dot) < 1e-12 * sq_full
    assert 0 < sq < sq_full
    assert all(torch.equal(proj[n], again[n]) for n in proj)  # seeded
    assert not all(torch.equal(proj[n], other[n]) for n in proj)


def test_subsets_found_generically(tok, qwen):
    model, _ = qwen
    last = subset_names(model, "last_block")
    assert last and all(n.startswith("model.layers.1.") for n in last)
    assert subset_names(model, "lm_head") == ["model.embed_tokens.weight"]  # tied: the shared embedding
    untied = Qwen2ForCausalLM(Qwen2Config(**{**model.config.to_dict(), "tie_word_embeddings": False}))
    assert subset_names(untied, "lm_head") == ["lm_head.weight"]
    assert len(subset_names(model, "all")) == len(list(model.parameters()))


def test_answer_cue_uses_control_ids():
    tok = build_lab_tokenizer()  # '</think>' is 8 byte tokens here
    cue = "\n</think>"
    yes = torch.ones(1, dtype=torch.bool)
    ctx = RewardContext(correct=yes, answered=yes, tokenizer=tok, answer_cue=cue)
    assert cue_ids(ctx) == list(cue.encode())
    ctx.control_ids = {"<think>": ord("@"), "</think>": ord("#")}  # control tokens mapped onto '@' and '#'
    assert cue_ids(ctx) == [10, ord("#")]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"params": "middle"}, "params: expected one of last_block, lm_head, all, random_projection"),
        ({"episodes": "words"}, "episodes: expected one of lab, lines, tags"),
        ({"beta": -1}, "beta: expected a value >= 0"),
        ({"rank": 0}, "rank: expected an integer >= 1"),
    ],
)
def test_bad_config_is_a_one_line_error(params, message):
    with pytest.raises(RegistryError, match=message):
        REWARDS.build({"name": "info_gain", **params})


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_packed_prefix_scoring_equals_separate_sequences(tok, qwen, batch_size):
    """One masked pass per sample gives the J of every prefix that K + 1 separate passes give."""
    separate = run_reward(tok, qwen, beta=0.0, scoring="separate", batch_size=batch_size)
    packed = run_reward(tok, qwen, beta=0.0, scoring="packed", batch_size=batch_size)
    for a, b in zip(separate.episode_rewards, packed.episode_rewards):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)  # float64 model
    assert separate.metrics["info_gain/J_final_mean"] == pytest.approx(packed.metrics["info_gain/J_final_mean"])


def test_packed_scoring_on_float32_lab_tiny_with_padding(tok, tmp_path):
    """float32, sdpa attention, rows of different lengths padded in one pass, an empty cue."""
    model = AutoModelForCausalLM.from_pretrained(build_lab_tiny(tmp_path / "lab"))
    bases = [[5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7], [20, 21, 22, 23, 24]]
    contexts = [[3, 5, 8], [2, 3], [4]]
    suffix = [[30, 31, 2], [30, 2], [31, 32, 33, 2]]
    scored = [2, 1, 3]
    packed = packed_forced_answer_scores(model, bases, contexts, suffix, scored, tok.pad_token_id, batch_size=2)
    for i in range(3):
        ctx = [bases[i][:c] + suffix[i][: len(suffix[i]) - scored[i]] for c in contexts[i]]
        ans = [suffix[i][len(suffix[i]) - scored[i] :]] * len(ctx)
        ref = forced_answer_scores(model, ctx, ans, tok.pad_token_id, batch_size=8)
        torch.testing.assert_close(packed[i], ref, rtol=1e-5, atol=1e-6)


def test_packed_scoring_refuses_attention_that_ignores_custom_masks(tok, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(build_lab_tiny(tmp_path / "lab"))
    model.config._attn_implementation = "flash_attention_2"  # not installed here; only the guard is tested
    with pytest.raises(RLReasonError, match=r"reward\.scoring: 'packed' needs eager or sdpa"):
        packed_forced_answer_scores(model, [[5, 6]], [[1]], [[2]], [1], tok.pad_token_id, 1)


def test_gain_and_penalty_per_episode_type_by_hand(tok):
    """Each think line is labelled useful / recheck / other from the task's `useful_steps`."""
    from rlreason.rewards.episode_types import episode_types

    assert episode_types("<think>\n6*5=30\n6*5=30\n6*5=30\n30+3=33\n</think>330", ["6*5=30", "6*5=30", "30+3=33"]) == [
        "useful",
        "useful",
        "recheck",
        "useful",
    ]
    assert episode_types("<short>5", ["2+3=5"]) is None and episode_types("<think>\n1+1=2", ["1+1=2"]) is None

    gold = tok("3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    model = NewlineCounterLM(len(tok), newline=10, targets=gold)
    v = len(tok)

    def p(c: int) -> float:
        return 2**c / (2 * 2**c + v - 2)

    texts = ["<think>\n1\n1\n2\n</think>3", "<think>\n1\n9\n2\n</think>3", "<short>3"]
    prompt = tok("1+2=", add_special_tokens=False)["input_ids"]
    batch = rollout_batch(
        [prompt] * 3,
        [tok(t + "<eos>", add_special_tokens=False)["input_ids"] for t in texts],
        tok.pad_token_id,
        ["3"] * 3,
    )
    batch.completions = texts
    batch.meta = [{"useful_steps": ["1", "2"]}] * 3
    ctx = RewardContext(
        correct=torch.ones(3, dtype=torch.bool),
        answered=torch.ones(3, dtype=torch.bool),
        policy=model,
        tokenizer=tok,
        answer_cue="</think>",
    )
    m = InfoGain(alpha=0.8, beta=0.0, batch_size=2, scoring="separate")(batch, ctx).metrics
    g1, g2, g3 = p(2) - p(1), p(3) - p(2), p(4) - p(3)  # episode k moves J from p(k+1) to p(k+2)
    assert m["info_gain/gain/useful"] == pytest.approx((g1 + g3) / 2)  # lines 1 and 3 of both samples
    assert m["info_gain/gain/recheck"] == pytest.approx(g2)  # the repeated "1"
    assert m["info_gain/gain/other"] == pytest.approx(g2)  # the detour "9"
    assert m["info_gain/episode_reward/recheck"] == pytest.approx(1 / 3 + 0.8 * g2)
    assert m["info_gain/penalty/useful"] == 0.0
    # per sample, over all three samples (the <short> answer has none)
    assert m["info_gain/episodes_per_sample/useful"] == pytest.approx(4 / 3)
    assert m["info_gain/episodes_per_sample/recheck"] == pytest.approx(1 / 3)
