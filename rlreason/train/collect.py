"""From problems to a `RolloutBatch`: format prompts, sample G responses each, decode, find modes.

The control token is located by id, never by position alone: the mode of a sample is set only when
its first response token *is* `<short>` or `<think>`; anything else is a format failure
(`control_pos = -1`, `control_mode = None`), which the rewards punish and the algorithms never train
as if it were a control token.
"""

from __future__ import annotations

from typing import Any

import torch

from rlreason.batch import RolloutBatch
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.policy.sampling import sample_seed
from rlreason.tasks.base import Problem


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


def collect_rollout(
    policy: torch.nn.Module,
    tokenizer: Any,
    backend: HFRolloutBackend,
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
) -> RolloutBatch:
    """Sample `group_size` responses for each problem; sample j of problem p is seeded by
    (seed, step, p.uid, j), so the batch is the same however problems are spread over ranks.

    A mode sampler (`rlreason.policy.samplers`) forces each sample's first token; None: plain rollout."""
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
    from rlreason.policy.rollout import left_pad

    prompt_ids, prompt_mask = left_pad(prompts, backend.pad_id)
    control_pos, control_mode = find_control(gen.response_ids, gen.response_mask, control)
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
    )
    if sampler is not None:
        batch.extras["forced_mode"] = forced
        share = sum(m == "short" for m in forced) / max(1, len(forced))
        batch.extras["rollout_metrics"] = {"rollout/forced_short_share": share}
    return batch
