"""Token sampling that is reproducible per sample, whatever the batch it runs in.

Each sequence draws its random numbers from its own generator, seeded from (run seed, step, prompt
uid, sample index). A sample therefore gets the same tokens whether it is generated alone, in a
batch of 64, or on another DDP rank: rollouts are invariant to batch size, sharding and world size,
which is what lets a 2-process run reproduce a 1-process run exactly.

Sampling uses the inverse CDF with one uniform per sequence and step, after temperature, top-k and
top-p filtering, so the per-step cost is one sort-free cumulative sum over the (filtered) vocabulary.
"""

from __future__ import annotations

import hashlib

import torch


def sample_seed(*parts: object) -> int:
    """A 63-bit seed from arbitrary parts (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def uniforms(seeds: list[int], steps: int) -> torch.Tensor:
    """[N, steps] uniforms in [0, 1), row i drawn from its own generator seeded by seeds[i]."""
    out = torch.empty(len(seeds), steps, dtype=torch.float64)
    gen = torch.Generator()
    for i, s in enumerate(seeds):
        gen.manual_seed(s)
        out[i] = torch.rand(steps, generator=gen, dtype=torch.float64)
    return out


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (to -inf) tokens outside the top-k and outside the smallest top-p nucleus."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass strictly before it already reaches top_p (keeps at least one)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(logits: torch.Tensor, u: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Inverse-CDF sample per row: the first token whose cumulative probability exceeds u."""
    probs = torch.softmax(filter_logits(logits.float(), top_k, top_p), dim=-1).double()
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return idx.clamp_(max=logits.shape[-1] - 1)
