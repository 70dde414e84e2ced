"""The adaptive-thinking rewards against hand-computed cases (group statistics included).

Shared batch (as tests/test_rewards.py): group 0 has lengths 2, 4, 6 (correct, correct, wrong);
group 1 has lengths 10, 10, 20 (wrong, correct, correct); the length-20 sample is truncated.
"""

from __future__ import annotations

import math

import pytest
import torch

import rlreason.components  # noqa: F401  (registers the rewards)
from rlreason.config import load_config
from rlreason.errors import ConfigError, DataError
from rlreason.registry import REWARDS
from rlreason.rewards.base import RewardContext
from rlreason.rewards.mode_rewards import ada_alpha

LENGTHS = [2, 4, 6, 10, 10, 20]
GROUPS = [0, 0, 0, 1, 1, 1]
CORRECT = [True, True, False, False, True, True]


def run(cfg, batch_factory, correct=CORRECT, step=0, max_steps=0, edit=None, **batch_kw):
    batch = batch_factory(LENGTHS, GROUPS, **batch_kw)
    if edit:
        edit(batch)
    ctx = RewardContext(
        correct=torch.tensor(correct),
        answered=torch.ones(6, dtype=torch.bool),
        max_new_tokens=20,
        step=step,
        max_steps=max_steps,
    )
    return REWARDS.build(cfg, where="reward")(batch, ctx)


def close(out, expected, atol=1e-5):
    torch.testing.assert_close(out.rewards, torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=0)


def untruncate(batch):
    batch.truncated = torch.zeros(6, dtype=torch.bool)


# -- truncation (ThinkPrune / DLER) ---------------------------------------------------------------
def test_truncation_unfinished_scores_zero(batch_factory):
    # budget = max_new_tokens 20: the truncated correct sample 5 scores 0
    out = run({"name": "truncation"}, batch_factory)
    close(out, [1, 1, 0, 0, 1, 0])
    assert out.metrics["reward/truncation/unfinished_frac"] == pytest.approx(1 / 6)
    # budget 8: the correct length-10 sample 4 is over budget too
    close(run({"name": "truncation", "budget": 8}, batch_factory, edit=untruncate), [1, 1, 0, 0, 0, 0])


def test_truncation_difficulty_aware_budget(batch_factory):
    # group 0 correct share 2/3 > 0.5 -> easy budget 3: only the length-2 answer fits;
    # group 1 share 1/3 keeps budget 20: its correct length-20 answer (not truncated) scores 1
    correct = [True, True, False, False, False, True]
    out = run({"name": "truncation", "easy_budget": 3}, batch_factory, correct=correct, edit=untruncate)
    close(out, [1, 0, 0, 0, 0, 1])
    assert out.metrics["reward/truncation/easy_frac"] == pytest.approx(0.5)
    assert out.metrics["reward/truncation/budget_mean"] == pytest.approx((3 * 3 + 20 * 3) / 6)
    # threshold 0.7: no group is easy, both keep 20
    out = run(
        {"name": "truncation", "easy_budget": 3, "easy_threshold": 0.7}, batch_factory, correct=correct, edit=untruncate
    )
    close(out, [1, 1, 0, 0, 0, 1])


# -- LC-R1 ----------------------------------------------------------------------------------------
def test_lc_r1_length_against_the_groups_longest_correct(batch_factory):
    # group 0: longest correct 4 -> 1 - L / 4.0001 for all three (the wrong 6 goes negative);
    # group 1: longest correct 20 -> 1 - L / 20.0001
    g0 = [1 - 2 / 4.0001, 1 - 4 / 4.0001, 1 - 6 / 4.0001]
    g1 = [1 - 10 / 20.0001, 1 - 10 / 20.0001, 1 - 20 / 20.0001]
    close(run({"name": "lc_r1_length"}, batch_factory), g0 + g1)
    close(run({"name": "lc_r1_length", "coef": 0.5}, batch_factory), [0.5 * v for v in g0 + g1])
    # a group with no correct answer gets 0
    out = run({"name": "lc_r1_length"}, batch_factory, correct=[False, False, False, False, True, True])
    close(out, [0, 0, 0, *g1])


# -- prime-rl linear pass-rate penalty ----------------------------------------------------------------
def test_pass_rate_length(batch_factory):
    # group 0: base 1, 1, 0, pass rate 2/3, max length 6 -> penalty 0.25 * 2/3 * L / 6 = L / 36
    # group 1: base 0, 1, 1, pass rate 2/3, max length 20 -> penalty L / 120
    expected = [1 - 2 / 36, 1 - 4 / 36, -6 / 36, -10 / 120, 1 - 10 / 120, 1 - 20 / 120]
    close(run({"name": "pass_rate_length"}, batch_factory), expected)
    # nobody solves group 0 -> pass rate 0, no length pressure at all there
    out = run({"name": "pass_rate_length", "coef": 1.0}, batch_factory, correct=[False] * 3 + CORRECT[3:])
    close(out, [0, 0, 0, -4 * 10 / 120, 1 - 4 * 10 / 120, 1 - 4 * 20 / 120])


# -- ARM Ada-GRPO ------------------------------------------------------------------------------------
MODES = ["short", "think", "think", "think", "think", "think"]


def test_ada_alpha_cosine_schedule_by_hand():
    # t = 0: G / F; t = T/2: 1 + (G/F - 1) / 2; t = T: 1
    assert ada_alpha(8, 2, 0, 100) == pytest.approx(4.0)
    assert ada_alpha(8, 2, 50, 100) == pytest.approx(2.5)
    assert ada_alpha(8, 2, 25, 100) == pytest.approx(1 + 0.5 * 3 * (1 + math.cos(math.pi / 4)))
    assert ada_alpha(8, 2, 100, 100) == pytest.approx(1.0)
    assert ada_alpha(8, 8, 0, 100) == pytest.approx(1.0)  # one mode in the group: no boost


def test_ada_grpo_scales_the_rare_mode(batch_factory):
    # group 0: <short> alone (F=1, G/F=3), two <think> (F=2, 1.5); group 1 all <think> (alpha 1)
    cfg = {"name": "ada_grpo", "total_steps": 10}
    close(run(cfg, batch_factory, modes=MODES, step=0), [3, 1.5, 0, 0, 1, 1])
    close(run(cfg, batch_factory, modes=MODES, step=5), [2, 1.25, 0, 0, 1, 1])
    close(run(cfg, batch_factory, modes=MODES, step=10), [1, 1, 0, 0, 1, 1])
    # T from the run's optim.steps when total_steps is 0
    out = run({"name": "ada_grpo"}, batch_factory, modes=MODES, step=5, max_steps=10)
    close(out, [2, 1.25, 0, 0, 1, 1])
    assert out.metrics["reward/ada_grpo/alpha_max"] == pytest.approx(2.0)
    # a format failure is a mode of its own (ARM's UNKNOWN): in group 1 the two <think> get G/F = 1.5
    modes = ["short", "think", "think", None, "think", "think"]
    close(run(cfg, batch_factory, modes=modes, step=0), [3, 1.5, 0, 0, 1.5, 1.5])
    # any base reward: thinkless (short+correct 1, think+correct 0.5, wrong -1) at t = 0
    out = run({"name": "ada_grpo", "total_steps": 10, "base": {"name": "thinkless"}}, batch_factory, modes=MODES)
    close(out, [3, 0.75, -1.5, -1, 0.5, 0.5])
    assert "mode/think_ratio" in out.metrics  # the base reward's metrics are kept


def test_ada_grpo_needs_the_schedule_length(batch_factory):
    with pytest.raises(ConfigError, match=r"reward\.total_steps"):
        run({"name": "ada_grpo"}, batch_factory, modes=MODES)


# -- AutoThink --------------------------------------------------------------------------------------
AT_MODES = ["short", "think", "think", "think", "think", None]


def test_autothink_base_reward(batch_factory):
    # no-think correct 2; think correct 1; think wrong 0; format failure 0 (even with a right answer)
    out = run({"name": "autothink"}, batch_factory, modes=AT_MODES)
    close(out, [2, 1, 0, 0, 1, 0])


def test_autothink_stage1_batch_balancing(batch_factory):
    # think share 5/6 (the format failure counts as think) > 0.5: lam = 2 (5/6 - 1/2) = 2/3 towards
    # think targets (correct 0, wrong -1): 1 -> 1/3, 0 -> -2/3; the <short> sample keeps 2
    out = run({"name": "autothink", "balance_rate": 0.5}, batch_factory, modes=AT_MODES)
    close(out, [2, 1 / 3, -2 / 3, -2 / 3, 1 / 3, -2 / 3])
    assert out.metrics["reward/autothink/balance_think"] == pytest.approx(2 / 3)
    assert out.metrics["reward/autothink/balance_short"] == 0.0
    # mostly <short>: share 5/6 no-think -> lam 2/3 towards no-think targets (correct 1, wrong -2)
    modes = ["short", "short", "short", "short", "think", "short"]
    out = run({"name": "autothink", "balance_rate": 0.5}, batch_factory, modes=modes)
    # base: 2, 2, -1, -1, think correct 1, 2 -> short ones: 2 -> 4/3, -1 -> -5/3
    close(out, [4 / 3, 4 / 3, -5 / 3, -5 / 3, 1, 4 / 3])


def test_autothink_stage3_length_shaping(batch_factory):
    # group 0 correct: lengths 2, 4 -> z = -+1/sqrt(2) (unbiased std sqrt 2): r += exp(-0.05 z) - 1;
    # its single wrong sample is not shaped. Group 1 wrong (the format failure is graded wrong):
    # lengths 10, 20 -> z = -+1/sqrt(2): r += 1 - exp(-0.05 z); its single correct one is not shaped.
    z = 1 / math.sqrt(2)
    a = 0.05 * z
    expected = [2 + math.exp(a) - 1, 1 + math.exp(-a) - 1, 0, 1 - math.exp(a), 1, 1 - math.exp(-a)]
    close(run({"name": "autothink", "alpha": 0.05, "beta": 0.05}, batch_factory, modes=AT_MODES), expected)


# -- AdaptThink -------------------------------------------------------------------------------------
def test_adaptthink_from_a_precomputed_column(batch_factory):
    def refs(batch):
        for i, m in enumerate(batch.meta):
            m["ref_think_acc"] = 0.5 if GROUPS[i] == 0 else 0.25

    modes = ["short", "think", "think", "think", None, "short"]
    out = run({"name": "adaptthink"}, batch_factory, modes=modes, edit=refs)
    # correct - ref + 0.05 [short]; the format failure (sample 4) is graded wrong and gets no bonus
    close(out, [1 - 0.5 + 0.05, 0.5, -0.5, -0.25, -0.25, 1 - 0.25 + 0.05])
    assert out.metrics["reward/adaptthink/ref_think_acc"] == pytest.approx(0.375)
    close(
        run({"name": "adaptthink", "delta": 0.0}, batch_factory, modes=modes, edit=refs),
        [0.5, 0.5, -0.5, -0.25, -0.25, 0.75],
    )
    with pytest.raises(DataError, match=r"meta\['ref_think_acc'\]"):
        run({"name": "adaptthink"}, batch_factory, modes=modes)


# -- config errors name the key -------------------------------------------------------------------
@pytest.mark.parametrize(
    "reward, message",
    [
        ("{name: truncation, budget: 10, easy_budget: 20}", r"reward\.easy_budget: expected <= budget"),
        ("{name: truncation, easy_threshold: 1.5}", r"reward\.easy_threshold: expected a share"),
        ("{name: lc_r1_length, coef: -1}", r"reward\.coef: expected a number >= 0"),
        ("{name: pass_rate_length, coef: -1}", r"reward\.coef: expected a number >= 0"),
        ("{name: ada_grpo, total_steps: -2}", r"reward\.total_steps: expected >= 0"),
        ("{name: ada_grpo, base: {name: nope}}", r"reward\.base\.name: unknown reward 'nope'"),
        ("{name: autothink, balance_rate: 2}", r"reward\.balance_rate: expected a share"),
        ("{name: adaptthink, source: oracle}", r"reward\.source: expected one of column, presample"),
        ("{name: adaptthink, samples: 0}", r"reward\.samples: expected a positive integer"),
    ],
)
def test_config_errors_name_the_key(reward, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config("experiments/lab/grpo.yaml", [f"reward={reward}"])
    assert "\n" not in str(info.value)
