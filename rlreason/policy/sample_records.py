"""Sample the policy's responses to problems and judge them: one record per (problem, sample).

Greedy decoding (temperature 0) or k samples per problem at a temperature; `force_mode` ("short" /
"think") appends that control token to the prompt. Evaluation (`rlreason.evaluate`) and rewards that
sample a reference policy (`adaptthink`'s presampling) both read these records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlreason.policy.responses import decode_responses, find_control
from rlreason.policy.rollout import SamplingParams, build_backend
from rlreason.policy.sampling import sample_seed
from rlreason.tasks.base import Problem


@dataclass
class EvalSettings:
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 0
    backend: str = "hf"  # rollout.backend: evaluation samples through the run's engine
    engine: dict[str, Any] | None = None  # rollout.vllm
    model_dtype: str = "float32"


def generate_records(
    policy: torch.nn.Module,
    tokenizer: Any,
    control: Any,
    problems: list[Problem],
    prompt_ids: list[list[int]],
    verifier: Any,
    settings: EvalSettings,
    *,
    force_mode: str | None = None,
) -> list[dict[str, Any]]:
    """One record per (problem, sample): correctness, token count, mode, response text."""
    backend = build_backend(
        settings.backend,
        [tokenizer.eos_token_id],
        tokenizer.pad_token_id,
        settings.batch_size,
        engine=settings.engine,
        model_dtype=settings.model_dtype,
    )
    params = SamplingParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
    forced: list[int] = []
    if force_mode is not None:
        tid = getattr(control, f"{force_mode}_id", None) if control is not None else None
        if tid is None:
            raise ValueError(f"force_mode '{force_mode}' needs the model's control tokens")
        forced = [int(tid)]
    prompts, seeds, owners = [], [], []
    for p, ids in zip(problems, prompt_ids):
        for j in range(settings.samples):
            prompts.append(list(ids) + forced)
            seeds.append(sample_seed("eval", settings.seed, p.uid, j))
            owners.append((p, j))
    gen = backend.generate(policy, prompts, params, seeds)
    texts = decode_responses(tokenizer, gen.response_ids, gen.response_mask, control)
    if forced:
        prefix = tokenizer.decode(forced, skip_special_tokens=False)
        if control is not None and hasattr(control, "canonicalize"):
            prefix = control.canonicalize(prefix)
        texts = [prefix + t for t in texts]
        modes: list[str | None] = [force_mode] * len(texts)
    else:
        _, modes = find_control(gen.response_ids, gen.response_mask, control)
    verdicts = verifier(texts, [p.gold for p, _ in owners])
    lengths = (gen.response_mask.sum(-1) + len(forced)).tolist()
    return [
        {
            "uid": p.uid,
            "sample": j,
            "difficulty": p.difficulty,
            "correct": bool(ok),
            "tokens": int(n),
            "mode": mode,
            "truncated": bool(tr),
            "response": text,
            "gold": p.gold,
            "prompt": p.prompt,
        }
        for (p, j), ok, n, mode, tr, text in zip(owners, verdicts, lengths, modes, gen.truncated.tolist(), texts)
    ]
