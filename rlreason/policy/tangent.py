"""The parameter displacement Delta_theta = theta - theta_ref of a policy, on a subset of its
parameters or as a seeded random projection: the tangent that `rlreason.policy.jvp` pushes forward.

Used by L2T's compression penalty (`info_gain`), which needs Delta_theta restricted to the chosen
parameters and its squared norm, without ever holding a matrix over the parameters.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

SUBSETS = ("last_block", "lm_head", "all", "random_projection")


def subset_names(model: torch.nn.Module, subset: str) -> list[str]:
    """Names of the parameters in a subset, found generically for Hugging Face causal LMs."""
    names = [n for n, p in model.named_parameters() if True]
    if subset in ("all", "random_projection"):
        return names
    if subset == "lm_head":
        out_emb = model.get_output_embeddings()
        target = out_emb.weight if out_emb is not None else None
        return [n for n, p in model.named_parameters() if p is target]  # tied: the shared embedding
    layers = [n for n in names if ".layers." in n]
    if not layers:
        raise ValueError("params: last_block needs a model with `.layers.N.` parameter names")
    last = max(int(n.split(".layers.")[1].split(".")[0]) for n in layers)
    return [n for n in names if f".layers.{last}." in n]


def parameter_delta(
    model: torch.nn.Module, initial: dict[str, torch.Tensor], subset: str, rank: int, seed: int
) -> tuple[dict[str, torch.Tensor], float]:
    """Delta_theta on the subset (or its random projection of `rank` directions) and its squared norm."""
    names = subset_names(model, subset)
    current = dict(model.named_parameters())
    delta = {n: current[n].detach() - initial[n].to(current[n].device, current[n].dtype) for n in names}
    if subset == "random_projection":
        delta = random_projection(delta, rank, seed)
    sq = float(sum((t.double() * t.double()).sum() for t in delta.values()))
    return delta, sq


def random_projection(delta: dict[str, torch.Tensor], rank: int, seed: int) -> dict[str, torch.Tensor]:
    """Orthogonal projection of `delta` onto the span of `rank` seeded Gaussian directions V:
    P delta = V^T (V V^T)^{-1} V delta. V is never held whole: it is regenerated block by block
    (2^22 entries of one parameter per block, each block seeded by (seed, block index)), so the
    memory is rank x one block, not rank model copies; the price is generating V twice per call."""
    gram = torch.zeros(rank, rank, dtype=torch.float64)
    coeff = torch.zeros(rank, dtype=torch.float64)
    for v, d in _blocks(delta, rank, seed):
        gram += (v @ v.T).double().cpu()
        coeff += (v @ d).double().cpu()
    y = torch.linalg.solve(gram, coeff)
    out = {n: torch.empty_like(t) for n, t in delta.items()}
    flat = {n: t.view(-1) for n, t in out.items()}
    for (v, _), (n, a, b) in zip(_blocks(delta, rank, seed), _block_index(delta)):
        flat[n][a:b] = (y.to(v.device, v.dtype) @ v).to(flat[n].dtype)
    return out


def _block_index(delta: dict[str, torch.Tensor], size: int = 1 << 22) -> list[tuple[str, int, int]]:
    return [(n, a, min(a + size, t.numel())) for n, t in delta.items() for a in range(0, t.numel(), size)]


def _blocks(delta: dict[str, torch.Tensor], rank: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(V block [rank, m], the matching slice of delta [m]) for every block, in a fixed order."""
    for k, (n, a, b) in enumerate(_block_index(delta)):
        t = delta[n]
        dtype = torch.promote_types(t.dtype, torch.float32)
        gen = torch.Generator(device=t.device).manual_seed(seed * 1_000_003 + k)
        v = torch.randn(rank, b - a, generator=gen, device=t.device, dtype=dtype)
        yield v, t.reshape(-1)[a:b].to(dtype)
