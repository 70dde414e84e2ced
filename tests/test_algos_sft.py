"""SFT: the response-only next-token loss by hand, both normalisations, micro-batch invariance."""

from __future__ import annotations

import math

import pytest
import torch

from rlreason.algos.base import LossInputs
from rlreason.algos.sft import SFT
from rlreason.errors import RegistryError
from rlreason.registry import ALGOS

# sample 0: two response tokens with p = 1/2, 1/4; sample 1: one token with p = 1/8, then padding
LP = torch.log(torch.tensor([[0.5, 0.25], [0.125, 1.0]]))
MASK = torch.tensor([[1.0, 1.0], [1.0, 0.0]])


def test_token_mean_by_hand():
    loss, m = SFT().loss(LossInputs(logprobs=LP, mask=MASK, num_tokens=3.0, num_seqs=2.0))
    # (ln 2 + ln 4 + ln 8) / 3 = 6 ln 2 / 3 = 2 ln 2; the padded p = 1 token does not count
    assert float(loss) == pytest.approx(2 * math.log(2))
    assert float(m["nll"]) == pytest.approx(2 * math.log(2))
    assert float(m["token_acc"]) == pytest.approx(0.0)  # no token has p > 1/2


def test_sequence_mean_by_hand():
    loss, _ = SFT(normalization="sequence").loss(LossInputs(logprobs=LP, mask=MASK, num_tokens=3.0, num_seqs=2.0))
    # sample 0: (ln 2 + ln 4) / 2 = 1.5 ln 2; sample 1: ln 8 = 3 ln 2; mean 2.25 ln 2
    assert float(loss) == pytest.approx(2.25 * math.log(2))


def test_padding_positions_get_no_gradient():
    lp = LP.clone().requires_grad_(True)
    loss, _ = SFT().loss(LossInputs(logprobs=lp, mask=MASK, num_tokens=3.0, num_seqs=2.0))
    (grad,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(grad, torch.tensor([[-1 / 3, -1 / 3], [-1 / 3, 0.0]]))


@pytest.mark.parametrize("normalization", ["token", "sequence"])
def test_micro_batches_sum_to_the_full_batch_gradient(normalization):
    torch.manual_seed(0)
    w = torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    algo = SFT(normalization=normalization)

    def loss_of(rows):
        lp = torch.nn.functional.logsigmoid(w[rows])
        return algo.loss(LossInputs(logprobs=lp, mask=mask[rows], num_tokens=7.0, num_seqs=3.0))[0]

    full = torch.autograd.grad(loss_of(torch.arange(3)), w)[0]
    parts = sum(torch.autograd.grad(loss_of(torch.tensor(r)), w)[0] for r in ([0], [1, 2]))
    torch.testing.assert_close(full, parts)


def test_registry_build_and_bad_normalisation():
    algo = ALGOS.build({"name": "sft", "normalization": "sequence"})
    assert isinstance(algo, SFT) and not algo.needs_rollout and algo.min_group_size == 1
    with pytest.raises(ValueError, match="normalization"):
        SFT(normalization="batch")
    with pytest.raises(RegistryError, match="normalization: expected 'token' or 'sequence'"):
        ALGOS.build({"name": "sft", "normalization": "batch"}, where="algo")
