"""L2T-PPO: surprise-weighted token rewards, trimmed-mean advantages, the guard, GAE and the value loss."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.algos.base import LossInputs
from rlreason.algos.l2t_ppo import L2TPPO, gae, token_rewards, trimmed_mean
from rlreason.batch import RewardOutput


def test_trimmed_mean_cuts_two_and_a_half_percent_per_tail():
    x = torch.cat([torch.full((78,), 1.0), torch.tensor([-1000.0, 1000.0, 500.0, -7.0])])  # n = 82
    # int(0.025 * 82) = 2 cut per tail: drops -1000, -7 and 500, 1000 -> the 78 ones remain
    assert float(trimmed_mean(x, 0.025)) == pytest.approx(1.0)
    # n = 39 < 40: nothing cut, plain mean
    y = torch.cat([torch.zeros(38), torch.tensor([39.0])])
    assert float(trimmed_mean(y, 0.025)) == pytest.approx(1.0)


def test_token_rewards_follow_surprise_and_sum_to_the_episode_reward():
    # surprises -log p: ln2, 2 ln2 | 0, 0 (no surprise at all -> uniform over the episode's tokens)
    old = torch.log(torch.tensor([[0.5, 0.25, 1.0, 1.0]]))
    r = token_rewards([torch.tensor([3.0, -1.0])], [[(0, 2), (2, 4)]], old, torch.ones(1, 4))
    torch.testing.assert_close(r, torch.tensor([[1.0, 2.0, -0.5, -0.5]]))


def _batch(batch_factory, lengths, groups, old):
    batch = batch_factory(lengths, groups, width=old.shape[1])
    batch.old_logprobs = old * batch.response_mask
    return batch


def test_advantages_by_hand_with_episodes_and_guard(batch_factory):
    old = torch.log(torch.tensor([[0.5, 0.25, 1.0, 0.5], [0.5, 0.5, 1, 1], [0.5, 0.5, 1, 1], [0.5, 0.5, 0.5, 1]]))
    batch = _batch(batch_factory, [4, 2, 2, 3], [0, 0, 1, 1], old)
    reward = RewardOutput(
        rewards=torch.tensor([4.0, 1.0, 0.0, 0.6]),
        episode_rewards=[torch.tensor([3.0, 1.0]), torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.6])],
        episode_spans=[[(0, 2), (2, 4)], [(0, 2)], [(0, 2)], [(0, 3)]],
    )
    algo = L2TPPO()
    adv = algo.advantages(batch, reward)
    # token rewards: s0 [1, 2, 0, 1] (episode 2: surprises 0, ln2) -> r~ 1; s1 [.5, .5] -> r~ .5;
    # s2 [0, 0] -> r~ 0 (guard: |r~| <= .1 * mean|r| = 0); s3 [.2, .2, .2] -> r~ .2
    # group 0: mean .75, unbiased std sqrt(.125); group 1: mean .1, std sqrt(.02)
    a0 = 0.25 / (math.sqrt(0.125) + 1e-8)
    a1 = 0.1 / (math.sqrt(0.02) + 1e-8)
    expected = torch.tensor(
        [
            [a0 * 1, a0 * 2, 0.0, a0 * 1],  # A^ * r_t / r~ with r~ = 1
            [-a0, -a0, 0, 0],  # r_t / r~ = 1
            [-a1, -a1, 0, 0],  # guard: A^ on every token
            [a1, a1, a1, 0],
        ]
    )
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-6)
    assert algo.last_advantage_metrics["guard_frac"] == pytest.approx(0.25)
    assert algo.last_advantage_metrics["r_tilde_mean"] == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)


def test_sequence_reward_is_one_episode_over_the_response(batch_factory):
    old = torch.log(torch.tensor([[0.5, 0.25, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]]))
    batch = _batch(batch_factory, [3, 4], [0, 0], old)
    adv = L2TPPO().advantages(batch, RewardOutput(rewards=torch.tensor([3.0, 2.0])))
    # s0: surprises ln2, 2ln2, 0 -> token rewards [1, 2, 0], r~ = 1; s1: [.5]*4, r~ = .5
    a = 0.25 / (math.sqrt(0.125) + 1e-8)
    torch.testing.assert_close(adv, torch.tensor([[a, 2 * a, 0, 0], [-a] * 4]), rtol=1e-5, atol=1e-6)


def test_gae_by_hand_with_discount_and_padding():
    r = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, -1.0]])
    v = torch.tensor([[0.5, 0.2, 0.0], [0.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    # gamma .9, lambda .8 (gamma * lambda = .72)
    # row 0: d1 = 1 - .2 = .8, A1 = .8; d0 = .9 * .2 - .5 = -.32, A0 = -.32 + .72 * .8 = .256
    # row 1: A2 = -1; A1 = 0 + .72 * -1 = -.72; A0 = .5 + .72 * -.72 = -.0184
    expected = torch.tensor([[0.256, 0.8, 0.0], [-0.0184, -0.72, -1.0]])
    torch.testing.assert_close(gae(r, v, m, 0.9, 0.8), expected)
    # gamma = lambda = 1, V = 0: the advantage is the undiscounted reward-to-go
    torch.testing.assert_close(gae(r, torch.zeros(2, 3), m, 1.0, 1.0), torch.tensor([[1.0, 1, 0], [-0.5, -1, -1]]))


def test_gae_advantages_place_episode_rewards_at_episode_ends_and_store_returns(batch_factory):
    batch = _batch(batch_factory, [2, 3], [0, 0], torch.zeros(2, 4))
    batch.extras["values"] = torch.tensor([[0.5, 0.2, 0, 0], [0.0, 0, 0, 0]])
    reward = RewardOutput(
        rewards=torch.tensor([1.0, -0.5]),
        episode_rewards=[torch.tensor([1.0]), torch.tensor([0.5, -1.0])],
        episode_spans=[[(0, 2)], [(0, 1), (1, 3)]],
    )
    algo = L2TPPO(advantage="gae", gamma=0.9, gae_lambda=0.8)
    assert algo.needs_values and isinstance(algo.value_head(8), torch.nn.Linear)
    adv = algo.advantages(batch, reward)
    raw = torch.tensor([[0.256, 0.8, 0, 0], [-0.0184, -0.72, -1.0, 0]])  # the hand case above
    torch.testing.assert_close(batch.extras["returns"], raw + batch.extras["values"])
    valid = raw[batch.response_mask.bool()]
    whitened = (raw - valid.mean()) / valid.std(unbiased=False) * batch.response_mask
    torch.testing.assert_close(adv, whitened, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="values"):
        L2TPPO(advantage="gae").advantages(_batch(batch_factory, [2], [0], torch.zeros(1, 4)), reward)


def test_clipped_value_loss_by_hand():
    v = torch.tensor([[1.0, 0.0]], requires_grad=True)
    inp = LossInputs(
        logprobs=torch.zeros(1, 2),
        mask=torch.ones(1, 2),
        old_logprobs=torch.zeros(1, 2),
        advantages=torch.zeros(1, 2),
        values=v,
        old_values=torch.tensor([[0.5, 0.5]]),
        returns=torch.tensor([[2.0, 0.0]]),
        num_seqs=1.0,
        num_tokens=2.0,
    )
    loss, m = L2TPPO(advantage="gae", vf_coef=0.5, value_clip=0.2).loss(inp)
    # t0: clipped V = .7: .5 max(1, 1.69) = .845; t1: clipped V = .3: .5 max(0, .09) = .045; mean .445
    assert float(m["value_loss"]) == pytest.approx(0.445)
    assert float(loss.detach()) == pytest.approx(0.5 * 0.445)
    (grad,) = torch.autograd.grad(loss, v)
    # t0: clipped branch is the max and its V is clipped -> no gradient; t1: clipped branch constant too
    torch.testing.assert_close(grad, torch.zeros(1, 2))


def test_bad_parameters_are_rejected():
    for kw, key in [({"trim": 0.5}, "trim"), ({"gae_lambda": 1.5}, "gae_lambda"), ({"advantage": "td"}, "advantage")]:
        with pytest.raises(ValueError, match=key):
            L2TPPO(**kw)


def test_negative_r_tilde_and_the_guard_on_cancelling_rewards_by_hand(batch_factory):
    # equal surprise on every token, so each episode's reward is split evenly over its tokens
    batch = _batch(batch_factory, [3, 2], [0, 0], torch.full((2, 4), math.log(0.5)))
    reward = RewardOutput(
        rewards=torch.tensor([-2.0, 0.1]),
        episode_rewards=[torch.tensor([1.0, -3.0]), torch.tensor([1.0, -0.9])],
        episode_spans=[[(0, 1), (1, 3)], [(0, 1), (1, 2)]],
    )
    algo = L2TPPO(guard_eps=0.1)
    adv = algo.advantages(batch, reward)
    # s0: token rewards [1, -1.5, -1.5], r~ = -2/3, mean|r| = 4/3: kept; r_t / r~ = [-1.5, 2.25, 2.25]
    # s1: [1, -.9], r~ = .05 <= .1 * mean|r| = .095: the guard fires, A^ on both tokens
    # group: deviations -d, +d with d = (.05 + 2/3) / 2, unbiased std d sqrt(2): A^ = -+1/sqrt(2)
    a = 1 / math.sqrt(2)
    expected = torch.tensor([[-a * -1.5, -a * 2.25, -a * 2.25, 0.0], [a, a, 0.0, 0.0]])
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-6)
    assert algo.last_advantage_metrics["guard_frac"] == pytest.approx(0.5)
    assert algo.last_advantage_metrics["ratio_abs_max"] == pytest.approx(2.25, rel=1e-5)
    # a looser guard keeps s1: r_t / r~ = [20, -18]
    loose = L2TPPO(guard_eps=0.01).advantages(batch, reward)
    torch.testing.assert_close(loose[1, :2], torch.tensor([20 * a, -18 * a]), rtol=1e-4, atol=1e-5)


def test_the_guard_is_scale_free_on_long_responses(batch_factory):
    # 2,000-token answers with sequence rewards 1 and .5: token rewards 5e-4 and 2.5e-4 (uniform surprise),
    # far below any absolute threshold, yet nothing cancels: the guard must not fire
    batch = _batch(batch_factory, [2000, 2000], [0, 0], torch.zeros(2, 2000))
    algo = L2TPPO()
    adv = algo.advantages(batch, RewardOutput(rewards=torch.tensor([1.0, 0.5])))
    assert algo.last_advantage_metrics["guard_frac"] == 0.0
    a = 1 / math.sqrt(2)  # r~ = 5e-4, 2.5e-4: z-scores +-1/sqrt(2), unshrunk by the std epsilon
    torch.testing.assert_close(adv, torch.tensor([[a], [-a]]).expand(2, 2000), rtol=1e-4, atol=1e-6)


def test_micro_batches_sum_to_the_full_batch_gradient_with_the_value_loss():
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    adv, returns, old_v = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3) * 0.1
    algo = L2TPPO(advantage="gae", loss_type="dapo", vf_coef=0.5, value_clip=0.1)
    norms = {"num_seqs": 4.0, "num_tokens": float(mask.sum()), "max_new_tokens": 3}

    def loss_of(rows):
        lp, v = (w[rows]).tanh() - 1.0, w[rows] * 0.3
        inp = LossInputs(
            logprobs=lp,
            mask=mask[rows],
            old_logprobs=lp.detach() - 0.1,
            advantages=adv[rows],
            values=v,
            old_values=old_v[rows],
            returns=returns[rows],
            **norms,
        )
        return algo.loss(inp)[0]

    full = torch.autograd.grad(loss_of(torch.arange(4)), w)[0]
    parts = sum(torch.autograd.grad(loss_of(torch.tensor(r)), w)[0] for r in ([0], [1, 2, 3]))
    torch.testing.assert_close(full, parts)


def test_group_score_mean_prefers_short_answers_and_sum_does_not(batch_factory):
    # group 0: two correct answers, 2 and 6 tokens; group 1: a correct 6-token and a wrong 2-token one;
    # uniform surprise, so token rewards are R / T and the token weights r_t / r~ are all 1
    old = torch.full((4, 6), math.log(0.5))
    batch = _batch(batch_factory, [2, 6, 6, 2], [0, 0, 1, 1], old)
    reward = RewardOutput(rewards=torch.tensor([1.0, 1.0, 1.0, 0.0]))
    a = 1 / math.sqrt(2)  # z-score of two distinct values with the unbiased std
    # mean (paper): r~ = 1/2, 1/6 | 1/6, 0 -> the short correct answer beats the long correct one
    mean = L2TPPO().advantages(batch, reward)
    # sum: S = 1, 1 | 1, 0 -> no preference between the two correct answers
    total = L2TPPO(group_score="sum").advantages(batch, reward)
    m = batch.response_mask.float()
    torch.testing.assert_close(mean, torch.tensor([[a], [-a], [a], [-a]]) * m, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total, torch.tensor([[0.0], [0.0], [a], [-a]]) * m, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="group_score"):
        L2TPPO(group_score="max")
