"""Reading generated responses: their text, and which control token (`<short>` / `<think>`) opens them.

Shared by the rollout (rlreason/train/collect.py) and evaluation (rlreason/evaluate.py), so it sits
with the policy, below training and evaluation alike (evaluation importing training closed a cycle).

The control token is located by id, never by position alone: the mode of a sample is set only when
its first response token *is* `<short>` or `<think>`; anything else is a format failure
(`control_pos = -1`, `control_mode = None`), which the rewards punish and the algorithms never train
as if it were a control token.
"""

from __future__ import annotations

from typing import Any

import torch


def mode_ids(control: Any) -> dict[int, str]:
    """token id -> "short" | "think" for the control tokens in use (empty when none)."""
    if control is None:
        return {}
    out = {}
    for mode in ("short", "think"):
        tid = getattr(control, f"{mode}_id", None)
        if tid is not None:
            out[int(tid)] = mode
    return out


def decode_responses(tokenizer: Any, response_ids: torch.Tensor, mask: torch.Tensor, control: Any) -> list[str]:
    """Response texts with special tokens kept (control tokens matter) but pad/EOS removed."""
    drop = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    texts = []
    for ids, m in zip(response_ids.tolist(), mask.tolist()):
        toks = [t for t, keep in zip(ids, m) if keep and t not in drop]
        text = tokenizer.decode(toks, skip_special_tokens=False)
        if control is not None and hasattr(control, "canonicalize"):
            text = control.canonicalize(text)
        texts.append(text)
    return texts


def find_control(response_ids: torch.Tensor, mask: torch.Tensor, control: Any) -> tuple[torch.Tensor, list[str | None]]:
    """(position of the control token per response: 0 or -1, its mode or None): only a first response
    token that is a control token's id counts."""
    ids = mode_ids(control)
    pos = torch.full((response_ids.shape[0],), -1, dtype=torch.long)
    modes: list[str | None] = []
    for i in range(response_ids.shape[0]):
        first = int(response_ids[i, 0]) if response_ids.shape[1] and mask[i, 0] else None
        mode = ids.get(first) if first is not None else None
        modes.append(mode)
        if mode is not None:
            pos[i] = 0
    return pos, modes
