"""Control tokens: `<short>`, `<think>`, `</think>` as single token ids.

Two ways to give a model its control tokens:

- ``add``: new special tokens, embedding matrix resized; new rows start at the mean of the existing
  embeddings (a neutral start that does not favour either mode).
  A new id can sit below the embedding size: Qwen2's embeddings are padded (R1-Distill-Qwen-1.5B:
  151,665 tokens, 151,936 rows), so `<short>` gets id 151,665 without any resize, on a row that
  was never trained; it is mean-initialised all the same.
- ``map``: reuse tokens the vocabulary already has (reserved / unused ones), as the released
  Thinkless checkpoint does. A mapping value is the token's text or its id: ``{"<short>": 151650}``
  resolves on R1-Distill (where 151650 is ``<|quad_start|>``) and on the Thinkless warm-up (where it
  was renamed ``<short>``) alike. Text is always written with the canonical strings; `render` turns
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

    def describe(self) -> str:
        """One line for the start-up log: `<short>=151650 <think>=151648 </think>=151649`, with the
        vocabulary's text where it differs from the canonical string."""
        parts = []
        for canon, i in self.ids.items():
            actual = self.texts.get(canon, canon)
            parts.append(f"{canon}={i}" + (f" ({actual})" if actual != canon else ""))
        return " ".join(parts)

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
    model: torch.nn.Module, tokenizer: Any, mode: str = "add", mapping: dict[str, str | int] | None = None
) -> ControlTokens:
    """Make `<short>`, `<think>`, `</think>` single tokens of `tokenizer` (idempotent)."""
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(CANONICAL)
    if unknown:
        raise ConfigError(
            f"model.control_token_map: unknown control token {sorted(unknown)[0]!r} (valid: {', '.join(CANONICAL)})"
        )
    vocab = tokenizer.get_vocab()
    texts = {
        c: (_mapped_text(tokenizer, vocab, c, mapping[c]) if mode == "map" and c in mapping else c) for c in CANONICAL
    }
    missing = [t for t in texts.values() if t not in vocab]
    if missing:  # add mode, and unmapped control tokens in map mode
        _add_tokens(model, tokenizer, missing)
    ids = {}
    for canon, actual in texts.items():
        enc = tokenizer(actual, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ConfigError(f"model.control_tokens: {canon!r} (as {actual!r}) is {len(enc)} tokens; it must be one")
        ids[canon] = enc[0]
    return ControlTokens(ids=ids, texts=texts)


def _mapped_text(tokenizer: Any, vocab: dict[str, int], canon: str, target: str | int) -> str:
    """The vocabulary text a `control_token_map` value names (a token string, or an id as int or digits)."""
    key = f"model.control_token_map.{canon}"
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit() and target not in vocab):
        tid = int(target)
        text = tokenizer.convert_ids_to_tokens(tid) if 0 <= tid < len(tokenizer) else None
        if not text:
            raise ConfigError(f"{key}: id {tid} is not a token of the vocabulary (size {len(tokenizer)})")
        return text
    if target not in vocab:
        raise ConfigError(f"{key}: token {target!r} is not in the vocabulary")
    return str(target)


def _add_tokens(model: torch.nn.Module, tokenizer: Any, tokens: list[str]) -> None:
    """Add `tokens` as special tokens; every new row (input and output embeddings) starts at the mean
    of the rows of the tokens the vocabulary had, whether or not the matrix had to grow. The mean
    is over the rows below min(old vocabulary size, old rows): padding rows were never trained."""
    before = len(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": tokens}, replace_extra_special_tokens=False)
    new_ids = sorted(tokenizer.convert_tokens_to_ids(t) for t in tokens)
    emb = model.get_input_embeddings()
    old = emb.weight.shape[0]
    trained = min(before, old)  # rows past the old vocabulary are padding, never trained
    with torch.no_grad():
        mean = emb.weight[:trained].mean(0, keepdim=True)
    if len(tokenizer) > old:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    # the new ids, and every row the resize created (a token the vocabulary had without a row gets one)
    rows = torch.tensor(sorted(set(new_ids) | set(range(old, len(tokenizer)))))
    with torch.no_grad():
        model.get_input_embeddings().weight[rows] = mean.to(emb.weight.dtype)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
            out.weight[rows] = out.weight[:trained].mean(0, keepdim=True)
