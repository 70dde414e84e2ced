"""From problems to a `RolloutBatch`: sample G responses each, decode them, find their modes.

Decoding and locating the control token live in rlreason/policy/responses.py (evaluation reads
responses the same way).
"""

from __future__ import annotations

from typing import Any

import torch

from rlreason.batch import RolloutBatch
from rlreason.policy.decode_state import DecodeState
from rlreason.policy.padding import left_pad
from rlreason.policy.responses import decode_responses, find_control
from rlreason.policy.rollout import RolloutBackend, SamplingParams
from rlreason.policy.sampling import sample_seed
from rlreason.tasks.base import Problem


def collect_rollout(
    policy: torch.nn.Module,
    tokenizer: Any,
    backend: RolloutBackend,
    problems: list[Problem],
    prompt_token_ids: list[list[int]],
    params: SamplingParams,
    *,
    group_size: int,
    seed: int,
    step: int,
    control: Any = None,
    group_offset: int = 0,
    sampler: Any = None,
) -> tuple[RolloutBatch, DecodeState | None]:
    """Sample `group_size` responses for each problem; sample j of problem p is seeded by
    (seed, step, p.uid, j), so the batch is the same however problems are spread over ranks.

    A mode sampler (`rlreason.policy.samplers`) forces each sample's first token; None: plain rollout.
    Returns the batch and the rollout's KV cache (None unless the backend keeps it for the reward)."""
    prompts, seeds, group_ids, golds, meta, texts = [], [], [], [], [], []
    forced: list[str] = []
    for g, (problem, ids) in enumerate(zip(problems, prompt_token_ids)):
        if sampler is not None:
            forced += sampler.modes(seed, step, problem.uid, group_size)
        for j in range(group_size):
            prompts.append(ids)
            seeds.append(sample_seed(seed, step, problem.uid, j))
            group_ids.append(group_offset + g)
            golds.append(problem.gold)
            texts.append(problem.prompt)
            meta.append({"uid": problem.uid, "difficulty": problem.difficulty, **problem.meta})
    if sampler is None:
        gen = backend.generate(policy, prompts, params, seeds)
    else:
        gen = sampler.generate(backend, policy, prompts, params, seeds, forced, control)
    prompt_ids, prompt_mask = left_pad(prompts, backend.pad_id)
    control_pos, control_mode = find_control(gen.response_ids, gen.response_mask, control)
    metrics: dict[str, float] = {}
    if gen.policy_version >= 0:  # an engine with its own copy of the weights says which step sampled
        metrics["rollout/policy_version"] = float(gen.policy_version)
    if sampler is not None:
        metrics["rollout/forced_short_share"] = sum(m == "short" for m in forced) / max(1, len(forced))
    batch = RolloutBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        response_ids=gen.response_ids,
        response_mask=gen.response_mask,
        old_logprobs=gen.logprobs,
        group_ids=torch.tensor(group_ids, dtype=torch.long),
        truncated=gen.truncated,
        prompts=texts,
        completions=decode_responses(tokenizer, gen.response_ids, gen.response_mask, control),
        golds=golds,
        meta=meta,
        control_pos=control_pos,
        control_mode=control_mode,
        forced_mode=forced if sampler is not None else None,
        rollout_metrics=metrics,
    )
    return batch, gen.decode_state
