"""How a minibatch is cut into micro-batches for the update's forward and backward passes.

Default (`optim.micro_batch_tokens: 0`): consecutive slices of `optim.micro_batch_size` samples
(0: the whole minibatch), every one padded to the rollout batch's longest prompt and response.
With `optim.micro_batch_tokens: B > 0` (verl's dynamic batch size, `ppo_max_token_len_per_gpu`):
the minibatch's samples sorted by length are packed greedily into micro-batches of at most B padded
tokens each, and every micro-batch is cut to its own longest prompt and response, so a batch mixing
5-token `<short>` and 30-token `<think>` answers stops paying for padding. The loss normalisers are
global over the minibatch either way, so the gradient is the same up to float rounding (the sums are
grouped differently): an option, not the default.
"""

from __future__ import annotations

import torch

from rlreason.batch import RolloutBatch


def micro_slices(n: int, size: int) -> list[slice]:
    """[0, n) in consecutive slices of `size` (0: one slice)."""
    size = size or n
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def micro_batches(batch: RolloutBatch, rows: torch.Tensor, size: int, tokens: int) -> list[torch.Tensor]:
    """The sample indices of each micro-batch of the minibatch `rows`."""
    if tokens <= 0:
        return [rows[micro] for micro in micro_slices(len(rows), size)]
    prompt_len = batch.prompt_mask[rows].sum(-1)
    response_len = batch.response_mask[rows].sum(-1)
    order = torch.argsort(prompt_len + response_len, stable=True)
    out: list[torch.Tensor] = []
    current: list[int] = []
    widest_prompt = widest_response = 0
    for i in order.tolist():
        p, r = max(widest_prompt, int(prompt_len[i])), max(widest_response, int(response_len[i]))
        if current and (len(current) + 1) * (p + r) > tokens:
            out.append(rows[torch.tensor(current)])
            current, p, r = [], int(prompt_len[i]), int(response_len[i])
        current.append(i)
        widest_prompt, widest_response = p, r
    if current:
        out.append(rows[torch.tensor(current)])
    return out


def micro_columns(batch: RolloutBatch, sub: torch.Tensor, trim: bool) -> tuple[slice, slice]:
    """(prompt columns, response columns) the micro-batch `sub` needs: all of them, or with `trim` only
    up to its own longest prompt (prompts are left-padded) and response (right-padded)."""
    if not trim:
        return slice(None), slice(None)
    width = batch.prompt_ids.shape[1]
    longest_prompt = int(batch.prompt_mask[sub].sum(-1).max())
    longest_response = max(1, int(batch.response_mask[sub].sum(-1).max()))
    return slice(width - longest_prompt, width), slice(0, longest_response)
