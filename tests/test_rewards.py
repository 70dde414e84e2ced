"""Rewards against hand-computed cases: two prompt groups of different lengths each."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.errors import RegistryError, RLReasonError
from rlreason.registry import REWARDS
from rlreason.rewards.base import RewardContext

# group 0: lengths 2, 4, 6 (correct, correct, wrong); group 1: lengths 10, 10, 20 (wrong, correct, correct)
LENGTHS = [2, 4, 6, 10, 10, 20]
GROUPS = [0, 0, 0, 1, 1, 1]
CORRECT = torch.tensor([True, True, False, False, True, True])


def run(cfg, batch_factory, correct=CORRECT, answered=None, max_new=20, **batch_kw):
    batch = batch_factory(LENGTHS, GROUPS, **batch_kw)
    ctx = RewardContext(
        correct=correct,
        answered=torch.ones(6, dtype=torch.bool) if answered is None else answered,
        max_new_tokens=max_new,
    )
    import rlreason.components  # noqa: F401

    return REWARDS.build(cfg)(batch, ctx)


def close(out, expected):
    torch.testing.assert_close(out.rewards, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


def test_binary(batch_factory):
    close(run({"name": "binary", "wrong": -0.5}, batch_factory), [1, 1, -0.5, -0.5, 1, 1])


def test_thinkless_all_branches(batch_factory):
    modes = ["short", "think", "short", "think", None, "think"]
    out = run({"name": "thinkless"}, batch_factory, modes=modes)
    # short correct 1; think correct 0.5; short wrong -1; think wrong -1; no control (though correct) -1
    close(out, [1, 0.5, -1, -1, -1, 0.5])
    assert out.metrics["mode/think_ratio"] == pytest.approx(3 / 6)
    assert out.metrics["mode/format_fail"] == pytest.approx(1 / 6)
    assert out.metrics["mode/acc_think"] == pytest.approx(2 / 3)
    assert out.format_ok.tolist() == [True, True, True, True, False, True]


def test_kimi_per_group(batch_factory):
    # group 0: min 2 max 6: lambda = 0.5, 0, -0.5 -> correct, correct, wrong: 0.5, 0, min(0,-0.5)
    # group 1: min 10 max 20: lambda = 0.5, 0.5, -0.5 -> wrong: min(0, .5)=0; correct .5; correct -.5
    close(run({"name": "kimi"}, batch_factory), [0.5, 0.0, -0.5, 0.0, 0.5, -0.5])


def test_dapo_overlong(batch_factory):
    # L_max 20, buffer 12 -> free up to 8; (8 - L) / 12 inside; lengths 10 -> -1/6, 20 -> -1
    close(run({"name": "dapo_overlong", "buffer": 12}, batch_factory), [0, 0, 0, -2 / 12, -2 / 12, -1.0])


def test_cosine(batch_factory):
    def cos(t, lo, hi):
        return lo + 0.5 * (hi - lo) * (1 + math.cos(t * math.pi / 20))

    expected = [cos(2, 1, 2), cos(4, 1, 2), cos(6, 0, -10), cos(10, 0, -10), cos(10, 1, 2), cos(20, 1, 2)]
    close(run({"name": "cosine"}, batch_factory), expected)


def test_l1_exact_and_max(batch_factory):
    # target 10, alpha 0.01
    close(
        run({"name": "l1_exact", "alpha": 0.01, "target_length": 10}, batch_factory),
        [1 - 0.08, 1 - 0.06, -0.04, 0.0, 1.0, 1 - 0.1],
    )
    # max: correct * clip(0.01 * (10 - L) + 0.5, 0, 1)
    close(run({"name": "l1_max", "alpha": 0.01, "target_length": 10}, batch_factory), [0.58, 0.56, 0.0, 0.0, 0.5, 0.4])


def test_shorterbetter(batch_factory):
    # group 0: SOL = 2 (shortest correct); group 1: SOL = 10; alpha 2, beta 0.1
    close(run({"name": "shorterbetter", "beta": 0.1}, batch_factory), [2.0, 2 - 0.2, -0.4, 0.0, 2.0, 2 - 1.0])


def test_shorterbetter_without_correct_uses_mean(batch_factory):
    out = run({"name": "shorterbetter", "beta": 0.1}, batch_factory, correct=torch.zeros(6, dtype=torch.bool))
    close(out, [-0.2, 0.0, -0.2, -10 / 3 * 0.1, -10 / 3 * 0.1, -20 / 3 * 0.1])  # means 4 and 40/3


def test_arora_zanette(batch_factory):
    # group 0 correct lengths 2, 4: mean 3, std sqrt(2); group 1 correct lengths 10, 20: mean 15, std sqrt(50)
    def r(length, mean, std):
        return 1 - 0.1 / (1 + math.exp(-(length - mean) / (std + 1e-6)))

    expected = [r(2, 3, math.sqrt(2)), r(4, 3, math.sqrt(2)), 0, 0, r(10, 15, math.sqrt(50)), r(20, 15, math.sqrt(50))]
    close(run({"name": "arora_zanette"}, batch_factory), expected)


def test_sum_of_binary_and_kimi(batch_factory):
    out = run({"name": "sum", "terms": [{"name": "binary"}, {"name": "kimi", "weight": 0.5}]}, batch_factory)
    close(out, [1.25, 1.0, -0.25, 0.0, 1.25, 0.75])
    assert "reward/terms/1_kimi" in out.metrics


def test_sum_rejects_unknown_term():
    with pytest.raises(RegistryError, match=r"reward\.terms\[1\]\.name: unknown reward 'kimmi'"):
        REWARDS.build({"name": "sum", "terms": [{"name": "binary"}, {"name": "kimmi"}]})


def test_callable_reward(batch_factory, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    out = run(
        {"name": "callable", "fn": "reward_fns:length_bonus"},
        batch_factory,
        completions=["a1", "b", "cc1", "d", "e", "f1"],
    )
    close(out, [3.0, 1.0, 4.0, 1.0, 1.0, 3.0])
    out = run({"name": "callable", "fn": "reward_fns.with_none"}, batch_factory)
    close(out, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    assert out.metrics["reward/callable/none_frac"] == pytest.approx(0.5)
    with pytest.raises(RLReasonError, match="reward_fns:wrong_length: expected a list of 6"):
        run({"name": "callable", "fn": "reward_fns:wrong_length"}, batch_factory)
    with pytest.raises(RegistryError, match="cannot import 'reward_fns:nope'"):
        REWARDS.build({"name": "callable", "fn": "reward_fns:nope"})
