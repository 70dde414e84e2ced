"""The two records every component meets in: `RolloutBatch` (what the policy generated) and
`RewardOutput` (what a reward model made of it).

Shapes: N samples (prompts x group size), P prompt positions (left-padded), T response positions
(right-padded). Sample i of group g came from prompt g; `group_ids[i] == g`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class RolloutBatch:
    """G sampled responses per prompt, with everything the reward and the algorithm need."""

    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P]
    response_ids: torch.Tensor  # [N, T] right-padded (pad id after EOS)
    response_mask: torch.Tensor  # [N, T] 1 for generated tokens, EOS included
    old_logprobs: torch.Tensor  # [N, T] log pi_old(o_t) recorded at sampling time (temperature 1 policy)
    group_ids: torch.Tensor  # [N] long
    truncated: torch.Tensor  # [N] bool: hit max_new_tokens without EOS
    prompts: list[str]
    completions: list[str]  # decoded responses (special tokens kept, EOS/pad removed)
    golds: list[str]
    meta: list[dict[str, Any]] = field(default_factory=list)  # per-sample task metadata (difficulty, ...)
    control_pos: torch.Tensor | None = None  # [N] response index of the control token, -1 if none
    control_mode: list[str | None] | None = None  # "think" | "short" | None per sample
    forced_mode: list[str] | None = None  # the mode a sampler forced on each sample (None: plain rollout)
    rollout_metrics: dict[str, float] = field(default_factory=dict)  # logged as they are (rollout/*)

    @property
    def num_samples(self) -> int:
        return int(self.response_ids.shape[0])

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(-1)

    @property
    def sampled_mask(self) -> torch.Tensor:
        """[N, T] the response tokens the sampler drew: a mode sampler's forced first token is not one
        (its recorded log-prob is the proposal's, log pi_IS)."""
        if self.forced_mode is None or self.response_mask.shape[1] == 0:
            return self.response_mask
        mask = self.response_mask.clone()
        mask[:, 0] = 0
        return mask

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)


def select_rows(batch: RolloutBatch, rows: list[int]) -> RolloutBatch:
    """The samples `rows` of `batch`, in that order (per-sample tensors and lists indexed, the rest kept)."""
    n, idx = batch.num_samples, torch.tensor(rows, dtype=torch.long)
    picked: dict[str, Any] = {}
    for f in fields(batch):
        value = getattr(batch, f.name)
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            picked[f.name] = value[idx]
        elif isinstance(value, list) and len(value) == n:
            picked[f.name] = [value[i] for i in rows]
    return replace(batch, **picked)


def distinct_rows(
    prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor, response_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(representatives, owner) over padded rows: the first row of every distinct (prompt, response),
    in row order, and for each row the index of its representative in that list; None when every
    row is distinct. A sharp policy samples the same response several times for a prompt; whatever
    is a function of the sequence need only be computed once."""
    key = torch.cat(
        [torch.where(prompt_mask.bool(), prompt_ids, -1), torch.where(response_mask.bool(), response_ids, -1)], dim=1
    )
    n = key.shape[0]
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    u = int(inverse.max()) + 1 if n else 0
    if u == n:
        return None
    rows = torch.arange(n, device=key.device)
    first = torch.full((u,), n, dtype=torch.long, device=key.device).scatter_reduce(0, inverse, rows, "amin")
    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(u, device=key.device)
    return first[order], rank[inverse]


def unique_samples(batch: RolloutBatch) -> tuple[list[int], list[int]]:
    """`distinct_rows` of a batch as lists, with the gold answer part of the key (the same prompt
    asked with another gold is another sample): (representatives, owner)."""
    n = batch.num_samples
    found = distinct_rows(batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask)
    if found is None:
        return list(range(n)), list(range(n))
    first: dict[tuple[int, str], int] = {}
    reps: list[int] = []
    owner: list[int] = []
    for i, group in enumerate(found[1].tolist()):
        key = (group, batch.golds[i] if i < len(batch.golds) else "")
        if key not in first:
            first[key] = len(reps)
            reps.append(i)
        owner.append(first[key])
    return reps, owner


@dataclass
class RewardOutput:
    """Sequence rewards, optionally with per-episode or per-token detail, and metrics to log.

    `rewards[i]` is always the scalar used by sequence-level algorithms (GRPO, DeGRPO). A process
    reward also fills `episode_rewards[i]` (one value per episode of sample i, token spans in
    `episode_spans`) with `rewards[i] == episode_rewards[i].sum()`, so a sequence-level algorithm
    sums them and L2T-PPO spreads them over tokens.
    """

    rewards: torch.Tensor  # [N] float
    episode_rewards: list[torch.Tensor] | None = None
    episode_spans: list[list[tuple[int, int]]] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
