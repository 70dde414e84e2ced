"""The no-grad forward passes of an RL step over the rollout batch, micro-batch by micro-batch:
log-probabilities under a frozen reference, and the critic's values at rollout time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from rlreason.batch import RolloutBatch
from rlreason.train.distinct_rows import distinct_logprobs
from rlreason.train.forward import TokenOutputs, response_logprobs


def micro_slices(n: int, size: int) -> list[slice]:
    """[0, n) in consecutive slices of `size` (0: one slice)."""
    size = size or n
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _micro_outputs(
    model: torch.nn.Module,
    batch: RolloutBatch,
    micro_batch_size: int,
    device: torch.device,
    distinct: bool = False,
    **kwargs: Any,
) -> Iterator[TokenOutputs]:
    """`response_logprobs` of the batch, one micro-batch at a time (`distinct`: once per distinct row)."""
    forward = distinct_logprobs if distinct else response_logprobs
    for sl in micro_slices(batch.num_samples, micro_batch_size):
        yield forward(
            model,
            batch.prompt_ids[sl].to(device),
            batch.prompt_mask[sl].to(device),
            batch.response_ids[sl].to(device),
            batch.response_mask[sl].to(device),
            **kwargs,
        )


@torch.no_grad()
def sequence_logprobs(
    model: torch.nn.Module,
    batch: RolloutBatch,
    *,
    micro_batch_size: int,
    temperature: float,
    chunk_size: int,
    device: torch.device,
    distinct: bool = False,
) -> torch.Tensor:
    """[N, T] log-probabilities of the sampled responses under `model` (on the CPU)."""
    outs = _micro_outputs(
        model, batch, micro_batch_size, device, distinct, temperature=temperature, chunk_size=chunk_size
    )
    return torch.cat([o.logprobs.cpu() for o in outs])


@torch.no_grad()
def critic_values(
    policy: torch.nn.Module,
    value_head: torch.nn.Module,
    batch: RolloutBatch,
    micro_batch_size: int,
    chunk_size: int,
    device: torch.device,
    distinct: bool = False,
) -> torch.Tensor:
    """[N, T] critic values at rollout time (GAE's V_t and the value clip's V_old), zero off the mask."""
    outs = _micro_outputs(policy, batch, micro_batch_size, device, distinct, with_hidden=True, chunk_size=chunk_size)
    return torch.cat([value_head(o.hidden).squeeze(-1).float().cpu() for o in outs]) * batch.response_mask
