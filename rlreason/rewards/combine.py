"""Composing rewards: a weighted `sum` of registered terms, and TRL-style reward callables."""

from __future__ import annotations

import importlib
import math
from typing import Any

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import RLReasonError
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext


@REWARDS.register("sum")
class WeightedSum(Reward):
    """Weighted sum of reward terms: r_i = sum_k w_k r^(k)_i.

    ``reward: {name: sum, terms: [{name: binary, weight: 1.0}, {name: kimi, weight: 0.5}]}``.
    If one term gives per-episode rewards, they are kept (weighted) and every other term's weighted
    sequence reward is added to the sample's last episode, so `rewards == episode_rewards.sum()`.
    """

    def __init__(self, terms: list[dict[str, Any]]) -> None:
        if not terms:
            raise ValueError("terms: expected a non-empty list of {name: ..., weight: ...}")
        self.terms: list[tuple[float, Reward, str]] = []
        for k, term in enumerate(terms):
            term = dict(term)
            weight = float(term.pop("weight", 1.0))
            self.terms.append((weight, REWARDS.build(term, where=f"reward.terms[{k}]"), str(term.get("name"))))
        self.needs_policy = any(t.needs_policy for _, t, _ in self.terms)  # type: ignore[misc]
        self.needs_initial_params = any(t.needs_initial_params for _, t, _ in self.terms)  # type: ignore[misc]

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        total = torch.zeros(batch.num_samples)
        episode: list[torch.Tensor] | None = None
        spans = None
        metrics: dict[str, float] = {}
        fmt = None
        for k, (w, term, name) in enumerate(self.terms):
            out = term(batch, ctx)
            total = total + w * out.rewards.float()
            if out.episode_rewards is not None and episode is None:
                episode = [w * e.float() for e in out.episode_rewards]
                spans = out.episode_spans
            for m, v in out.metrics.items():
                metrics[m] = v
            metrics[f"reward/terms/{k}_{name}"] = float(out.rewards.float().mean())
            if out.format_ok is not None:
                fmt = out.format_ok if fmt is None else fmt & out.format_ok
        if episode is not None:  # put the sequence-level terms on the last episode
            episode = [e.clone() for e in episode]
            for i, e in enumerate(episode):
                e[-1] += total[i] - e.sum()
        return RewardOutput(rewards=total, episode_rewards=episode, episode_spans=spans, format_ok=fmt, metrics=metrics)


@REWARDS.register("callable")
class CallableReward(Reward):
    """A TRL-style reward function by import path: fn(prompts, completions, **columns) -> list[float].

    Columns: `gold` (the gold answers), `completion_ids`, and every key of the samples' task metadata.
    None entries (TRL's "not applicable") count as 0.0 and are reported in metrics.
    """

    def __init__(self, fn: str, weight: float = 1.0) -> None:
        self.path, self.weight = fn, weight
        module, sep, attr = fn.partition(":")
        if not sep:
            module, _, attr = fn.rpartition(".")
        try:
            self.fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"fn: cannot import {fn!r} ({exc}); expected 'package.module:function'") from None
        if not callable(self.fn):
            raise ValueError(f"fn: {fn!r} is not callable")

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        columns: dict[str, list[Any]] = {"gold": list(batch.golds)}
        columns["completion_ids"] = [ids[m.bool()].tolist() for ids, m in zip(batch.response_ids, batch.response_mask)]
        for key in sorted({k for m in batch.meta for k in m}):
            columns.setdefault(key, [m.get(key) for m in batch.meta])
        values = self.fn(prompts=list(batch.prompts), completions=list(batch.completions), **columns)
        if not isinstance(values, (list, tuple)) or len(values) != batch.num_samples:
            got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
            raise RLReasonError(f"reward.fn {self.path}: expected a list of {batch.num_samples} floats, got {got}")
        out, missing = [], 0
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                missing += 1
                out.append(0.0)
            elif (isinstance(v, (int, float)) and not isinstance(v, bool)) or isinstance(v, bool):
                out.append(float(v))
            else:
                raise RLReasonError(f"reward.fn {self.path}: returned a non-numeric value {v!r}")
        r = self.weight * torch.tensor(out)
        return RewardOutput(rewards=r, metrics={"reward/callable/none_frac": missing / max(1, len(values))})
