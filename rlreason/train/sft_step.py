"""One SFT step: the problems' target responses through the same micro-batch loss and optimiser
update as the RL step (`rlreason/train/step.py`, whose `Learner` and `StepHandles` it shares)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch

from rlreason.algos.base import LossInputs
from rlreason.policy.padding import left_pad, right_pad
from rlreason.tasks.base import Problem
from rlreason.train.forward import response_logprobs
from rlreason.train.passes import micro_slices
from rlreason.train.step import Learner, StepHandles, StepResult, optimise
from rlreason.train.step_metrics import Metric


def sft_step(learner: Learner, h: StepHandles, problems: list[Problem]) -> StepResult:
    """One optimiser step of the supervised loss on every target response of the problems."""
    cfg = learner.cfg
    prompt_ids, prompt_mask, resp, rmask = sft_batch(learner, problems)
    norms = {
        "num_seqs": h.ranks.global_norm(len(resp)),
        "num_tokens": h.ranks.global_norm(float(rmask.sum())),
        "num_tokens_batch": h.ranks.global_norm(float(rmask.sum())),
        "max_new_tokens": resp.shape[1],
    }

    def losses() -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        for micro in micro_slices(len(resp), cfg.optim.micro_batch_size):
            out = response_logprobs(
                learner.policy,
                prompt_ids[micro].to(h.device),
                prompt_mask[micro].to(h.device),
                resp[micro].to(h.device),
                rmask[micro].to(h.device),
                chunk_size=cfg.model.logit_chunk_size,
            )
            inp = LossInputs(logprobs=out.logprobs, mask=rmask[micro].float().to(h.device), **norms)
            yield learner.algo.loss(inp)

    sums: dict[str, float] = defaultdict(float)
    stats = optimise(learner, h, losses(), sums)
    out: dict[str, Metric] = {"train/loss": sums.pop("loss"), **{f"algo/{k}": v for k, v in sums.items()}}
    out.update({f"optim/{k}": v for k, v in stats.items()})
    out["optim/lr"] = float(h.optimizer.param_groups[0]["lr"])
    out["perf/tokens"] = float(rmask.sum())
    return StepResult(out)


def sft_batch(learner: Learner, problems: list[Problem]) -> tuple[torch.Tensor, ...]:
    """(prompt ids, prompt mask, target ids + EOS, target mask): one row per problem and target style."""
    tok, control = learner.tokenizer, learner.control
    prompts, targets = [], []
    for p in problems:
        for style in sorted(p.targets):
            text = p.targets[style]
            if control is not None and hasattr(control, "render"):
                text = control.render(text)
            prompts.append(learner.prompts(p))
            targets.append(learner.prompts.encode_target(text))
    if not targets:
        raise ValueError("SFT needs problems with targets; the task gave none")
    prompt_ids, prompt_mask = left_pad(prompts, tok.pad_token_id)
    resp, rmask = right_pad(targets, tok.pad_token_id)
    return prompt_ids, prompt_mask, resp, rmask
