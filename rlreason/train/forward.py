"""Token log-probabilities (and entropy, hidden states) of responses under a causal LM.

Memory: the unchunked path materialises fp32 logits [n, T, V] (4 x 24.6k x 151,936 fp32 is about
60 GB) plus their log-softmax for the backward. With `chunk_size` > 0 the decoder runs once and the
output head, log-softmax, gather and entropy run over `chunk_size` response positions at a time
under activation checkpointing, so at most one chunk's logits exist at once, in the forward and in
the backward (which recomputes that chunk's logits from the saved hidden states). The result equals
the unchunked path up to float rounding of the smaller matmuls (tests/test_chunked_logprobs.py);
`chunk_size = 0` runs the head once over every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from rlreason.policy.decoder import decoder_of


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
