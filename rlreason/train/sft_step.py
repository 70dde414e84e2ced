"""One SFT step: the problems' target responses through the algorithm's loss, micro-batch by
micro-batch, then one optimiser update, written out as in `rl_step` (`rlreason/train/step.py`,
whose `Learner`, `StepHandles` and `StepResult` it shares)."""

from __future__ import annotations

from collections import defaultdict

import torch

from rlreason.algos.base import LossInputs
from rlreason.policy.padding import left_pad, right_pad
from rlreason.tasks.base import Problem
from rlreason.train.forward import response_logprobs
from rlreason.train.metrics import Metric, PhaseTimer
from rlreason.train.micro_batches import micro_slices
from rlreason.train.step import Learner, StepHandles, StepResult, fault_metrics


def sft_step(learner: Learner, h: StepHandles, problems: list[Problem]) -> StepResult:
    """One optimiser step of the supervised loss on every target response of the problems."""
    s, timer = learner.settings, PhaseTimer()
    prompt_ids, prompt_mask, resp, rmask = sft_batch(learner, problems)  # [n, P], [n, P], [n, T], [n, T]
    norms = {
        "num_seqs": h.ranks.global_norm(len(resp)),
        "num_tokens": h.ranks.global_norm(float(rmask.sum())),
        "num_tokens_batch": h.ranks.global_norm(float(rmask.sum())),
        "max_new_tokens": resp.shape[1],
    }
    loss_metrics: dict[str, float] = defaultdict(float)
    finite_loss = True
    with timer("forward_backward"):
        for micro in micro_slices(len(resp), s.micro_batch_size):
            out = response_logprobs(
                learner.policy,
                prompt_ids[micro].to(h.device),
                prompt_mask[micro].to(h.device),
                resp[micro].to(h.device),
                rmask[micro].to(h.device),
                chunk_size=s.chunk_size,
            )
            inp = LossInputs(logprobs=out.logprobs, mask=rmask[micro].float().to(h.device), **norms)
            loss, stats = learner.algo.loss(inp)
            finite_loss &= bool(torch.isfinite(loss.detach()))
            h.backward(loss)
            for k, v in stats.items():
                loss_metrics[k] += float(v)
            loss_metrics["loss"] += float(loss.detach())
    metrics: dict[str, Metric] = {"train/loss": loss_metrics.pop("loss")}
    metrics.update({f"algo/{k}": v for k, v in loss_metrics.items()})
    with timer("optimizer"):
        params = [p for g in h.optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm if s.max_grad_norm > 0 else float("inf"))
        skip_cause = None if finite_loss and torch.isfinite(norm) else "grad" if finite_loss else "loss"
        if skip_cause is None:
            h.optimizer.step()
            h.scheduler.step()
            metrics["optim/grad_norm"] = float(norm)
        h.optimizer.zero_grad(set_to_none=True)
    metrics["optim/lr"] = float(h.optimizer.param_groups[0]["lr"])
    metrics["perf/tokens"] = float(rmask.sum())
    metrics.update(fault_metrics({skip_cause: 1} if skip_cause else {}))
    metrics.update(timer.metrics())
    return StepResult(metrics, int(skip_cause is not None), skip_cause)


def sft_batch(learner: Learner, problems: list[Problem]) -> tuple[torch.Tensor, ...]:
    """(prompt ids, prompt mask, target ids + EOS, target mask): one row per problem and target style."""
    control = learner.control
    prompts, targets = [], []
    for p in problems:
        for style in sorted(p.targets):
            text = p.targets[style]
            if control is not None:
                text = control.render(text)
            prompts.append(learner.prompts(p))
            targets.append(learner.prompts.encode_target(text))
    if not targets:
        raise ValueError("SFT needs problems with targets; the task gave none")
    pad = learner.tokenizer.pad_token_id
    prompt_ids, prompt_mask = left_pad(prompts, pad)
    resp, rmask = right_pad(targets, pad)
    return prompt_ids, prompt_mask, resp, rmask
