"""Token log-probabilities (and entropy, hidden states) of responses under a causal LM."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
) -> TokenOutputs:
    """log softmax(logits / temperature)[o_t] for every response position.

    Prompts are left-padded and responses right-padded, so position ids come from the attention
    mask. Only the logits that predict response tokens are materialised (`logits_to_keep`).
    """
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    mask = torch.cat([prompt_mask, response_mask], dim=1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    t = response_ids.shape[1]
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
