"""Rewards against hand-computed cases, on real RolloutBatches with two prompt groups.

Shared batch: group 0 has lengths 2, 4, 6 (correct, correct, wrong); group 1 has lengths 10, 10, 20
(wrong, correct, correct). `make_batch` pads to width 20, so the length-20 sample is truncated.
"""

from __future__ import annotations

import math

import pytest
import torch

import rlreason.components  # noqa: F401  (registers the rewards)
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.config.validation import build_section
from rlreason.errors import ConfigError, DataError, RegistryError, RLReasonError
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.rewards.combine import WeightedSum

LENGTHS = [2, 4, 6, 10, 10, 20]
GROUPS = [0, 0, 0, 1, 1, 1]
CORRECT = [True, True, False, False, True, True]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def run(cfg, batch_factory, correct=CORRECT, answered=None, max_new=20, step=0, edit=None, **batch_kw):
    batch = batch_factory(LENGTHS, GROUPS, **batch_kw)
    if edit:
        edit(batch)
    ctx = RewardContext(
        correct=torch.tensor(correct),
        answered=torch.ones(6, dtype=torch.bool) if answered is None else torch.tensor(answered),
        max_new_tokens=max_new,
        step=step,
    )
    return REWARDS.build(cfg, where="reward")(batch, ctx)


def close(out, expected):
    torch.testing.assert_close(out.rewards, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


# -- binary / thinkless ---------------------------------------------------------------------------
def test_binary(batch_factory):
    close(run({"name": "binary"}, batch_factory), [1, 1, 0, 0, 1, 1])
    # sample 3 (wrong) has no extractable answer: format_penalty instead of wrong
    answered = [True, True, True, False, True, True]
    out = run({"name": "binary", "wrong": -0.5, "format_penalty": -1}, batch_factory, answered=answered)
    close(out, [1, 1, -0.5, -1, 1, 1])
    assert out.metrics["reward/binary/no_answer_frac"] == pytest.approx(1 / 6)
    assert out.metrics["reward/binary/mean"] == pytest.approx(2.5 / 6)


def test_thinkless_all_branches(batch_factory):
    modes = ["short", "think", "short", "think", None, "think"]
    out = run({"name": "thinkless"}, batch_factory, modes=modes)
    # short+correct 1; think+correct 1 - 0.5; short+wrong -1; think+wrong -1; no control token
    # (though its answer is correct) -1 as a format failure; think+correct 0.5
    close(out, [1, 0.5, -1, -1, -1, 0.5])
    m = out.metrics
    assert (m["mode/n_think"], m["mode/n_short"], m["mode/n_format_fail"]) == (3, 2, 1)
    assert m["mode/think_ratio"] == pytest.approx(3 / 6)
    assert m["mode/format_fail"] == pytest.approx(1 / 6)
    assert m["mode/acc_think"] == pytest.approx(2 / 3)  # samples 1, 3, 5
    assert m["mode/acc_short"] == pytest.approx(1 / 2)  # samples 0, 2
    # gamma 0.2 (the README's resume value) and a softer format penalty
    out = run({"name": "thinkless", "gamma": 0.2, "format_penalty": -2}, batch_factory, modes=modes)
    close(out, [1, 0.8, -1, -1, -2, 0.8])


def test_thinkless_without_control_tokens_is_all_format_failures(batch_factory):
    out = run({"name": "thinkless"}, batch_factory, modes=None)
    close(out, [-1] * 6)
    assert out.metrics["mode/format_fail"] == 1.0
    assert "mode/acc_think" not in out.metrics


# -- length family --------------------------------------------------------------------------------
def test_kimi_per_group(batch_factory):
    # group 0: min 2 max 6: lambda = 0.5, 0, -0.5; correct, correct, wrong -> 0.5, 0, min(0, -0.5)
    # group 1: min 10 max 20: lambda = 0.5, 0.5, -0.5; wrong -> min(0, 0.5) = 0; correct 0.5; correct -0.5
    close(run({"name": "kimi"}, batch_factory), [0.5, 0.0, -0.5, 0.0, 0.5, -0.5])
    # a per-batch min/max (2..20) would give sample 3 (wrong, 10) min(0, 0.5 - 8/18) = 0 but sample 4
    # 0.0556 instead of 0.5: the per-group value above is the report's.
    # warm-up: off before start_step
    close(run({"name": "kimi", "start_step": 5}, batch_factory, step=4), [0.0] * 6)
    close(run({"name": "kimi", "start_step": 5}, batch_factory, step=5), [0.5, 0.0, -0.5, 0.0, 0.5, -0.5])


def test_kimi_equal_lengths_give_zero(batch_factory):
    batch = batch_factory([7, 7, 7, 3, 6, 9], GROUPS)
    ctx = RewardContext(correct=torch.tensor(CORRECT), answered=torch.ones(6, dtype=torch.bool))
    # group 0 all 7 -> 0; group 1: lambda 0.5, 0, -0.5 -> wrong 0, correct 0, correct -0.5
    close(REWARDS.build({"name": "kimi"})(batch, ctx), [0, 0, 0, 0, 0, -0.5])


def test_dapo_overlong(batch_factory):
    # L_max 20, L_cache 12 -> free up to 8; (8 - L) / 12 inside: 10 -> -1/6, 20 -> -1
    close(run({"name": "dapo_overlong", "buffer": 12}, batch_factory), [0, 0, 0, -1 / 6, -1 / 6, -1.0])
    # default buffer = max_length / 5 = 4 -> free up to 16: only 20 is punished, (16 - 20) / 4 = -1
    close(run({"name": "dapo_overlong"}, batch_factory), [0, 0, 0, 0, 0, -1.0])
    # L_max 25, L_cache 10 -> free up to 15: 20 -> -0.5, times penalty_factor 0.5 -> -0.25
    cfg = {"name": "dapo_overlong", "max_length": 25, "buffer": 10, "penalty_factor": 0.5}
    close(run(cfg, batch_factory), [0, 0, 0, 0, 0, -0.25])
    # beyond L_max: L_max 15, L_cache 5: 10 -> 0 (at the buffer edge), 20 > 15 -> -1
    close(run({"name": "dapo_overlong", "max_length": 15, "buffer": 5}, batch_factory), [0, 0, 0, 0, 0, -1.0])


def test_cosine(batch_factory):
    # T = 24, CosFn(L) = lo + (hi - lo)(1 + cos(pi L / 24)) / 2; correct (lo, hi) = (1, 2), wrong (0, -10)
    # L=2: 1 + (1 + cos 15deg)/2 = 1.982963; L=4: 1 + (1 + cos 30deg)/2 = 1.933013
    # wrong L=6: -5 (1 + cos 45deg) = -8.535534; wrong L=10: -5 (1 + cos 75deg) = -6.294095
    # correct L=10: 1 + (1 + cos 75deg)/2 = 1.629410; L=20 is truncated -> r_e = -10
    expected = [1.982963, 1.933013, -8.535534, -6.294095, 1.629410, -10.0]
    close(run({"name": "cosine", "max_length": 24}, batch_factory), expected)

    def untruncate(batch):
        batch.truncated = torch.zeros(6, dtype=torch.bool)

    # not truncated: correct L=20 -> 1 + (1 + cos 150deg)/2 = 1.066987; margin 4: 20 + 4 >= 24 -> -10
    out = run({"name": "cosine", "max_length": 24}, batch_factory, edit=untruncate)
    close(out, [*expected[:5], 1.066987])
    out = run({"name": "cosine", "max_length": 24, "exceed_margin": 4}, batch_factory, edit=untruncate)
    close(out, expected)
    assert out.metrics["reward/cosine/exceed_frac"] == pytest.approx(1 / 6)


def test_l1_exact_and_max(batch_factory):
    # target 10, alpha 0.01: 1[correct] - 0.01 |10 - L|
    cfg = {"name": "l1_exact", "alpha": 0.01, "target_length": 10}
    close(run(cfg, batch_factory), [1 - 0.08, 1 - 0.06, -0.04, 0.0, 1.0, 1 - 0.1])
    # max (clip): correct * clip(0.01 (10 - L) + 0.5, 0, 1)
    cfg = {"name": "l1_max", "alpha": 0.01, "target_length": 10}
    close(run(cfg, batch_factory), [0.58, 0.56, 0.0, 0.0, 0.5, 0.4])
    # max (sigmoid, alpha 0.1): correct * clip(sigmoid(0.1 (10 - L)) + 0.1 [L <= 10], 0, 1)
    cfg = {"name": "l1_max", "alpha": 0.1, "target_length": 10, "form": "sigmoid"}
    close(run(cfg, batch_factory), [sig(0.8) + 0.1, sig(0.6) + 0.1, 0.0, 0.0, 0.6, sig(-1.0)])


def test_l1_target_from_meta(batch_factory):
    def targets(batch):  # group 0 asked for 4 tokens, group 1 for 20
        batch.meta = [{"target_len": 4}] * 3 + [{"target_len": 20}] * 3

    # g0: |4-2|, |4-4|, wrong |4-6| -> 0.98, 1, -0.02; g1: wrong |20-10|, |20-10|, |20-20| -> -0.1, 0.9, 1
    out = run({"name": "l1_exact", "alpha": 0.01, "target_length": 999}, batch_factory, edit=targets)
    close(out, [0.98, 1.0, -0.02, -0.1, 0.9, 1.0])
    with pytest.raises(ConfigError, match=r"reward\.target_length: l1_exact needs a positive target length"):
        run({"name": "l1_exact"}, batch_factory)

    def bad(batch):
        batch.meta[2] = {"target_len": "many"}

    with pytest.raises(DataError, match=r"sample 2: meta\['target_len'\]: expected a number, got 'many'"):
        run({"name": "l1_max", "target_length": 10}, batch_factory, edit=bad)


def test_shorterbetter(batch_factory):
    # group 0: SOL = 2 (shortest correct); group 1: SOL = 10; alpha 2, beta 0.1
    # 2 - 0; 2 - 0.2; 0 - 0.4 | 0 - 0; 2 - 0; 2 - 1.0
    close(run({"name": "shorterbetter", "beta": 0.1}, batch_factory), [2.0, 1.8, -0.4, 0.0, 2.0, 1.0])


def test_shorterbetter_without_correct_uses_mean(batch_factory):
    # no correct answer: SOL = group mean = 4 and 40/3; r = -0.1 |L - SOL|
    out = run({"name": "shorterbetter", "beta": 0.1}, batch_factory, correct=[False] * 6)
    close(out, [-0.2, 0.0, -0.2, -1 / 3, -1 / 3, -2 / 3])


def test_arora_zanette(batch_factory):
    # group 0 correct lengths 2, 4: mean 3, population std 1 -> z = -1, +1
    # group 1 correct lengths 10, 20: mean 15, std 5 -> z = -1, +1; wrong -> 0
    lo, hi = 1 - 0.1 * sig(-1), 1 - 0.1 * sig(1)  # 0.973106, 0.926894
    close(run({"name": "arora_zanette"}, batch_factory), [lo, hi, 0, 0, lo, hi])
    # a lone correct answer (group 1 here): z = 0 -> 1 - 0.2 * 0.5
    out = run(
        {"name": "arora_zanette", "alpha": 0.2},
        batch_factory,
        correct=[True, True, False, False, True, False],
    )
    close(out, [1 - 0.2 * sig(-1), 1 - 0.2 * sig(1), 0, 0, 0.9, 0])


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "binary", "correct": 0, "wrong": 1}, r"correct \(0\) must be greater than wrong \(1\)"),
        ({"name": "thinkless", "gamma": 2.0}, r"gamma: expected 0 <= gamma < 2 \(correct - wrong\), got 2.0"),
        ({"name": "kimi", "start_step": -1}, "start_step: expected a non-negative step"),
        ({"name": "dapo_overlong", "max_length": 10, "buffer": 10}, r"buffer \(10\) must be smaller"),
        ({"name": "cosine", "r0_wrong": 1.0}, r"r0_wrong \(1.0\) and rl_wrong \(0.0\) must be <= 0"),
        ({"name": "l1_max", "form": "tanh"}, "form: expected 'clip' or 'sigmoid', got 'tanh'"),
        ({"name": "arora_zanette", "alpha": 1.0}, r"alpha: expected a value in \[0, 1\), got 1.0"),
        ({"name": "kimi", "weight": 0.5}, "reward.weight: unknown parameter of reward 'kimi'"),
    ],
)
def test_bad_params_are_one_line_errors(cfg, message):
    with pytest.raises(RegistryError, match=message) as info:
        REWARDS.build(cfg, where="reward")
    assert "\n" not in str(info.value)


def test_dapo_buffer_checked_against_rollout_length(batch_factory):
    with pytest.raises(ConfigError, match=r"reward.buffer: expected 0 < buffer < max_length \(20\), got 30"):
        run({"name": "dapo_overlong", "buffer": 30}, batch_factory)


# -- sum ------------------------------------------------------------------------------------------
def test_sum_of_binary_and_kimi(batch_factory):
    # binary 1, 1, 0, 0, 1, 1 + 0.5 * kimi (0.5, 0, -0.5, 0, 0.5, -0.5)
    cfg = {"name": "sum", "terms": [{"name": "binary"}, {"name": "kimi", "weight": 0.5}]}
    out = run(cfg, batch_factory)
    close(out, [1.25, 1.0, -0.25, 0.0, 1.25, 0.75])
    m = out.metrics
    assert m["reward/terms/0_binary/mean"] == pytest.approx(4 / 6)
    assert m["reward/terms/0_binary/no_answer_frac"] == 0.0
    assert m["reward/terms/1_kimi/mean"] == pytest.approx(0.0)  # unweighted term mean
    assert m["reward/sum/mean"] == pytest.approx(4 / 6)
    assert out.episode_rewards is None


def test_sum_keeps_mode_metrics(batch_factory):
    cfg = {"name": "sum", "terms": [{"name": "thinkless"}, {"name": "binary", "weight": 0.1}]}
    modes = ["short", "think", "short", "think", None, "think"]
    answered = [True, True, True, False, True, True]
    out = run(cfg, batch_factory, modes=modes, answered=answered)
    # thinkless (1, .5, -1, -1, -1, .5) + 0.1 * binary (1, 1, 0, 0, 1, 1)
    close(out, [1.1, 0.6, -1.0, -1.0, -0.9, 0.6])
    assert out.metrics["mode/think_ratio"] == pytest.approx(0.5)
    assert out.metrics["mode/n_format_fail"] == 1


class EpisodeLength(Reward):
    """A process reward for the test: each episode of the given spans earns (its token count) / 10."""

    def __init__(self, spans: list[list[tuple[int, int]]]) -> None:
        self.spans = spans

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        eps = [torch.tensor([(b - a) / 10 for a, b in spans]) for spans in self.spans]
        return RewardOutput(rewards=torch.stack([e.sum() for e in eps]), episode_rewards=eps, episode_spans=self.spans)


def test_sum_folds_sequence_terms_into_the_last_episode(batch_factory):
    batch = batch_factory(LENGTHS, GROUPS)
    spans = [[(0, 2)], [], [(0, 3), (3, 6)], [(0, 5), (5, 10)], [(0, 10)], [(0, 8), (8, 20)]]
    reward = WeightedSum([{"name": "binary"}])
    reward.terms.insert(0, (0.5, EpisodeLength(spans), "episode_length"))
    ctx = RewardContext(correct=torch.tensor(CORRECT), answered=torch.ones(6, dtype=torch.bool))
    out = reward(batch, ctx)
    # 0.5 * episode rewards, binary (1, 1, 0, 0, 1, 1) added to each last episode; sample 1 had no
    # episode and gets one spanning its 4 tokens
    expected = [[0.1 + 1], [1.0], [0.15, 0.15], [0.25, 0.25], [0.5 + 1], [0.4, 0.6 + 1]]
    for got, want in zip(out.episode_rewards, expected):
        torch.testing.assert_close(got, torch.tensor(want), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.rewards, torch.stack([e.sum() for e in out.episode_rewards]))
    assert out.episode_spans[1] == [(0, 4)] and out.episode_spans[5] == [(0, 8), (8, 20)]


def test_sum_propagates_the_initial_parameters_need():
    plain = REWARDS.build({"name": "sum", "terms": [{"name": "binary"}, {"name": "kimi"}]})
    assert not plain.needs_initial_params
    l2t = REWARDS.build({"name": "sum", "terms": [{"name": "binary"}, {"name": "info_gain"}]})
    assert l2t.needs_initial_params


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (
            [{"name": "binary"}, {"name": "kimmi"}],
            r"reward\.terms\[1\]\.name: unknown reward 'kimmi'; did you mean 'kimi'",
        ),
        ([{"name": "binary"}, {"name": "kimi", "start": 3}], r"reward\.terms\[1\]\.start: unknown parameter"),
        ([{"name": "binary", "weight": "high"}], r"reward\.terms\[0\]\.weight: expected a finite number"),
        ([{"weight": 1.0}], r"reward\.terms\[0\]\.name: missing"),
        (["binary"], r"reward\.terms\[0\]: expected a mapping"),
        ([], r"reward\.terms: expected a non-empty list"),
        (
            [{"name": "callable", "fn": "nowhere_pkg:f"}],
            r"reward\.terms\[0\]\.fn: cannot import 'nowhere_pkg:f'",
        ),
    ],
)
def test_sum_term_errors_at_build_and_config_load(terms, message):
    with pytest.raises(RegistryError, match=message) as info:
        REWARDS.build({"name": "sum", "terms": terms}, where="reward")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=message.replace("reward", "config: reward", 1)):
        build_section(REWARDS, {"name": "sum", "terms": terms}, "config", "reward")


# -- callable -------------------------------------------------------------------------------------
def test_callable_reward(batch_factory):
    # len(completion) + 1 if it ends with the gold "1"
    out = run(
        {"name": "callable", "fn": "reward_fns:length_bonus"},
        batch_factory,
        completions=["a1", "b", "cc1", "d", "e", "f1"],
    )
    close(out, [3.0, 1.0, 4.0, 1.0, 1.0, 3.0])
    out = run({"name": "callable", "fn": "reward_fns.with_none", "weight": 2.0}, batch_factory)
    close(out, [2.0, 0.0, 2.0, 0.0, 2.0, 0.0])  # None -> 0
    assert out.metrics["reward/callable/none_frac"] == pytest.approx(0.5)


def test_callable_gets_ids_and_meta_columns(batch_factory):
    def hard_group_1(batch):
        batch.meta = [{"difficulty": "easy"}] * 3 + [{"difficulty": "hard"}] * 3

    # len(completion_ids) (the response lengths) + 10 for hard items; numpy float32 values accepted
    out = run({"name": "callable", "fn": "reward_fns:ids_and_meta"}, batch_factory, edit=hard_group_1)
    close(out, [2, 4, 6, 20, 20, 30])


def test_callable_errors(batch_factory):
    with pytest.raises(RLReasonError, match="reward_fns:wrong_length: expected a list of 6 numbers, got 1 values"):
        run({"name": "callable", "fn": "reward_fns:wrong_length"}, batch_factory)
    with pytest.raises(RLReasonError, match=r"reward_fns:non_numeric: value 0 is not a number: '1\.0'"):
        run({"name": "callable", "fn": "reward_fns:non_numeric"}, batch_factory)
    with pytest.raises(RegistryError, match=r"fn: cannot import 'reward_fns:nope' \(AttributeError"):
        REWARDS.build({"name": "callable", "fn": "reward_fns:nope"}, where="reward")
    with pytest.raises(RegistryError, match="'reward_fns:NOT_CALLABLE' is not callable"):
        REWARDS.build({"name": "callable", "fn": "reward_fns:NOT_CALLABLE"})
    with pytest.raises(ConfigError, match=r"config: reward.fn: cannot import 'no_such_module:f' \(ModuleNotFoundError"):
        build_section(REWARDS, {"name": "callable", "fn": "no_such_module:f"}, "config", "reward")
