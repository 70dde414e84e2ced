"""Control tokens: `<short>`, `<think>`, `</think>` as single token ids.

Two ways to give a model its control tokens:

- ``add``: new special tokens, embedding matrix resized; new rows start at the mean of the existing
  embeddings (a neutral start that does not favour either mode).
- ``map``: reuse tokens the vocabulary already has (reserved / unused ones), as the released
  Thinkless checkpoint does. Text is always written with the canonical strings; `render` turns
  them into the mapped token text before tokenising and `canonicalize` turns decoded text back.

Either way each control token must be exactly one id: the DeGRPO loss finds the control token by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlreason.errors import ConfigError

CANONICAL = ("<short>", "<think>", "</think>")


@dataclass
class ControlTokens:
    ids: dict[str, int]  # canonical string -> token id
    texts: dict[str, str] = field(default_factory=dict)  # canonical string -> token text in the vocabulary

    @property
    def short_id(self) -> int:
        return self.ids["<short>"]

    @property
    def think_id(self) -> int:
        return self.ids["<think>"]

    @property
    def think_end_id(self) -> int:
        return self.ids["</think>"]

    def render(self, text: str) -> str:
        """Canonical control strings -> the token text the tokenizer knows."""
        for canon, actual in self.texts.items():
            if canon != actual:
                text = text.replace(canon, actual)
        return text

    def canonicalize(self, text: str) -> str:
        """Decoded text -> canonical control strings (inverse of `render`)."""
        for canon, actual in self.texts.items():
            if canon != actual:
                text = text.replace(actual, canon)
        return text


def setup_control_tokens(
    model: torch.nn.Module, tokenizer: Any, mode: str = "add", mapping: dict[str, str] | None = None
) -> ControlTokens:
    """Make `<short>`, `<think>`, `</think>` single tokens of `tokenizer` (idempotent)."""
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(CANONICAL)
    if unknown:
        raise ConfigError(
            f"model.control_token_map: unknown control token {sorted(unknown)[0]!r} (valid: {', '.join(CANONICAL)})"
        )
    texts = {c: (mapping.get(c, c) if mode == "map" else c) for c in CANONICAL}
    vocab = tokenizer.get_vocab()
    if mode == "map":
        for canon, actual in texts.items():
            if actual not in vocab and canon in mapping:
                raise ConfigError(f"model.control_token_map.{canon}: token {actual!r} is not in the vocabulary")
    missing = [t for t in texts.values() if t not in vocab]
    if missing:
        if mode == "map":
            # unmapped control tokens in map mode are added like in add mode
            pass
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        old = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > old:
            with torch.no_grad():
                mean = model.get_input_embeddings().weight.mean(0, keepdim=True)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            with torch.no_grad():
                model.get_input_embeddings().weight[old:] = mean
                out = model.get_output_embeddings()
                if out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
                    out.weight[old:] = out.weight[:old].mean(0, keepdim=True)
    ids = {}
    for canon, actual in texts.items():
        enc = tokenizer(actual, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ConfigError(f"model.control_tokens: {canon!r} (as {actual!r}) is {len(enc)} tokens; it must be one")
        ids[canon] = enc[0]
    return ControlTokens(ids=ids, texts=texts)
