"""What every policy algorithm implements, and the shared pieces of the PPO family.

An algorithm turns rewards into token advantages (`advantages`) and, for each minibatch, token
log-probabilities into a scalar loss (`loss`). It never knows which reward produced the numbers.

Normalisers in `LossInputs` are *global* for the minibatch (summed over micro-batches and, under
DDP, over ranks, then divided by the world size) so that accumulating micro-batch gradients and
averaging across ranks reproduces exactly the loss of one big batch.

Every algorithm's equation, options and deviations: docs/algorithms.md#algorithm-interface
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from rlreason.batch import RewardOutput, RolloutBatch


@dataclass
class LossInputs:
    """One micro-batch of n samples and the normalisers of the minibatch it belongs to."""

    logprobs: torch.Tensor  # [n, T] log pi_theta(o_t), with grad
    mask: torch.Tensor  # [n, T] float response mask (after mask_truncated_completions)
    old_logprobs: torch.Tensor | None = None  # [n, T] pi_old, no grad
    ref_logprobs: torch.Tensor | None = None  # [n, T] frozen reference, no grad
    advantages: torch.Tensor | None = None  # [n, T]
    entropy: torch.Tensor | None = None  # [n, T] policy entropy (with grad when the algo asks)
    values: torch.Tensor | None = None  # [n, T] value-head output (critic algorithms)
    returns: torch.Tensor | None = None  # [n, T] value targets (critic algorithms)
    old_values: torch.Tensor | None = None  # [n, T] values at rollout time (value clipping)
    control_pos: torch.Tensor | None = None  # [n] long, -1 where the sample has no control token
    # normalisers (already made DDP/micro-batch consistent by the training loop)
    num_seqs: float = 1.0  # sequences in the minibatch
    num_tokens: float = 1.0  # active tokens in the minibatch
    num_tokens_batch: float = 1.0  # active tokens in the whole rollout batch
    num_control: float = 0.0  # control tokens the minibatch's loss sees (DeGRPO's `minibatch_normalisers`)
    max_new_tokens: int = 1


@dataclass
class Advantages:
    """What `Algorithm.advantages` computed for one rollout batch: the token advantages and every
    by-product the update or the logs need, returned rather than left on the algorithm or the batch."""

    tokens: torch.Tensor  # [N, T] token advantages, zero outside the response mask
    metrics: dict[str, float] = field(default_factory=dict)  # advantage-time metrics, logged under algo/
    returns: torch.Tensor | None = None  # [N, T] value targets (critic algorithms)
    keep: torch.Tensor | None = None  # [N] float: 0 for samples dynamic sampling dropped (they train nothing)


class Algorithm:
    """Base class for registered algorithms (`ALGOS`)."""

    needs_rollout: ClassVar[bool] = True  # False for supervised algorithms (SFT)
    needs_entropy_grad: ClassVar[bool] = False
    needs_values: ClassVar[bool] = False
    min_group_size: ClassVar[int] = 2
    beta: float = 0.0  # KL coefficient; 0 means no reference model is loaded
    num_iterations: int = 1
    mask_truncated_completions: bool = False

    def advantages(
        self, batch: RolloutBatch, reward: RewardOutput, values: torch.Tensor | None = None
    ) -> Advantages:
        """Token advantages [N, T] (zero outside the response mask) and their by-products.

        `values` [N, T] are the critic's values at rollout time (`needs_values` algorithms only)."""
        raise NotImplementedError

    def minibatch_normalisers(self, batch: RolloutBatch, mask: torch.Tensor, rows: torch.Tensor) -> dict[str, float]:
        """This process's share of algorithm-specific loss normalisers for the minibatch `rows`
        (under `mask`, the loss mask); the loop sums them over ranks like `num_tokens`. None by default."""
        return {}

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss for the micro-batch and detached metrics (summed contributions, see below).

        Metrics are detached tensors written with the minibatch normalisers, so the loop sums them
        over a step's micro-batches (and averages over optimiser steps).
        """
        raise NotImplementedError

    def value_head(self, hidden_size: int) -> torch.nn.Module | None:
        """A trainable module the loop attaches to the policy (critic algorithms only)."""
        return None


# -- shared maths -------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO loss l = -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) and the clip indicator."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    is_clipped = (clipped < unclipped).float()
    return loss, is_clipped


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 >= 0."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1.0


def group_stats(values: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean and (unbiased, as torch.std) standard deviation of its group."""
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    g = uniq.numel()
    ones = torch.ones_like(values)
    count = torch.zeros(g, dtype=values.dtype).index_add_(0, inv, ones)
    mean = torch.zeros(g, dtype=values.dtype).index_add_(0, inv, values) / count
    sq = torch.zeros(g, dtype=values.dtype).index_add_(0, inv, (values - mean[inv]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    return mean[inv], std[inv]
