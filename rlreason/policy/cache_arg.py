"""The name of the forward argument that takes a KV cache object, across transformers 5.x versions."""

from __future__ import annotations

import inspect

import torch


def cache_kwarg(model: torch.nn.Module) -> str:
    """`cache` (transformers >= 5.x, where `past_key_values` is deprecated, to be removed in 5.40) or
    `past_key_values` (older 5.x), for a causal LM, its decoder body or a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT forwards **kwargs
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
