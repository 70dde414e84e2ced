"""DLER's advantage options, shared by grpo, degrpo and l2t_ppo: batch-wise normalisation and
dynamic sampling (Liu et al., "DLER: Doing Length pEnalty Right", arXiv 2510.15110).

    batch_norm: true          A_i = r_i - mean_group(r),   A_i <- (A_i - mu) / sqrt(sigma^2 + 1e-8)
                              (mu, sigma^2: token-weighted over the global batch, verl's masked_whiten)
    dynamic_sampling: skip    a group whose rewards are all equal trains nothing (DAPO's filter_groups)

Defaults: batch_norm false, dynamic_sampling off.

Deviations from the paper and the released code: docs/algorithms.md#dler
"""

from __future__ import annotations

import torch

from rlreason.algos.base import group_stats
from rlreason.distributed import all_reduce

DYNAMIC_SAMPLING = ("off", "skip")


def check_options(batch_norm: bool, dynamic_sampling: str) -> None:
    """Constructor checks with one-line errors naming the key."""
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm: expected true or false, got {batch_norm!r}")
    if dynamic_sampling not in DYNAMIC_SAMPLING:
        raise ValueError(f"dynamic_sampling: expected one of {', '.join(DYNAMIC_SAMPLING)}, got {dynamic_sampling!r}")


def informative_groups(scores: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """[N] bool: the sample's group has a reward spread (or a single sample), as DAPO's filter keeps."""
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    s = scores.double()
    hi = torch.full((uniq.numel(),), float("-inf"), dtype=s.dtype).scatter_reduce(0, inv, s, "amax")
    lo = torch.full((uniq.numel(),), float("inf"), dtype=s.dtype).scatter_reduce(0, inv, s, "amin")
    size = torch.zeros(uniq.numel(), dtype=torch.long).index_add_(0, inv, torch.ones_like(inv))
    return ((hi > lo) | (size == 1))[inv]


def batch_whiten(adv: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Whiten per-sample advantages [N] with token-weighted global batch statistics (verl masked_whiten)."""
    w = mask.double().sum(-1)
    if keep is not None:
        w = w * keep.double()
    a = adv.double()
    sums = all_reduce(torch.stack([w.sum(), (w * a).sum()]))
    mean = sums[1] / sums[0].clamp(min=1)
    sq = all_reduce((w * (a - mean) ** 2).sum().reshape(1))[0]
    var = sq / (sums[0] - 1).clamp(min=1)  # Bessel's correction over tokens, as verl's masked_var
    return ((a - mean) / torch.sqrt(var + 1e-8)).to(adv.dtype)


def apply(
    adv: torch.Tensor,
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    response_mask: torch.Tensor,
    batch_norm: bool,
    dynamic_sampling: str,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor | None]:
    """Dynamic sampling, then batch normalisation, of group-centred advantages [N].

    Returns (advantages, metrics, keep): `keep` [N] float is 0 for the dropped samples (the loop masks
    them out of the loss), None when dynamic sampling is off."""
    metrics: dict[str, float] = {}
    keep = None
    if dynamic_sampling == "skip":
        keep = informative_groups(scores, group_ids)
        dropped = torch.unique(group_ids[~keep]).numel()
        metrics["ds_dropped_groups"] = float(dropped)
        metrics["ds_dropped_frac"] = float((~keep).double().mean()) if keep.numel() else 0.0
    if batch_norm:
        adv = batch_whiten(adv, response_mask, keep)
    if keep is not None:
        adv = adv * keep.to(adv.dtype)
    return adv, metrics, None if keep is None else keep.float()


def zero_spread_frac(scores: torch.Tensor, group_ids: torch.Tensor) -> float:
    _, std = group_stats(scores.double(), group_ids)
    return float((std < 1e-8).double().mean())
