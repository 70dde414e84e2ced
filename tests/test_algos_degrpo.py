"""DeGRPO: the decoupled control term, the KL outside it, the official (verl) aggregation, micro-batches."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.algos.base import LossInputs
from rlreason.algos.degrpo import DeGRPO
from rlreason.algos.grpo import GRPO


def test_kl_is_not_decoupled_from_the_control_token():
    # zero advantages, on-policy: only the KL remains; ref = logp + ln2 -> k3 = 2 - ln2 - 1 on every token
    lp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    inp = LossInputs(
        logprobs=lp,
        mask=mask,
        old_logprobs=lp,
        ref_logprobs=lp + math.log(2.0),
        advantages=torch.zeros(2, 3),
        control_pos=torch.tensor([0, 0]),
        num_seqs=2.0,
        num_tokens=5.0,
        num_control=2.0,
    )
    k3 = 1 - math.log(2.0)
    for normalization in ("paper", "official"):
        loss, m = DeGRPO(alpha=0.1, beta=0.5, normalization=normalization).loss(inp)
        assert float(loss) == pytest.approx(0.5 * k3, rel=1e-6)  # alpha plays no part
        assert float(m["kl"]) == pytest.approx(k3, rel=1e-6)


def verl_reference(lp, old, adv, mask, ref, alpha, beta, clip=0.2):
    """verl/Thinkless `compute_policy_loss` + the actor's kl loss, transcribed for one micro-batch."""
    ratio = torch.exp(lp - old)
    token_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip))
    cond, resp = mask.clone(), mask.clone()
    cond[:, 1:] = 0
    resp[:, 0] = 0
    pg = alpha * (token_loss * cond).sum() / cond.sum() + (token_loss * resp).sum() / resp.sum()
    kl = ref - lp
    return pg + beta * ((torch.exp(kl) - kl - 1) * mask).sum() / mask.sum()


def test_official_normalisation_equals_the_released_code_on_one_micro_batch():
    torch.manual_seed(1)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])
    lp, old, ref = (torch.randn(3, 4) * 0.3 for _ in range(3))
    adv = torch.tensor([[1.0], [-2.0], [0.5]]).expand(3, 4)
    inp = LossInputs(
        logprobs=lp,
        mask=mask,
        old_logprobs=old,
        ref_logprobs=ref,
        advantages=adv,
        control_pos=torch.zeros(3, dtype=torch.long),
        num_seqs=3.0,
        num_tokens=9.0,
        num_control=3.0,
    )
    loss, _ = DeGRPO(alpha=0.3, beta=0.2, normalization="official").loss(inp)
    torch.testing.assert_close(loss, verl_reference(lp, old, adv, mask, ref, 0.3, 0.2))


def test_control_token_found_by_position_not_assumed_first():
    # sample 0's control token sits at index 1 (a template put a newline first); sample 1 has none
    lp = torch.zeros(2, 3, requires_grad=True)
    inp = LossInputs(
        logprobs=lp,
        mask=torch.tensor([[1.0, 1, 1], [1, 1, 0]]),
        old_logprobs=torch.zeros(2, 3),
        advantages=torch.tensor([[1.0] * 3, [-1.0] * 3]),
        control_pos=torch.tensor([1, -1]),
        num_seqs=2.0,
        num_tokens=5.0,
        num_control=1.0,
    )
    loss, m = DeGRPO(alpha=0.1, beta=0.0).loss(inp)
    (grad,) = torch.autograd.grad(loss, lp)
    # d l / d logp = -A at ratio 1; paper: sample 0: control alpha / N = -.1 / 2, the 2 others -(1/2) / 2;
    # sample 1: no control term, its 2 tokens +(1/2) / 2
    torch.testing.assert_close(grad, torch.tensor([[-0.25, -0.05, -0.25], [0.25, 0.25, 0.0]]))
    assert float(m["control_loss"]) == pytest.approx(-1.0)  # l_{0,ctrl} = -A = -1 over 1 control token


@pytest.mark.parametrize("normalization", ["paper", "official"])
def test_micro_batches_sum_to_the_full_batch_gradient(normalization):
    torch.manual_seed(0)
    w = torch.randn(4, 5, requires_grad=True)
    feats = torch.randn(4, 5)
    mask = torch.tensor([[1.0, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    adv = torch.randn(4, 1).expand(4, 5).clone()
    control_pos = torch.tensor([0, 1, -1, 0])
    ref = torch.randn(4, 5) * 0.1 - 1.0
    norms = {"num_seqs": 4.0, "num_tokens": float(mask.sum()), "num_control": 3.0, "max_new_tokens": 5}
    algo = DeGRPO(alpha=0.2, beta=0.1, normalization=normalization, entropy_coef=0.01)

    def loss_of(rows):
        lp = (w[rows] * feats[rows]).tanh() - 1.0
        inp = LossInputs(
            logprobs=lp,
            mask=mask[rows],
            old_logprobs=lp.detach() - 0.15,
            ref_logprobs=ref[rows],
            advantages=adv[rows],
            entropy=-lp,
            control_pos=control_pos[rows],
            **norms,
        )
        return algo.loss(inp)[0]

    full = torch.autograd.grad(loss_of(torch.arange(4)), w)[0]
    parts = sum(torch.autograd.grad(loss_of(torch.tensor(r)), w)[0] for r in ([0, 2], [1, 3]))
    torch.testing.assert_close(full, parts)
    assert full.abs().sum() > 0


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="alpha"):
        DeGRPO(alpha=-1.0)
    with pytest.raises(ValueError, match="scale_rewards"):
        DeGRPO(scale_rewards="rank")
    with pytest.raises(ValueError, match="normalization"):
        DeGRPO(normalization="both")


def test_both_normalisations_by_hand():
    # sample 0: control token at 0 then 2 response tokens, A = +1; sample 1: no control token, 2 tokens, A = -1
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([[1.0] * 3, [-1.0] * 3])
    lp = torch.zeros(2, 3)
    inp = LossInputs(
        logprobs=lp,
        mask=mask,
        old_logprobs=lp.clone(),
        advantages=adv,
        control_pos=torch.tensor([0, -1]),
        num_seqs=2.0,
        num_tokens=5.0,
        num_control=1.0,
    )
    paper, _ = DeGRPO(alpha=0.1, beta=0.0, normalization="paper").loss(inp)
    # sample 0: 0.1 * (-1) + (-1 - 1) / 2 = -1.1 ; sample 1: (1 + 1) / 2 = 1 ; mean = -0.05
    assert float(paper) == pytest.approx(-0.05)
    official, _ = DeGRPO(alpha=0.1, beta=0.0, normalization="official").loss(inp)
    # control: 0.1 * (-1) / 1 ; response: (-2 + 2) / (5 - 1) = 0
    assert float(official) == pytest.approx(-0.1)


def test_control_term_only_touches_the_control_position():
    lp = torch.zeros(1, 4, requires_grad=True)
    mask = torch.ones(1, 4)
    inp = LossInputs(
        logprobs=lp,
        mask=mask,
        old_logprobs=torch.zeros(1, 4),
        advantages=torch.ones(1, 4),
        control_pos=torch.tensor([1]),
        num_seqs=1.0,
        num_tokens=4.0,
        num_control=1.0,
    )
    loss, _ = DeGRPO(alpha=0.5, beta=0.0).loss(inp)
    (grad,) = torch.autograd.grad(loss, lp)
    # d/dlp of -ratio * A at ratio 1 is -1: control gets alpha, the 3 others 1/3 each
    torch.testing.assert_close(grad, torch.tensor([[-1 / 3, -0.5, -1 / 3, -1 / 3]]))


def test_advantages_are_group_mean_centred_without_std(batch_factory):
    from rlreason.batch import RewardOutput

    batch = batch_factory([2, 1, 2], [0, 0, 0])
    # thinkless rewards: correct <short> 1, correct <think> 0.5, format failure -1; mean 1/6
    adv = DeGRPO().advantages(batch, RewardOutput(rewards=torch.tensor([1.0, 0.5, -1.0])))
    expected = torch.tensor([[5 / 6, 5 / 6], [1 / 3, 0.0], [-7 / 6, -7 / 6]])
    torch.testing.assert_close(adv.tokens, expected)


def test_num_control_counts_only_control_tokens_the_loss_sees(batch_factory):
    from rlreason.algos.degrpo import control_tokens_in_mask

    control_pos = torch.tensor([0, 1, -1, 0])
    mask = torch.ones(4, 3)
    mask[3] = 0.0  # a truncated sample removed by mask_truncated_completions
    assert control_tokens_in_mask(control_pos, mask, torch.arange(4)) == 2.0
    assert control_tokens_in_mask(control_pos, mask, torch.tensor([1, 2])) == 1.0
    assert control_tokens_in_mask(None, mask, torch.arange(4)) == 0.0
    # DeGRPO supplies it as its own minibatch normaliser; GRPO asks for none
    batch = batch_factory([3, 3, 3, 3], [0, 0, 1, 1])
    batch.control_pos = control_pos
    assert DeGRPO().minibatch_normalisers(batch, mask, torch.arange(4)) == {"num_control": 2.0}
    assert GRPO().minibatch_normalisers(batch, mask, torch.arange(4)) == {}


def _two_samples(n_rows: slice = slice(None)) -> LossInputs:
    """Lengths 4 and 2 (control token first), on-policy, A = +1 and -2: l_{i,t} = -A_i on every token."""
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])[n_rows]
    lp = torch.zeros_like(mask, requires_grad=True)
    return LossInputs(
        logprobs=lp,
        mask=mask,
        old_logprobs=torch.zeros_like(mask),
        advantages=torch.tensor([[1.0] * 4, [-2.0] * 4])[n_rows],
        control_pos=torch.zeros(mask.shape[0], dtype=torch.long),
        num_seqs=2.0,  # minibatch normalisers: both samples, whichever micro-batch this is
        num_tokens=6.0,
        num_control=2.0,
    )


def test_alpha_per_token_is_alpha_over_the_mean_response_length_hand_computed():
    # mean response length 6 / 2 = 3, alpha_per_token 0.6 -> alpha 0.2
    # paper:    [(0.2 * -1 + mean(-1,-1,-1)) + (0.2 * 2 + mean(2))] / 2      = (-1.2 + 2.4) / 2 = 0.6
    # official: 0.2 * (-1 + 2) / 2 + (3 * -1 + 1 * 2) / (6 - 2)               = 0.1 - 0.25     = -0.15
    for normalization, expected in (("paper", 0.6), ("official", -0.15)):
        inp = _two_samples()
        loss, metrics = DeGRPO(alpha_per_token=0.6, beta=0.0, normalization=normalization).loss(inp)
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
        assert float(metrics["alpha_effective"]) == pytest.approx(0.2, rel=1e-6)
        fixed, _ = DeGRPO(alpha=0.2, beta=0.0, normalization=normalization).loss(_two_samples())
        assert float(loss.detach()) == pytest.approx(float(fixed.detach()), rel=1e-6)
        loss.backward()
        # the control token of sample 0 gets alpha * dl/dlogp / N_(seqs|control) = 0.2 * -1 / 2
        assert float(inp.logprobs.grad[0, 0]) == pytest.approx(-0.1, rel=1e-6)


def test_alpha_per_token_scales_with_length_and_is_micro_batch_invariant():
    # doubling every response length halves alpha: the control token keeps its weight per response token
    short = _two_samples()
    long = _two_samples()
    long.num_tokens = 12.0
    algo = DeGRPO(alpha_per_token=0.6, beta=0.0)
    assert algo.effective_alpha(long) == pytest.approx(algo.effective_alpha(short) / 2)
    # two micro-batches of one sample each, with the minibatch's normalisers: same loss and same logged alpha
    whole, m_whole = algo.loss(_two_samples())
    parts = [algo.loss(_two_samples(slice(i, i + 1))) for i in range(2)]
    assert float(sum(p[0].detach() for p in parts)) == pytest.approx(float(whole.detach()), rel=1e-6)
    assert float(sum(p[1]["alpha_effective"] for p in parts)) == pytest.approx(float(m_whole["alpha_effective"]))


def test_alpha_per_token_refuses_a_second_alpha():
    for alpha in (0.1, 1e-3):  # also the paper's value written out: the two would disagree silently
        with pytest.raises(ValueError, match="alpha_per_token"):
            DeGRPO(alpha=alpha, alpha_per_token=1.0)
    assert DeGRPO().alpha == 1e-3 and DeGRPO(alpha=0.5).alpha == 0.5
    with pytest.raises(ValueError, match="alpha_per_token"):
        DeGRPO(alpha_per_token=-1.0)
