"""One RL training step, read top to bottom in `rl_step`:

    problems -> rollout (G samples each) -> verify -> [reference log-probs] -> reward -> advantages
             -> [the trainer's pi_old, importance weights: when another engine sampled]
             -> num_iterations x minibatches x micro-batches of (log-probs -> algo.loss -> backward)
             -> clip, optimizer.step(), scheduler.step() once per minibatch
             -> [weight sync into a backend that holds its own copy] -> metrics

`Learner` holds what a run builds once (policy, algorithm, reward, verifier, rollout backend and the
resolved `StepSettings`), `StepHandles` what the trainer lends one step (backward, optimiser,
scheduler, rank reductions). The step returns its metrics as values (`StepResult`); the
LightningModule (`train/module.py`) adapts Lightning's hooks to this function and `sft_step`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from rlreason.algos.base import Advantages, Algorithm, LossInputs
from rlreason.algos.rollout_correction import correction_metrics, importance_weights
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.distributed import RankReducer
from rlreason.policy.control_tokens import ControlTokens
from rlreason.policy.decode_state import DecodeState
from rlreason.policy.lora import adapters_disabled, is_lora
from rlreason.policy.prompt_encoder import PromptEncoder
from rlreason.policy.rollout import RolloutBackend, SamplingParams
from rlreason.policy.samplers import ModeSampler
from rlreason.rewards.base import Reward, RewardContext
from rlreason.tasks.base import Problem
from rlreason.train.collect import collect_rollout
from rlreason.train.forward import critic_values, distinct_logprobs, response_logprobs, sequence_logprobs
from rlreason.train.metrics import Metric, PhaseTimer, mode_metrics, rollout_metrics
from rlreason.train.micro_batches import micro_batches, micro_columns, micro_slices
from rlreason.train.parity import Parity, ParityMonitor
from rlreason.verify.task_verifier import TaskVerifier


@dataclass(frozen=True)
class StepSettings:
    """What a step reads from the config, resolved once per run (`step_settings`)."""

    seed: int
    steps: int  # optim.steps: the run's length (reward schedules read it)
    group_size: int
    max_new_tokens: int
    temperature: float  # the trainer's log-probs are those of softmax(logits / T), as sampled
    micro_batch_size: int  # 0: a minibatch in one micro-batch
    micro_batch_tokens: int  # > 0: micro-batches packed to this many padded tokens (micro_batches.py)
    minibatches: int  # optimiser updates per pass over the rollout batch
    num_iterations: int  # passes over the rollout batch (the algorithm's)
    chunk_size: int  # model.logit_chunk_size
    dedup: bool  # optim.dedup_sequences: forward each distinct (prompt, response) once
    max_grad_norm: float  # <= 0: no clipping
    max_nonfinite_in_a_row: int
    recompute_old_logprobs: bool  # pi_old from a trainer pass, not the sampler's log-probs
    is_correction: str  # none | token_truncate | token_mask | sequence_truncate | sequence_mask
    is_cap: float

    @property
    def updates_per_step(self) -> int:
        """Optimiser updates of one RL step: the scheduler's unit and the loop's count."""
        return self.num_iterations * self.minibatches


def step_settings(cfg: DictConfig, algo: Algorithm) -> StepSettings:
    optim = cfg.optim
    rl = algo.needs_rollout
    return StepSettings(
        seed=int(cfg.seed),
        steps=int(optim.steps),
        group_size=int(cfg.rollout.group_size),
        max_new_tokens=int(cfg.rollout.max_new_tokens),
        temperature=float(cfg.rollout.temperature),
        micro_batch_size=int(optim.micro_batch_size),
        micro_batch_tokens=int(optim.micro_batch_tokens),
        minibatches=int(optim.minibatches) if rl else 1,
        num_iterations=int(algo.num_iterations) if rl else 1,
        chunk_size=int(cfg.model.logit_chunk_size),
        dedup=bool(optim.dedup_sequences),
        max_grad_norm=float(optim.max_grad_norm),
        max_nonfinite_in_a_row=int(optim.max_nonfinite_in_a_row),
        recompute_old_logprobs=bool(cfg.rollout.recompute_old_logprobs),
        is_correction=str(cfg.rollout.is_correction),
        is_cap=float(cfg.rollout.is_cap),
    )


@dataclass
class Learner:
    """What every step of a run works with, built once by the LightningModule."""

    settings: StepSettings
    policy: torch.nn.Module
    tokenizer: Any  # a transformers tokenizer
    control: ControlTokens | None
    algo: Algorithm
    reward: Reward | None
    verifier: TaskVerifier | None
    prompts: PromptEncoder
    backend: RolloutBackend  # `rollout.backend` (`rlreason.registry.ROLLOUT_BACKENDS`)
    sampler: ModeSampler | None  # forces each sample's first token (rollout.sampler), or None
    sampling: SamplingParams
    value_head: torch.nn.Module | None = None
    ref_policy: torch.nn.Module | None = None  # frozen reference (beta > 0; LoRA: the adapters disabled)
    initial_params: dict[str, torch.Tensor] | None = None  # theta_ref, for rewards that need it
    answer_cue: str = ""


@dataclass
class StepHandles:
    """What the trainer lends one step."""

    step: int  # 0-based; a resumed run continues the count
    device: torch.device
    backward: Callable[[torch.Tensor], None]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ranks: RankReducer
    parity: ParityMonitor
    run_dir: str | None = None
    is_global_zero: bool = True


@dataclass
class StepResult:
    metrics: dict[str, Metric]
    skipped: int = 0  # optimiser updates (or, for a non-finite reward, the whole step) skipped
    skip_cause: str | None = None  # "reward" | "loss" | "grad": what the last skip was for
    batch: RolloutBatch | None = None  # kept for the sample-text callback
    reward: RewardOutput | None = None


FAULTS = ("reward", "loss", "grad")


def fault_metrics(counts: dict[str, int]) -> dict[str, Metric]:
    """`faults/nonfinite_{reward,loss,grad}`: the step's skipped updates by cause, written every step."""
    return {f"faults/nonfinite_{k}": float(counts.get(k, 0)) for k in FAULTS}


# -- the RL step ----------------------------------------------------------------------------------


def rl_step(learner: Learner, h: StepHandles, problems: list[Problem]) -> StepResult:
    s, algo, policy, backend = learner.settings, learner.algo, learner.policy, learner.backend
    timer = PhaseTimer()
    if backend.holds_weights and backend.version != h.scheduler.last_epoch:  # first step, resumed run
        with timer("weight_sync"):
            backend.sync(policy, h.scheduler.last_epoch)
    with timer("rollout"):
        batch, decode_state = rollout(learner, h, problems)
    with timer("verify"):
        correct, answered = verify(learner, batch)
    ref_logprobs = None
    if algo.beta > 0:
        with timer("reference"):
            ref_logprobs = reference_logprobs(learner, h, batch)
    with timer("reward"):
        reward = score(learner, h, batch, decode_state, correct, answered)
    del decode_state  # the rollout's KV cache served the reward only
    metrics = rollout_metrics(batch, reward, correct, learner.control)
    metrics.update(batch.rollout_metrics)
    if h.ranks.sum(float(not torch.isfinite(reward.rewards).all())) > 0:  # every rank skips together
        metrics.update(fault_metrics({"reward": 1}))
        return StepResult({**metrics, **timer.metrics()}, 1, "reward", batch, reward)
    values = None
    if learner.value_head is not None:
        with timer("values"):
            head = learner.value_head
            values = critic_values(policy, head, batch, s.micro_batch_size, s.chunk_size, h.device, s.dedup)
    with timer("advantages"):
        adv = algo.advantages(batch, reward, values)
    metrics.update({f"algo/{k}": float(v) for k, v in adv.metrics.items()})
    if learner.control is not None:
        metrics.update(mode_metrics(batch, correct, adv.tokens))
    old_logprobs = None  # [N, T] the trainer's own pi_old, when the sampler's is not trusted (another engine)
    if s.recompute_old_logprobs or s.is_correction != "none":
        with timer("recompute_old"):
            old_logprobs = trainer_old_logprobs(learner, h, batch)
        sampler, drawn = batch.old_logprobs, batch.sampled_mask  # [N, T], [N, T]
        weights = importance_weights(old_logprobs, sampler, batch.response_mask, s.is_correction, s.is_cap)
        gap = correction_metrics(weights, old_logprobs, sampler, drawn, s.is_correction, s.is_cap)
        metrics.update(gap if s.is_correction != "none" else {k: v for k, v in gap.items() if "/kl_" in k})
        if s.is_correction != "none":  # TIS / MIS: each token's advantage weighted by pi_old / pi_sampler
            adv = dataclasses.replace(adv, tokens=adv.tokens * weights.to(adv.tokens.dtype))
    if adv.keep is not None and h.ranks.sum(float(adv.keep.sum())) == 0:  # dynamic sampling left nothing
        metrics.update({**fault_metrics({}), **timer.metrics(), "algo/ds_skipped_step": 1.0})
        return StepResult(metrics, 0, None, batch, reward)

    # -- the update: num_iterations x minibatches optimiser steps, each over its micro-batches --------
    mask = loss_mask(batch, algo, adv.keep)  # [N, T]
    n = batch.num_samples
    minibatches = [torch.arange(n)[mb] for mb in micro_slices(n, n // s.minibatches)]  # validation: it divides
    on_policy = s.updates_per_step == 1  # pi_old is the pi_theta of the forward
    tokens_batch = h.ranks.global_norm(float(mask.sum()))
    params = [p for g in h.optimizer.param_groups for p in g["params"]]
    parity: Parity | None = Parity()  # sampler vs trainer, on the first minibatch: before any update
    parity_metrics: dict[str, float] = {}
    loss_metrics: dict[str, float] = defaultdict(float)  # summed over every micro-batch of the step
    grad_norms: list[float] = []
    skipped: dict[str, int] = defaultdict(int)
    skip_cause: str | None = None
    for _ in range(s.num_iterations):
        for rows in minibatches:
            norms = minibatch_normalisers(learner, h, batch, mask, rows, adv.keep, tokens_batch)
            finite_loss = True
            with timer("forward_backward"):
                for sub in micro_batches(batch, rows, s.micro_batch_size, s.micro_batch_tokens):
                    inp = loss_inputs(learner, h, batch, old_logprobs, ref_logprobs, adv, values, mask, sub, norms,
                                      on_policy, parity)  # fmt: skip
                    loss, stats = algo.loss(inp)
                    finite_loss &= bool(torch.isfinite(loss.detach()))
                    h.backward(loss)  # also on a non-finite loss: every DDP rank must reduce
                    for k, v in stats.items():
                        loss_metrics[k] += float(v)
                    loss_metrics["loss"] += float(loss.detach())
            with timer("optimizer"):
                norm = torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm if s.max_grad_norm > 0 else float("inf"))
                if finite_loss and torch.isfinite(norm):  # a NaN gradient makes every rank skip together
                    h.optimizer.step()
                    h.scheduler.step()
                    grad_norms.append(float(norm))
                else:
                    skip_cause = "grad" if finite_loss else "loss"
                    skipped[skip_cause] += 1
                h.optimizer.zero_grad(set_to_none=True)
            if parity is not None:
                parity_metrics = h.parity.metrics(parity, h.ranks, h.step, warn=h.is_global_zero)
                parity = None
    if backend.holds_weights and grad_norms:  # the engine samples the next rollout from its own copy
        with timer("weight_sync"):
            backend.sync(policy, h.scheduler.last_epoch)  # version: the optimiser step count

    metrics.update({f"algo/{k}": v / s.updates_per_step for k, v in loss_metrics.items()})
    metrics.update(parity_metrics)
    if grad_norms:
        metrics["optim/grad_norm"] = sum(grad_norms) / len(grad_norms)
    metrics["optim/lr"] = float(h.optimizer.param_groups[0]["lr"])
    metrics["perf/tokens"] = float(batch.response_mask.sum())
    metrics.update(fault_metrics(skipped))
    metrics.update(timer.metrics())
    return StepResult(metrics, sum(skipped.values()), skip_cause, batch, reward)


# -- the stages -----------------------------------------------------------------------------------


def rollout(learner: Learner, h: StepHandles, problems: list[Problem]) -> tuple[RolloutBatch, DecodeState | None]:
    """G samples per problem, seeded per (seed, step, problem, sample): any rank layout gives the same
    batch; with the rollout's KV cache when the reward reads it."""
    return collect_rollout(
        learner.policy,
        learner.tokenizer,
        learner.backend,
        problems,
        [learner.prompts(p) for p in problems],
        learner.sampling,
        group_size=learner.settings.group_size,
        seed=learner.settings.seed,
        step=h.step,
        control=learner.control,
        group_offset=h.ranks.rank * len(problems),
        sampler=learner.sampler,
    )


def verify(learner: Learner, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """[N] bool `correct` and `answered` (an answer could be extracted at all), one extraction per sample."""
    assert learner.verifier is not None
    judgement = learner.verifier.judge(batch.completions, batch.golds)
    return torch.tensor(judgement.correct, dtype=torch.bool), torch.tensor(judgement.answered, dtype=torch.bool)


def reference_logprobs(learner: Learner, h: StepHandles, batch: RolloutBatch) -> torch.Tensor:
    """[N, T] log-probs under the frozen reference (LoRA: the base model under the adapters)."""
    s = learner.settings
    kwargs = dict(
        micro_batch_size=s.micro_batch_size,
        temperature=s.temperature,
        chunk_size=s.chunk_size,
        device=h.device,
        distinct=s.dedup,
    )
    if learner.ref_policy is None and is_lora(learner.policy):
        with adapters_disabled(learner.policy) as base:
            return sequence_logprobs(base, batch, **kwargs)
    assert learner.ref_policy is not None, "beta > 0 needs a reference model"
    return sequence_logprobs(learner.ref_policy, batch, **kwargs)


def score(
    learner: Learner,
    h: StepHandles,
    batch: RolloutBatch,
    decode_state: DecodeState | None,
    correct: torch.Tensor,
    answered: torch.Tensor,
) -> RewardOutput:
    """The configured reward of every sample (float rewards; process rewards also per episode)."""
    assert learner.reward is not None
    control = learner.control
    ctx = RewardContext(
        correct=correct,
        answered=answered,
        policy=learner.policy,
        tokenizer=learner.tokenizer,
        initial_params=learner.initial_params,
        max_new_tokens=learner.settings.max_new_tokens,
        step=h.step,
        max_steps=learner.settings.steps,
        control=control,
        verifier=learner.verifier,
        run_dir=h.run_dir,
        control_ids=control.ids if control is not None else {},
        answer_cue=learner.answer_cue,
        canonicalize=control.canonicalize if control is not None else None,
        decode_state=decode_state,
    )
    out = learner.reward(batch, ctx)
    out.rewards = out.rewards.float()
    return out


def trainer_old_logprobs(learner: Learner, h: StepHandles, batch: RolloutBatch) -> torch.Tensor:
    """[N, T] the trainer's log-probs of the sampled tokens before any update (its own pi_old); a mode
    sampler's forced first token keeps its recorded proposal log-prob (`policy/samplers.py`)."""
    s = learner.settings
    kwargs = dict(micro_batch_size=s.micro_batch_size, temperature=s.temperature, chunk_size=s.chunk_size)
    out = sequence_logprobs(learner.policy, batch, **kwargs, device=h.device, distinct=s.dedup).float()
    if batch.forced_mode is not None:
        out[:, 0] = batch.old_logprobs[:, 0].float()
    return out


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
        "max_new_tokens": learner.settings.max_new_tokens,
    }
    for key, local in learner.algo.minibatch_normalisers(batch, mask, rows).items():
        norms[key] = h.ranks.global_norm(local)
    return norms


def loss_inputs(
    learner: Learner,
    h: StepHandles,
    batch: RolloutBatch,
    old_logprobs: torch.Tensor | None,
    ref_logprobs: torch.Tensor | None,
    adv: Advantages,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    sub: torch.Tensor,
    norms: dict[str, float],
    on_policy: bool,
    parity: Parity | None,
) -> LossInputs:
    """What `algo.loss` reads for the micro-batch `sub`: its log-probs (with grad) under the policy, and
    the batch's old / reference log-probs, advantages and values at its rows and columns."""
    s, algo, dev = learner.settings, learner.algo, h.device
    pc, rc = micro_columns(batch, sub, trim=s.micro_batch_tokens > 0)

    def take(x: torch.Tensor) -> torch.Tensor:  # a [N, T] tensor's rows of `sub`, columns of its responses
        return x[sub][:, rc].to(dev)

    forward = distinct_logprobs if s.dedup else response_logprobs
    out = forward(
        learner.policy,
        batch.prompt_ids[sub][:, pc].to(dev),
        batch.prompt_mask[sub][:, pc].to(dev),
        take(batch.response_ids),
        take(batch.response_mask),
        temperature=s.temperature,
        with_entropy=True,
        entropy_grad=algo.needs_entropy_grad,
        with_hidden=learner.value_head is not None,
        chunk_size=s.chunk_size,
    )
    if parity is not None:  # before the first optimiser step: sampler and trainer hold the same weights
        parity.add(take(batch.old_logprobs), out.logprobs.detach(), take(mask * batch.sampled_mask))
    if old_logprobs is not None:  # the trainer's own pi_old (rollout.recompute_old_logprobs)
        old = take(old_logprobs)
    elif on_policy:  # pi_old is this forward's pi_theta, except a forced first token's: its proposal's
        old = out.logprobs.detach()
        if batch.forced_mode is not None:  # ratio pi_theta / pi_IS (AdaptThink; policy/samplers.py)
            old = torch.cat([take(batch.old_logprobs)[:, :1], old[:, 1:]], dim=1)
    else:
        old = take(batch.old_logprobs)
    value_now = returns = old_values = None
    if learner.value_head is not None:
        value_now = learner.value_head(out.hidden).squeeze(-1)
        returns = take(adv.returns) if adv.returns is not None else None
        old_values = take(values) if values is not None else None
    return LossInputs(
        logprobs=out.logprobs,
        mask=take(mask),
        old_logprobs=old,
        ref_logprobs=take(ref_logprobs) if ref_logprobs is not None else None,
        advantages=take(adv.tokens),
        entropy=out.entropy,
        values=value_now,
        returns=returns,
        old_values=old_values,
        control_pos=batch.control_pos[sub].to(dev) if batch.control_pos is not None else None,
        **norms,
    )
