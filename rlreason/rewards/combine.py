"""Composing rewards: a weighted `sum` of registered terms, and TRL-style reward callables by path.

Details: docs/algorithms.md#sum and docs/algorithms.md#callable
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import RLReasonError
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("sum")
class WeightedSum(Reward):
    """Weighted sum of registered reward terms: r_i = sum_k w_k r_i^(k).

    ``reward: {name: sum, terms: [{name: binary, weight: 1.0}, {name: kimi, weight: 0.5}]}``; weight
    defaults to 1.0. A process reward among the terms keeps its per-episode rewards; the other terms'
    are added to each sample's last episode.

    Details (episodes, metrics): docs/algorithms.md#sum
    """

    def __init__(self, terms: list[dict[str, Any]]) -> None:
        if not isinstance(terms, (list, tuple)) or not terms:
            raise ValueError("terms: expected a non-empty list of {name: ..., weight: ...}")
        self.terms: list[tuple[float, Reward, str]] = []
        for k, term in enumerate(terms):
            if not isinstance(term, Mapping):
                raise ValueError(
                    f"terms[{k}]: expected a mapping {{name: ..., weight: ...}}, got {type(term).__name__}"
                )
            params = dict(term)
            weight = params.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
                raise ValueError(f"terms[{k}].weight: expected a finite number, got {weight!r}")
            # built through Registry.check like any component; an error names `terms[k].<key>`, which
            # the build of this sum prefixes with its own key (`reward.terms[1].name`)
            self.terms.append((float(weight), REWARDS.build(params, where=f"terms[{k}]"), str(term["name"])))
        self.needs_initial_params = any(t.needs_initial_params for _, t, _ in self.terms)
        self.reads_decode_state = any(t.reads_decode_state for _, t, _ in self.terms)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        total = torch.zeros(batch.num_samples)
        episode: list[torch.Tensor] | None = None
        spans: list[list[tuple[int, int]]] | None = None
        metrics: dict[str, float] = {}
        for k, (w, term, name) in enumerate(self.terms):
            out = term(batch, ctx)
            total = total + w * out.rewards.float()
            if out.episode_rewards is not None and episode is None:
                episode = [w * e.float() for e in out.episode_rewards]
                spans = out.episode_spans
            prefix = f"reward/terms/{k}_{name}"
            metrics[f"{prefix}/mean"] = float(out.rewards.float().mean()) if out.rewards.numel() else 0.0
            own = f"reward/{name}/"
            for m, v in out.metrics.items():
                if m.startswith(own):
                    metrics[f"{prefix}/{m[len(own) :]}"] = v
                else:
                    metrics[m if m not in metrics else f"{prefix}/{m}"] = v
        if episode is not None:
            episode, spans = _fold_into_last_episode(episode, spans, total, batch)
        metrics["reward/sum/mean"] = float(total.mean()) if total.numel() else 0.0
        return RewardOutput(rewards=total, episode_rewards=episode, episode_spans=spans, metrics=metrics)


def _fold_into_last_episode(
    episode: list[torch.Tensor],
    spans: list[list[tuple[int, int]]] | None,
    total: torch.Tensor,
    batch: RolloutBatch,
) -> tuple[list[torch.Tensor], list[list[tuple[int, int]]] | None]:
    """Add what the sequence-level terms contributed to each sample's last episode."""
    lengths = batch.response_lengths.tolist()
    new_ep, new_spans = [], [list(s) for s in spans] if spans is not None else None
    for i, e in enumerate(episode):
        e = e.clone()
        if e.numel() == 0:  # no episode at all: the whole response is one
            e = torch.zeros(1)
            if new_spans is not None:
                new_spans[i] = [(0, int(lengths[i]))]
        e[-1] += total[i] - e.sum()
        new_ep.append(e)
    return new_ep, new_spans


def _import(path: str) -> Callable[..., Any]:
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"fn: expected 'package.module:function', got {path!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"fn: cannot import {path!r} ({type(exc).__name__}: {exc})") from None
    if not callable(fn):
        raise ValueError(f"fn: {path!r} is not callable")
    return fn


@REWARDS.register("callable")
class CallableReward(Reward):
    """A TRL-style reward function given by import path: fn(prompts, completions, **columns).

    ``reward: {name: callable, fn: "pkg.module:func", weight: 1.0}``; r_i = weight * fn(...)[i], with
    None (or NaN) read as 0.0.

    Deviations from the paper and the released code: docs/algorithms.md#callable
    """

    def __init__(self, fn: str, weight: float = 1.0) -> None:
        self.path, self.weight = fn, float(weight)
        self.fn = _import(fn)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        n = batch.num_samples
        columns: dict[str, list[Any]] = {
            "gold": list(batch.golds),
            "completion_ids": [ids[m.bool()].tolist() for ids, m in zip(batch.response_ids, batch.response_mask)],
        }
        metas = [batch.meta[i] if i < len(batch.meta) else {} for i in range(n)]
        for key in sorted({k for m in metas for k in m}):
            columns.setdefault(key, [m.get(key) for m in metas])
        values = self.fn(prompts=list(batch.prompts), completions=list(batch.completions), **columns)
        if not isinstance(values, (list, tuple)) or len(values) != n:
            got = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
            raise RLReasonError(f"reward.fn {self.path}: expected a list of {n} numbers, got {got}")
        out, missing = [], 0
        for i, v in enumerate(values):
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if v is None or (isinstance(v, numbers.Real) and math.isnan(v)):
                missing += 1
                out.append(0.0)
            elif isinstance(v, numbers.Real):
                out.append(float(v))
            else:
                raise RLReasonError(f"reward.fn {self.path}: value {i} is not a number: {v!r}")
        r = self.weight * torch.tensor(out, dtype=torch.float32)
        metrics = {
            "reward/callable/mean": float(r.mean()) if n else 0.0,
            "reward/callable/none_frac": missing / max(1, n),
        }
        return RewardOutput(rewards=r, metrics=metrics)
