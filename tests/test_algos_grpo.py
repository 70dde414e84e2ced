"""GRPO losses and advantages against hand-computed cases; micro-batch invariance of each loss type."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.algos.base import LossInputs, k3_kl
from rlreason.algos.grpo import GRPO, group_advantages

MASK = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # T_0 = 2, T_1 = 1
ADV = torch.tensor([[1.0, 1.0], [-0.5, -0.5]])


def inputs(logprobs=None, old=None, **kw) -> LossInputs:
    lp = torch.zeros(2, 2) if logprobs is None else logprobs
    base = {"num_seqs": 2.0, "num_tokens": 3.0, "num_tokens_batch": 3.0, "max_new_tokens": 4}
    base.update(kw)
    return LossInputs(logprobs=lp, mask=MASK, old_logprobs=lp.clone() if old is None else old, advantages=ADV, **base)


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 1.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    std0 = math.sqrt(0.5)  # unbiased std of {1, 0}
    expected = torch.tensor([0.5 / (std0 + 1e-4), -0.5 / (std0 + 1e-4), 0.0, 0.0])
    torch.testing.assert_close(group_advantages(r, g, "group"), expected)
    torch.testing.assert_close(group_advantages(r, g, "none"), torch.tensor([0.5, -0.5, 0.0, 0.0]))
    std_b = float(r.std())  # sqrt(0.25) = 0.5
    torch.testing.assert_close(group_advantages(r, g, "batch"), torch.tensor([0.5, -0.5, 0, 0]) / (std_b + 1e-4))


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", ((-2 / 2) + (0.5 / 1)) / 2),  # -0.25
        ("bnpo", (-2 + 0.5) / 3),  # -0.5
        ("dr_grpo", (-2 + 0.5) / (2 * 4)),  # -0.1875
        ("dapo", (-2 + 0.5) / 3),
    ],
)
def test_loss_types_on_policy(loss_type, expected):
    # on-policy: ratio 1, so l_{i,t} = -A_i: row 0 = [-1, -1], row 1 = [0.5, (masked)]
    loss, _ = GRPO(loss_type=loss_type).loss(inputs())
    assert float(loss) == pytest.approx(expected)


def test_clipping_and_kl_by_hand():
    # token (0,0): A = 1, ratio 1.5 -> clipped at 1.2 -> l = -1.2; token (1,0): A = -0.5, ratio 0.5 ->
    # -min(0.5 * -0.5, 0.8 * -0.5) = 0.4; token (0,1): ratio 1 -> -1
    old = torch.zeros(2, 2)
    lp = torch.tensor([[math.log(1.5), 0.0], [math.log(0.5), 0.0]])
    ref = lp + math.log(2.0)  # k3 = 2 - ln 2 - 1 on every token
    algo = GRPO(loss_type="bnpo", beta=0.1)
    inp = inputs(lp, old)
    inp.ref_logprobs = ref
    loss, m = algo.loss(inp)
    k3 = 2 - math.log(2) - 1
    expected = (-1.2 - 1.0 + 0.4 + 3 * 0.1 * k3) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(m["clip_frac"]) == pytest.approx(2 / 3)
    assert float(m["kl"]) == pytest.approx(k3, rel=1e-5)
    torch.testing.assert_close(k3_kl(torch.zeros(1), torch.tensor([math.log(2.0)])), torch.tensor([k3]))


@pytest.mark.parametrize("split", [([0, 1], [2, 3]), ([0], [1, 2, 3]), ([0], [1], [2], [3])])
@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_sum_to_the_full_batch_gradient(loss_type, split):
    # any split, equal or not, with the KL and the entropy bonus on: the sum form is exact
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    feats = torch.randn(4, 3)
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    adv = torch.randn(4, 1).expand(4, 3).clone()
    ref = torch.randn(4, 3) * 0.1 - 1.0
    norms = {"num_seqs": 4.0, "num_tokens": float(mask.sum()), "max_new_tokens": 3}
    algo = GRPO(loss_type=loss_type, beta=0.1, entropy_coef=0.01)

    def loss_of(rows):
        lp = (w[rows] * feats[rows]).tanh() - 1.0
        inp = LossInputs(
            logprobs=lp,
            mask=mask[rows],
            old_logprobs=lp.detach() - 0.1,
            ref_logprobs=ref[rows],
            advantages=adv[rows],
            entropy=-lp,
            **norms,
        )
        return algo.loss(inp)

    full_loss, full_m = loss_of(torch.arange(4))
    full = torch.autograd.grad(full_loss, w)[0]
    parts, metric_sums = torch.zeros_like(w), {k: 0.0 for k in full_m}
    for rows in split:
        loss, m = loss_of(torch.tensor(rows))
        parts += torch.autograd.grad(loss, w)[0]
        for k in m:
            metric_sums[k] += float(m[k])
    torch.testing.assert_close(full, parts)
    for k, v in full_m.items():  # metrics are contributions that sum over micro-batches
        assert metric_sums[k] == pytest.approx(float(v), rel=1e-5), k


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="loss_type"):
        GRPO(loss_type="ppo")


def test_bnpo_is_the_mean_of_micro_batch_token_means_as_in_trl():
    # on-policy: l = -A. Rows 0,1 (3 and 2 tokens, A = 1, -1) and rows 2,3 (1 and 2 tokens, A = 2, 0)
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0]])
    adv = torch.tensor([[1.0], [-1.0], [2.0], [0.0]]).expand(4, 3)
    algo = GRPO(loss_type="bnpo")

    def loss_of(rows):
        lp = torch.zeros(len(rows), 3)
        inp = LossInputs(logprobs=lp, mask=mask[rows], old_logprobs=lp, advantages=adv[rows], num_seqs=4.0)
        return float(algo.loss(inp)[0])

    # micro 1: (-3 + 2) / 5 = -.2; micro 2: (-2 + 0) / 3 = -2/3; two equal micro-batches -> their mean
    assert loss_of([0, 1]) + loss_of([2, 3]) == pytest.approx((-0.2 - 2 / 3) / 2)
    assert loss_of([0, 1, 2, 3]) == pytest.approx(-3 / 8)  # one micro-batch: a different number


def test_clip_higher_and_entropy_bonus_by_hand():
    # one token, A = 1, ratio 1.25: eps_high .2 clips to 1.2, DAPO's .28 does not
    lp, old = torch.tensor([[math.log(1.25)]]), torch.zeros(1, 1)
    ent = torch.tensor([[0.7]])
    kw = {"mask": torch.ones(1, 1), "old_logprobs": old, "advantages": torch.ones(1, 1), "entropy": ent}
    clipped, m = GRPO().loss(LossInputs(logprobs=lp, **kw))
    assert float(clipped) == pytest.approx(-1.2) and float(m["clip_frac"]) == 1.0
    assert float(m["entropy"]) == pytest.approx(0.7)
    assert not GRPO().needs_entropy_grad and GRPO(entropy_coef=0.1).needs_entropy_grad
    free, _ = GRPO(eps_high=0.28, entropy_coef=0.1).loss(LossInputs(logprobs=lp, **kw))
    assert float(free) == pytest.approx(-1.25 - 0.1 * 0.7)


def test_token_advantages_and_zero_std_metric(batch_factory):
    from rlreason.batch import RewardOutput

    batch = batch_factory([2, 3, 1, 3], [0, 0, 1, 1])
    algo = GRPO(scale_rewards="none")
    adv = algo.advantages(batch, RewardOutput(rewards=torch.tensor([1.0, 0.0, 1.0, 1.0])))
    expected = torch.tensor([[0.5, 0.5, 0], [-0.5, -0.5, -0.5], [0, 0, 0], [0, 0, 0]])
    torch.testing.assert_close(adv.tokens, expected)  # A_i on the response tokens, zero on padding
    assert adv.metrics["zero_std_frac"] == pytest.approx(0.5)  # group 1: rewards 1, 1


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"scale_rewards": "rank"}, "scale_rewards"),
        ({"eps_low": -0.1}, "eps_low"),
        ({"eps_low": 1.0}, "eps_low"),
        ({"beta": -1.0}, "beta"),
        ({"num_iterations": 0}, "num_iterations"),
        ({"num_iterations": 1.5}, "num_iterations"),
    ],
)
def test_grpo_parameter_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        GRPO(**kw)
