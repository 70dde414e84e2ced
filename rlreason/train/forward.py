"""Token log-probabilities (and entropy, hidden states) of responses under a causal LM, and the
passes of an RL step built on them: once per distinct row (`distinct_logprobs`), and the no-grad
passes over the rollout batch (reference log-probs, critic values).

Memory: the unchunked path materialises fp32 logits [n, T, V] (4 x 24.6k x 151,936 fp32 is about
60 GB) plus their log-softmax for the backward. With `chunk_size` > 0 the decoder runs once and the
output head, log-softmax, gather and entropy run over `chunk_size` response positions at a time
under activation checkpointing, so at most one chunk's logits exist at once, in the forward and in
the backward (which recomputes that chunk's logits from the saved hidden states). The result equals
the unchunked path up to float rounding of the smaller matmuls (tests/test_chunked_logprobs.py);
`chunk_size = 0` runs the head once over every position.

Dedup (`optim.dedup_sequences`): a sharp policy samples the same response several times for a
prompt (at the start of the lab GRPO run 42-46 % of the 128 samples of a step are distinct);
`distinct_logprobs` runs the model on one row per distinct (prompt, response) and indexes the
result back to every row. The loss still sees every sample, and the backward of the indexing sums
the copies' gradients into their row: the same gradient with the sums grouped differently (float
rounding), which is why it is an option. With no copies in a micro-batch the plain pass runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from rlreason.batch import RolloutBatch, distinct_rows
from rlreason.policy.decoder import decoder_of
from rlreason.train.micro_batches import micro_slices


@dataclass
class TokenOutputs:
    logprobs: torch.Tensor  # [n, T]
    entropy: torch.Tensor | None = None  # [n, T]
    hidden: torch.Tensor | None = None  # [n, T, H] last hidden state at the positions predicting o_t


def response_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    with_hidden: bool = False,
    chunk_size: int = 0,
) -> TokenOutputs:
    """log softmax(logits / temperature)[o_t] for every response position.

    Prompts are left-padded and responses right-padded, so position ids come from the attention
    mask. Only the logits that predict response tokens are materialised (`logits_to_keep`), and
    with `chunk_size` > 0 only that many positions of them at a time (module docstring).
    """
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    mask = torch.cat([prompt_mask, response_mask], dim=1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    t = response_ids.shape[1]
    if chunk_size > 0:
        return _chunked(
            model, input_ids, mask, position_ids, response_ids, temperature, with_entropy, entropy_grad, chunk_size
        )
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=False,
        logits_to_keep=t + 1,
        output_hidden_states=with_hidden,
    )
    logits = out.logits[:, :-1, :].float()
    if temperature != 1.0 and temperature > 0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)
    logprobs = logits.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1) - logz
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            logp = logits - logz.unsqueeze(-1)
            entropy = -(logp.exp() * logp).sum(-1)
    hidden = None
    if with_hidden:
        hidden = out.hidden_states[-1][:, -t - 1 : -1, :]
    return TokenOutputs(logprobs=logprobs, entropy=entropy, hidden=hidden)


def head_logprobs(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs of `targets`, entropy) from hidden states [n, c, H] through the output head, in fp32."""
    logits = head(hidden).float()
    if temperature != 1.0 and temperature > 0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)
    logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    if not with_entropy:
        return logprobs, torch.zeros_like(logprobs)
    logp = logits - logz.unsqueeze(-1)
    return logprobs, -(logp.exp() * logp).sum(-1)


def _chunked(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    position_ids: torch.Tensor,
    response_ids: torch.Tensor,
    temperature: float,
    with_entropy: bool,
    entropy_grad: bool,
    chunk_size: int,
) -> TokenOutputs:
    t = response_ids.shape[1]
    body = decoder_of(model)
    head = model.get_output_embeddings()
    states = body(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
    hidden = states.last_hidden_state[:, -t - 1 : -1, :]
    grad = torch.is_grad_enabled()
    logprobs, entropies = [], []
    for a in range(0, t, chunk_size):
        h, y = hidden[:, a : a + chunk_size], response_ids[:, a : a + chunk_size]
        if grad:  # keep only the chunk's hidden states; its logits are recomputed in the backward
            lp, ent = checkpoint(head_logprobs, head, h, y, temperature, with_entropy, use_reentrant=False)
        else:
            lp, ent = head_logprobs(head, h, y, temperature, with_entropy)
        logprobs.append(lp)
        entropies.append(ent if entropy_grad else ent.detach())
    entropy = torch.cat(entropies, dim=1) if with_entropy else None
    return TokenOutputs(logprobs=torch.cat(logprobs, dim=1), entropy=entropy, hidden=hidden)


def distinct_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    **kwargs: Any,
) -> TokenOutputs:
    """`response_logprobs` computed on the distinct rows only and indexed back to every row."""
    found = distinct_rows(prompt_ids, prompt_mask, response_ids, response_mask)
    if found is None:
        return response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask, **kwargs)
    reps, owner = found
    out = response_logprobs(
        model, prompt_ids[reps], prompt_mask[reps], response_ids[reps], response_mask[reps], **kwargs
    )

    def back(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[owner]

    return TokenOutputs(logprobs=out.logprobs[owner], entropy=back(out.entropy), hidden=back(out.hidden))


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
