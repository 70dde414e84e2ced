"""Splitting a response into reasoning *episodes* (L2T) as token spans.

Segmenters (`mode`):

- ``lab`` / ``lines``: one episode per line of the ``<think> ... </think>`` region (``lines`` also
  accepts responses without think tags: every non-empty line is an episode);
- ``tags``: ``<episode_k> ... </episode_k>`` blocks (L2T's prompt format).

Spans are token ``[start, end)`` ranges that *partition* the response's valid tokens: the control
token and opening markup belong to the first episode, the closing markup, the answer and EOS to the
last, so that every token receives a share of some episode's reward under L2T-PPO.

`boundaries` are the K+1 prefix lengths at which the info-gain reward measures J: b_0 is the start
of the first episode's content, so prefix 0 *includes* the control token and opening markup (J(s_1)
is the gold answer's likelihood right after x and the mode token); b_k is the end of episode k.
A response with no reasoning region (a ``<short>`` answer, or no episode tags at all in ``tags``
mode) is one well-formed episode with `reasoning = False`. Malformed markup (no closing
``</think>``, an unclosed or unmatched ``<episode_k>``, empty reasoning, empty response) degrades to
a single episode over the whole response with `format_ok = False`; it never raises, because it is
model output met inside training.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import torch

from rlreason.errors import ConfigError

MODES = ("lab", "lines", "tags")
_TAG = re.compile(r"<episode_(\d+)>(.*?)</episode_\1>", re.DOTALL)


@dataclass
class Episodes:
    """One response's episodes: token spans partitioning it, K + 1 prefix lengths, flags."""

    spans: list[tuple[int, int]]
    boundaries: list[int]  # K + 1 prefix lengths (tokens) for the fitting gain
    format_ok: bool
    reasoning: bool = True  # False: no reasoning region (``<short>`` answer or malformed): no fitting gain


class _PieceCache:
    """Token id -> its decoded text, each id decoded once (a batch repeats the same few hundred ids,
    and one `decode` call costs more than the rest of the segmenting of its token)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.pieces = tokenizer, {}

    def __call__(self, t: int) -> str:
        piece = self.pieces.get(t)
        if piece is None:
            piece = self.pieces[t] = self.tokenizer.decode([t], skip_special_tokens=False)
        return piece


def _token_offsets(ids: list[int], decode: Any) -> tuple[str, list[int]]:
    """Concatenated text of the tokens and the character offset where each token starts."""
    starts, pieces, pos = [], [], 0
    for t in ids:
        piece = decode(t)
        starts.append(pos)
        pieces.append(piece)
        pos += len(piece)
    return "".join(pieces), starts


def _to_token(char_pos: int, starts: list[int]) -> int:
    """First token starting at or after `char_pos` (len(starts) if none)."""
    for i, s in enumerate(starts):
        if s >= char_pos:
            return i
    return len(starts)


def _single(n: int, ok: bool) -> Episodes:
    return Episodes(spans=[(0, n)], boundaries=[min(1, n), n], format_ok=ok, reasoning=False)


def segment(
    ids: list[int], tokenizer: Any, mode: str = "lab", canonicalize: Any = None, pieces: _PieceCache | None = None
) -> Episodes:
    """Episodes of one response (`ids` = its valid tokens, EOS included); `pieces`: a decode cache
    shared over a batch (`segment_batch`)."""
    if mode not in MODES:
        raise ConfigError(f"episodes: expected one of {', '.join(MODES)}, got {mode!r}")
    n = len(ids)
    if n == 0:
        return Episodes(spans=[(0, 0)], boundaries=[0, 0], format_ok=False, reasoning=False)
    decode = pieces if pieces is not None else _PieceCache(tokenizer)
    text, starts = _token_offsets(ids, decode)
    if canonicalize is not None:  # mapped control tokens: offsets are kept by replacing per token
        canonical = [canonicalize(decode(t)) for t in ids]
        starts, pos = [], 0
        for p in canonical:
            starts.append(pos)
            pos += len(p)
        text = "".join(canonical)
    try:
        ends = _episode_char_ends(text, mode)
    except ValueError:
        return _single(n, False)
    if ends is None:  # no reasoning region (e.g. a <short> answer): one well-formed episode
        return _single(n, True)
    content_start, line_ends = ends
    b = [_to_token(content_start, starts)] + [_to_token(e, starts) for e in line_ends]
    b = [min(x, n) for x in b]
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(b)):
        return _single(n, False)
    spans = [(0 if k == 0 else b[k], n if k == len(b) - 2 else b[k + 1]) for k in range(len(b) - 1)]
    return Episodes(spans=spans, boundaries=b, format_ok=True)


def _episode_char_ends(text: str, mode: str) -> tuple[int, list[int]] | None:
    """(content start, [end of each episode]) in characters; None when there is no reasoning region."""
    if mode == "tags":
        matches = list(_TAG.finditer(text))
        if text.count("<episode_") != len(matches):  # an opening tag outside a closed pair
            raise ValueError("unclosed or unmatched episode tag")
        if not matches:
            return None
        return matches[0].start(), [m.end() for m in matches]
    stripped = text.lstrip()
    if stripped.startswith("<short>"):
        return None
    if "<think>" in text:
        start = text.index("<think>") + len("<think>")
        if "</think>" not in text[start:]:
            raise ValueError("no </think>")
        end = text.index("</think>", start)
    elif mode == "lines":
        start, end = 0, len(text)
    else:
        raise ValueError("no <think>")
    while start < end and text[start] == "\n":
        start += 1
    line_ends, pos = [], start
    for line in text[start:end].split("\n"):
        pos += len(line) + 1
        if line.strip():
            line_ends.append(min(pos, end))
    if not line_ends:
        raise ValueError("empty reasoning")
    return start, line_ends


def segment_batch(
    response_ids: torch.Tensor, response_mask: torch.Tensor, tokenizer: Any, mode: str = "lab", canonicalize: Any = None
) -> list[Episodes]:
    """`segment` for every row of a (right-padded) response batch, masked tokens dropped."""
    out = []
    pieces = _PieceCache(tokenizer)
    for ids, m in zip(response_ids.tolist(), response_mask.tolist()):
        valid = [t for t, keep in zip(ids, m) if keep]
        out.append(segment(valid, tokenizer, mode, canonicalize, pieces))
    return out
