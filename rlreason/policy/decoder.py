"""The transformer body of a Hugging Face causal LM, found from the model's own structure."""

from __future__ import annotations

import torch


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body of a Hugging Face causal LM (its output is the normed last hidden state)."""
    get = getattr(model, "get_decoder", None)
    body = get() if callable(get) else None
    if body is None or body is model:
        body = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    if body is None or body is model:
        raise ValueError(f"model.logit_chunk_size: cannot find the decoder of {type(model).__name__}; set it to 0")
    return body
