"""DLER's advantage options (batch-wise normalisation, dynamic sampling) and the `baseline: none`
option on grpo / degrpo / l2t_ppo: hand-computed advantages, and real 2-step lab runs showing that
dynamic sampling trains on no all-equal group."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB

import rlreason.components  # noqa: F401
from rlreason.algos.base import LossInputs
from rlreason.algos.dler import informative_groups
from rlreason.batch import RewardOutput
from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.registry import ALGOS
from rlreason.train.run import run_experiment

# four samples, two groups; lengths 1, 3, 2, 2; rewards 1, 0 | 3, 1
LENGTHS, GROUPS, REWARDS_ = [1, 3, 2, 2], [0, 0, 1, 1], [1.0, 0.0, 3.0, 1.0]


def seq_adv(algo_cfg, batch_factory, rewards=REWARDS_):
    batch = batch_factory(LENGTHS, GROUPS)
    algo = ALGOS.build(algo_cfg, where="algo")
    adv = algo.advantages(batch, RewardOutput(rewards=torch.tensor(rewards)))
    return adv.tokens[:, 0], adv, algo


def test_batch_norm_whitens_group_centred_advantages_over_tokens(batch_factory):
    # group-centred: 0.5, -0.5, 1, -1; token weights 1, 3, 2, 2 (8 tokens):
    # mean = (0.5 - 1.5 + 2 - 2) / 8 = -0.125; var = (0.625^2 + 3 * 0.375^2 + 2 * 1.125^2 + 2 * 0.875^2) / 7
    var = (0.625**2 + 3 * 0.375**2 + 2 * 1.125**2 + 2 * 0.875**2) / 7
    expected = [x / math.sqrt(var + 1e-8) for x in (0.625, -0.375, 1.125, -0.875)]
    for name in ("grpo", "degrpo"):
        adv, _, _ = seq_adv({"name": name, "scale_rewards": "none", "batch_norm": True}, batch_factory)
        torch.testing.assert_close(adv, torch.tensor(expected), atol=1e-5, rtol=0)
    # off: the plain group-centred advantage, bit for bit
    adv, out, _ = seq_adv({"name": "grpo", "scale_rewards": "none"}, batch_factory)
    assert torch.equal(adv, torch.tensor([0.5, -0.5, 1.0, -1.0]))
    assert out.keep is None


def test_dynamic_sampling_drops_all_equal_groups(batch_factory):
    rewards = [1.0, 0.0, 3.0, 3.0]  # group 1 all equal
    adv, out, _ = seq_adv({"name": "grpo", "dynamic_sampling": "skip"}, batch_factory, rewards)
    assert out.keep.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert adv[2:].tolist() == [0.0, 0.0]
    assert out.metrics["ds_dropped_groups"] == 1.0
    assert out.metrics["ds_dropped_frac"] == 0.5
    # with batch_norm the statistics are over the kept tokens only: 0.5, -0.5 with weights 1, 3:
    # mean -0.25, var = (0.75^2 + 3 * 0.25^2) / 3
    cfg = {"name": "grpo", "scale_rewards": "none", "dynamic_sampling": "skip", "batch_norm": True}
    adv, _, _ = seq_adv(cfg, batch_factory, rewards)
    sd = math.sqrt((0.75**2 + 3 * 0.25**2) / 3 + 1e-8)
    torch.testing.assert_close(adv, torch.tensor([0.75 / sd, -0.25 / sd, 0.0, 0.0]), atol=1e-5, rtol=0)


def test_informative_groups_keeps_singletons():
    keep = informative_groups(torch.tensor([1.0, 1.0, 2.0, 5.0, 5.0]), torch.tensor([0, 0, 1, 2, 2]))
    assert keep.tolist() == [False, False, True, False, False]


def test_l2t_ppo_dynamic_sampling_acts_on_the_group_score(batch_factory):
    batch = batch_factory(LENGTHS, GROUPS)
    algo = ALGOS.build({"name": "l2t_ppo", "dynamic_sampling": "skip"}, where="algo")
    out = algo.advantages(batch, RewardOutput(rewards=torch.tensor([1.0, 0.0, 2.0, 2.0])))
    # group 1: equal lengths and rewards -> equal r~ -> dropped; group 0 keeps its z-scores
    assert out.keep.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert (out.tokens[2:] == 0).all() and (out.tokens[:2] != 0).any()


def test_baseline_none_uses_the_reward_as_the_advantage(batch_factory):
    adv, _, _ = seq_adv({"name": "grpo", "baseline": "none", "scale_rewards": "none"}, batch_factory)
    assert adv.tolist() == REWARDS_
    adv, _, _ = seq_adv({"name": "degrpo", "baseline": "none"}, batch_factory)
    assert adv.tolist() == REWARDS_


def test_masked_rows_with_kept_normaliser_equal_the_kept_subset_loss():
    """What the loop does with `keep` (mask the rows, count kept sequences) is the loss of the subset."""
    torch.manual_seed(0)
    lp = torch.randn(4, 3, requires_grad=True)
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3, [0.0] * 3, [0.0] * 3])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=torch.float)
    keep = torch.tensor([1.0, 1.0, 0.0, 0.0])
    algo = ALGOS.build({"name": "grpo", "loss_type": "grpo"}, where="algo")
    old = lp.detach() - 0.1
    m = mask * keep[:, None]
    loss, _ = algo.loss(
        LossInputs(logprobs=lp, mask=m, old_logprobs=old, advantages=adv, num_seqs=2.0, num_tokens=float(m.sum()))
    )
    sub, _ = algo.loss(
        LossInputs(
            logprobs=lp[:2],
            mask=mask[:2],
            old_logprobs=old[:2],
            advantages=adv[:2],
            num_seqs=2.0,
            num_tokens=float(mask[:2].sum()),
        )
    )
    torch.testing.assert_close(loss, sub)


@pytest.mark.parametrize(
    "algo, message",
    [
        ("{name: grpo, dynamic_sampling: resample}", r"algo\.dynamic_sampling: expected one of off, skip"),
        ("{name: grpo, batch_norm: 3}", r"algo\.batch_norm: expected true(/| or )false"),
        ("{name: grpo, baseline: none}", r"algo\.baseline: none uses the reward itself"),
        ("{name: degrpo, baseline: mean}", r"algo\.baseline: expected one of group, none"),
        ("{name: l2t_ppo, advantage: gae, batch_norm: true}", r"algo\.advantage: gae whitens"),
    ],
)
def test_config_errors_name_the_key(algo, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config("experiments/lab/grpo.yaml", [f"algo={algo}"])
    assert "\n" not in str(info.value)


# -- real lab runs ------------------------------------------------------------------------------------
TINY = TINY_LAB
RL = ["optim.steps=2", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=12"]


def _scalars(run_dir: Path, tag: str) -> list[float]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_dynamic_sampling_never_trains_on_an_all_equal_group(tmp_path, tiny_sft_policy):
    """Every group all-equal: with an entropy bonus the plain run moves the policy (the bonus trains
    even at zero advantage), the dynamic-sampling run leaves it bit for bit as it was."""
    common = [
        *TINY,
        *RL,
        f"init.from={tiny_sft_policy}",
        "reward={name: callable, fn: 'reward_fns:constant'}",
        "algo.entropy_coef=0.1",
    ]
    w0 = load_file(str(tiny_sft_policy / "model.safetensors"))
    plain = run_experiment(load_config("experiments/lab/grpo.yaml", [*common, f"logging.dir={tmp_path / 'a'}"]))
    skip = run_experiment(
        load_config(
            "experiments/lab/grpo.yaml", [*common, f"logging.dir={tmp_path / 'b'}", "algo.dynamic_sampling=skip"]
        )
    )
    w_plain, w_skip = (
        load_file(str(plain / "policy" / "model.safetensors")),
        load_file(str(skip / "policy" / "model.safetensors")),
    )
    assert any(not torch.equal(w_plain[k], w0[k]) for k in w0)
    assert all(torch.equal(w_skip[k], w0[k]) for k in w0)
    assert _scalars(skip, "algo/ds_skipped_step") == [1.0, 1.0]
    assert _scalars(skip, "algo/ds_dropped_frac") == [1.0, 1.0]


def test_dynamic_sampling_counts_the_dropped_groups(tmp_path, tiny_sft_policy):
    """Problems with an even gold answer get an all-equal group; exactly those are dropped and logged."""
    cfg = load_config(
        "experiments/lab/grpo.yaml",
        [
            *TINY,
            *RL,
            f"init.from={tiny_sft_policy}",
            f"logging.dir={tmp_path}",
            "algo.dynamic_sampling=skip",
            "algo.batch_norm=true",
            "reward={name: callable, fn: 'reward_fns:constant_on_even_gold'}",
        ],
    )
    import reward_fns

    reward_fns.RECORDED.clear()
    run_dir = run_experiment(cfg)
    dropped = _scalars(run_dir, "algo/ds_dropped_groups")
    groups = [[v[g : g + 4] for g in range(0, len(v), 4)] for v in reward_fns.RECORDED]  # G = 4 in a row
    expected = [float(sum(len(set(g)) == 1 for g in step)) for step in groups]
    assert len(expected) == 2 and dropped == expected
    assert sum(expected) >= 1  # the even-gold problems do produce all-equal groups here
    frac = _scalars(run_dir, "algo/ds_dropped_frac")
    assert frac == [e / 4 for e in expected]
