"""One training step, read top to bottom.

An RL step:

    problems -> rollout (G samples each) -> verify -> reward -> advantages
             -> num_iterations x minibatches x micro-batches of (log-probs -> algo.loss -> backward)
             -> an optimiser step per minibatch -> metrics

An SFT step (`train/sft_step.py`) feeds the problems' target responses through the same micro-batch
loss and optimiser update. Every stage is a function over explicit values: `Learner` holds what a run builds once
(policy, algorithm, reward, verifier, rollout backend), `StepHandles` what the trainer lends for one
step (backward, optimiser, scheduler, rank reductions). The LightningModule (`train/module.py`)
only adapts Lightning's hooks to these two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlreason.algos.base import Advantages, Algorithm, LossInputs
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.policy.lora import adapters_disabled, is_lora
from rlreason.policy.prompt_encoder import PromptEncoder
from rlreason.policy.rollout import SamplingParams
from rlreason.rewards.base import Reward, RewardContext
from rlreason.tasks.base import Problem
from rlreason.train.collect import collect_rollout
from rlreason.train.distinct_rows import distinct_logprobs
from rlreason.train.engine_sync import correct_rollout, note_version, sampled_mask, sync_engine
from rlreason.train.forward import response_logprobs
from rlreason.train.micro_batches import micro_batches, micro_columns
from rlreason.train.parity import Parity, ParityMonitor
from rlreason.train.passes import critic_values, micro_slices, sequence_logprobs
from rlreason.train.ranks import RankReducer
from rlreason.train.rollout_metrics import rollout_metrics
from rlreason.train.step_metrics import Metric
from rlreason.train.timing import PhaseTimer
from rlreason.train.update import NonFiniteGuard, accumulate_and_step


@dataclass
class Learner:
    """What every step of a run works with, built once by the LightningModule."""

    cfg: Any
    policy: torch.nn.Module
    tokenizer: Any
    control: Any
    algo: Algorithm
    reward: Reward | None
    verifier: Any
    prompts: PromptEncoder
    backend: Any  # a rollout backend (`rlreason.registry.ROLLOUT_BACKENDS`)
    sampler: Any  # a mode sampler (`rlreason.policy.samplers`), or None
    sampling: SamplingParams
    value_head: torch.nn.Module | None
    frozen: dict[str, Any]  # "ref": the frozen reference model, "initial": theta_ref for info-gain
    answer_cue: str = ""


@dataclass
class StepHandles:
    """What the trainer lends one step."""

    step: int  # 0-based; a resumed run continues the count
    device: torch.device
    backward: Callable[[torch.Tensor], None]
    optimizer: Any
    scheduler: Any
    ranks: RankReducer
    guard: NonFiniteGuard
    parity: ParityMonitor
    run_dir: str | None = None
    is_global_zero: bool = True
    timer: PhaseTimer = field(default_factory=PhaseTimer)


@dataclass
class StepResult:
    metrics: dict[str, Metric]
    batch: RolloutBatch | None = None  # kept for the sample-text callback
    reward: RewardOutput | None = None


# -- the RL step ----------------------------------------------------------------------------------


def rl_step(learner: Learner, h: StepHandles, problems: list[Problem]) -> StepResult:
    timed = h.timer
    note_version(learner, h)
    with timed("rollout"):
        batch = rollout(learner, h, problems)
    with timed("verify"):
        correct, answered = verify(learner.verifier, batch)
    if learner.algo.beta > 0:
        with timed("reference"):
            batch.ref_logprobs = reference_logprobs(learner, h, batch)
    with timed("reward"):
        reward = score(learner, h, batch, correct, answered)
    batch.decode_state = None  # the rollout's KV cache, kept for the reward only
    metrics = rollout_metrics(batch, reward, correct, learner.control)
    metrics.update(batch.rollout_metrics)
    if h.ranks.sum(float(not torch.isfinite(reward.rewards).all())) > 0:  # every rank skips together
        return StepResult({**metrics, **h.guard.skip("reward")}, batch, reward)
    values = None
    if learner.value_head is not None:
        with timed("values"):
            values = critic_values(
                learner.policy,
                learner.value_head,
                batch,
                micro_batch_size=learner.cfg.optim.micro_batch_size,
                chunk_size=learner.cfg.model.logit_chunk_size,
                device=h.device,
                distinct=learner.cfg.optim.dedup_sequences,
            )
    with timed("advantages"):
        advantages = learner.algo.advantages(batch, reward, values)
    metrics.update({f"algo/{k}": float(v) for k, v in advantages.metrics.items()})
    advantages, correction = correct_rollout(learner, h, batch, advantages)
    metrics.update(correction)
    keep = advantages.keep  # dynamic sampling (rlreason/algos/dler.py): rows that train nothing
    if keep is not None and h.ranks.sum(float(keep.sum())) == 0:  # every rank skips together
        return StepResult({**metrics, "algo/ds_skipped_step": 1.0}, batch, reward)
    metrics.update(update(learner, h, batch, advantages, values))
    metrics["perf/tokens"] = float(batch.response_mask.sum())
    return StepResult(metrics, batch, reward)


def rollout(learner: Learner, h: StepHandles, problems: list[Problem]) -> RolloutBatch:
    """G samples per problem, seeded per (seed, step, problem, sample): any rank layout gives the same batch."""
    return collect_rollout(
        learner.policy,
        learner.tokenizer,
        learner.backend,
        problems,
        [learner.prompts(p) for p in problems],
        learner.sampling,
        group_size=learner.cfg.rollout.group_size,
        seed=learner.cfg.seed,
        step=h.step,
        control=learner.control,
        group_offset=h.ranks.rank * len(problems),
        sampler=learner.sampler,
    )


def verify(verifier: Any, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """[N] bool `correct` and `answered` (an answer could be extracted at all), one extraction per sample."""
    judgement = verifier.judge(batch.completions, batch.golds)
    return torch.tensor(judgement.correct, dtype=torch.bool), torch.tensor(judgement.answered, dtype=torch.bool)


def reference_logprobs(learner: Learner, h: StepHandles, batch: RolloutBatch) -> torch.Tensor:
    """[N, T] log-probs under the frozen reference (LoRA: the base model under the adapters)."""
    cfg = learner.cfg
    kwargs = dict(
        micro_batch_size=cfg.optim.micro_batch_size,
        temperature=cfg.rollout.temperature,
        chunk_size=cfg.model.logit_chunk_size,
        device=h.device,
        distinct=cfg.optim.dedup_sequences,
    )
    ref = learner.frozen["ref"]
    if ref is None and is_lora(learner.policy):
        with adapters_disabled(learner.policy) as base:
            return sequence_logprobs(base, batch, **kwargs)
    return sequence_logprobs(ref, batch, **kwargs)


def score(
    learner: Learner, h: StepHandles, batch: RolloutBatch, correct: torch.Tensor, answered: torch.Tensor
) -> RewardOutput:
    """The configured reward of every sample (float rewards; process rewards also per episode)."""
    assert learner.reward is not None
    control = learner.control
    ctx = RewardContext(
        correct=correct,
        answered=answered,
        policy=learner.policy,
        tokenizer=learner.tokenizer,
        initial_params=learner.frozen["initial"],
        max_new_tokens=learner.cfg.rollout.max_new_tokens,
        step=h.step,
        max_steps=learner.cfg.optim.steps,
        control=control,
        verifier=learner.verifier,
        run_dir=h.run_dir,
        control_ids=getattr(control, "ids", {}) if control is not None else {},
        answer_cue=learner.answer_cue,
        canonicalize=getattr(control, "canonicalize", None),
    )
    out = learner.reward(batch, ctx)
    out.rewards = out.rewards.float()
    return out


def update(
    learner: Learner, h: StepHandles, batch: RolloutBatch, adv: Advantages, values: torch.Tensor | None
) -> dict[str, float]:
    """num_iterations passes of minibatch optimiser steps over the rollout batch."""
    cfg, algo = learner.cfg, learner.algo
    mask = loss_mask(batch, algo, adv.keep)
    n = batch.num_samples
    minibatches = micro_slices(n, n // cfg.optim.minibatches)
    on_policy = algo.num_iterations == 1 and len(minibatches) == 1
    tokens_batch = h.ranks.global_norm(float(mask.sum()))
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    parity: Parity | None = Parity()  # measured on the first minibatch only: before any update
    parity_metrics: dict[str, float] = {}
    for _ in range(algo.num_iterations):
        for mb in minibatches:
            rows = torch.arange(n)[mb]
            norms = minibatch_normalisers(learner, h, batch, mask, rows, adv.keep, tokens_batch)
            losses = (
                micro_loss(learner, h, batch, adv, values, mask, sub, norms, on_policy, parity)
                for sub in micro_batches(batch, rows, cfg.optim.micro_batch_size, cfg.optim.micro_batch_tokens)
            )
            stats = optimise(learner, h, losses, sums)
            for k, v in stats.items():
                sums[k] += v
                counts[k] += 1
            if parity is not None:
                parity_metrics = h.parity.metrics(parity, h.ranks, h.step, warn=h.is_global_zero)
                parity = None
    steps = algo.num_iterations * len(minibatches)
    out = {f"algo/{k}": v / steps for k, v in sums.items() if k not in counts}
    out.update(parity_metrics)
    # skipped-update counts are totals over the step; everything else is a mean over updates
    out.update({f"optim/{k}": sums[k] if k.startswith("nonfinite_") else sums[k] / counts[k] for k in counts})
    out["optim/lr"] = float(h.optimizer.param_groups[0]["lr"])
    return out


def optimise(
    learner: Learner,
    h: StepHandles,
    losses: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    sums: dict[str, float],
) -> dict[str, float]:
    """One optimiser update from the micro-batch losses (`update.accumulate_and_step`), with this
    step's handles; the losses' metrics are summed into `sums`."""
    stats = accumulate_and_step(
        losses,
        backward=h.backward,
        optimizer=h.optimizer,
        scheduler=h.scheduler,
        max_grad_norm=learner.cfg.optim.max_grad_norm,
        guard=h.guard,
        step=h.step,
        sums=sums,
        timer=h.timer,
    )
    sync_engine(learner, h)
    return stats


def loss_mask(batch: RolloutBatch, algo: Algorithm, keep: torch.Tensor | None) -> torch.Tensor:
    """[N, T] float: the response tokens the loss sees (minus truncated answers if the algorithm
    masks them, minus the samples dynamic sampling dropped)."""
    mask = batch.response_mask.float()
    if algo.mask_truncated_completions:
        mask = mask * (~batch.truncated).float().unsqueeze(-1)
    if keep is not None:
        mask = mask * keep.float().unsqueeze(-1)
    return mask


def minibatch_normalisers(
    learner: Learner,
    h: StepHandles,
    batch: RolloutBatch,
    mask: torch.Tensor,
    rows: torch.Tensor,
    keep: torch.Tensor | None,
    tokens_batch: float,
) -> dict[str, float]:
    """The loss normalisers of one minibatch, global over its micro-batches and the ranks."""
    norms = {
        "num_seqs": h.ranks.global_norm(len(rows) if keep is None else max(float(keep[rows].sum()), 1e-8)),
        "num_tokens": h.ranks.global_norm(
            float(mask[rows].sum()) if keep is None else max(float(mask[rows].sum()), 1e-8)
        ),
        "num_tokens_batch": tokens_batch,
        "max_new_tokens": learner.cfg.rollout.max_new_tokens,
    }
    for key, local in learner.algo.minibatch_normalisers(batch, mask, rows).items():
        norms[key] = h.ranks.global_norm(local)
    return norms


def micro_loss(
    learner: Learner,
    h: StepHandles,
    batch: RolloutBatch,
    adv: Advantages,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    sub: torch.Tensor,
    norms: dict[str, float],
    on_policy: bool,
    parity: Parity | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The algorithm's loss on the micro-batch `sub`: log-probs (with grad) -> `LossInputs` -> `algo.loss`."""
    algo, dev, cfg = learner.algo, h.device, learner.cfg
    pc, rc = micro_columns(batch, sub, trim=cfg.optim.micro_batch_tokens > 0)

    def take(x: torch.Tensor) -> torch.Tensor:  # a [N, T] tensor's rows of `sub`, columns of its responses
        return x[sub][:, rc].to(dev)

    entropy_coef = float(getattr(algo, "entropy_coef", 0.0) or 0.0)
    forward = distinct_logprobs if cfg.optim.dedup_sequences else response_logprobs
    out = forward(
        learner.policy,
        batch.prompt_ids[sub][:, pc].to(dev),
        batch.prompt_mask[sub][:, pc].to(dev),
        take(batch.response_ids),
        take(batch.response_mask),
        temperature=cfg.rollout.temperature,
        with_entropy=True,
        entropy_grad=algo.needs_entropy_grad or entropy_coef > 0,
        with_hidden=learner.value_head is not None,
        chunk_size=cfg.model.logit_chunk_size,
    )
    if parity is not None:  # before the first optimiser step: sampler and trainer hold the same weights
        parity.add(take(batch.old_logprobs), out.logprobs.detach(), take(sampled_mask(batch, mask)))
    old = out.logprobs.detach() if on_policy else take(batch.old_logprobs)
    if batch.trainer_logprobs is not None:  # rollout.recompute_old_logprobs
        old = take(batch.trainer_logprobs)
    value_now = returns = old_values = None
    if learner.value_head is not None:
        value_now = learner.value_head(out.hidden).squeeze(-1)
        returns = take(adv.returns) if adv.returns is not None else None
        old_values = take(values) if values is not None else None
    inp = LossInputs(
        logprobs=out.logprobs,
        mask=take(mask),
        old_logprobs=old,
        ref_logprobs=take(batch.ref_logprobs) if batch.ref_logprobs is not None else None,
        advantages=take(adv.tokens),
        entropy=out.entropy,
        values=value_now,
        returns=returns,
        old_values=old_values,
        control_pos=batch.control_pos[sub].to(dev) if batch.control_pos is not None else None,
        **norms,
    )
    return algo.loss(inp)
