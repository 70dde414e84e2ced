"""The training loop's side of a rollout engine that keeps its own copy of the weights (vLLM), and
the sampler/trainer correction.

- `sync_engine`, right after every optimiser update: pushes the weights and the policy version (the
  optimiser step count) into the engine, timed as `perf/weight_sync_time`. A backend without its
  own copy (`hf` samples from the live policy) has no `sync` and nothing happens.
- `sampled_mask`: the tokens the parity metric compares (not a mode sampler's forced first token).
- `correct_rollout`, once per step before the update: with `rollout.recompute_old_logprobs` (or an
  importance-sampling correction, which needs them) the trainer's own log-probs of the sampled
  tokens are computed in one no-grad pass and used as pi_old in the ratio; with
  `rollout.is_correction` the token advantages are multiplied by the truncated / masked importance
  weights pi_old / pi_sampler (rlreason/algos/rollout_correction.py), logged as `rollout_is/*`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from rlreason.algos.base import Advantages
from rlreason.algos.rollout_correction import correction_metrics, importance_weights
from rlreason.batch import RolloutBatch
from rlreason.train import faults
from rlreason.train.passes import sequence_logprobs


def policy_version(h: Any) -> int:
    """The optimiser step count (LambdaLR's `last_epoch`, restored on resume)."""
    return int(getattr(h.scheduler, "last_epoch", 0))


def note_version(learner: Any, h: Any) -> None:
    """Before a rollout: the version an engine built now (first step, resumed run) starts at."""
    if hasattr(learner.backend, "sync") and hasattr(learner.backend, "version") and learner.backend.version == 0:
        learner.backend.version = policy_version(h)


def sync_engine(learner: Any, h: Any) -> None:
    """Push the policy's weights into the rollout engine after an optimiser update."""
    sync = getattr(learner.backend, "sync", None)
    if sync is None or faults.active("skip_sync", h.step + 1):
        return
    with h.timer("weight_sync"):
        sync(learner.policy, policy_version(h))


def sampled_mask(batch: RolloutBatch, mask: torch.Tensor) -> torch.Tensor:
    """[N, T] `mask` without the first tokens a mode sampler forced: their recorded log-prob is the
    proposal's, log pi_IS, not the sampler's log pi, so they are no evidence of a sampler/trainer gap."""
    if batch.forced_mode is None or mask.shape[1] == 0:
        return mask
    out = mask.clone()
    out[:, 0] = 0
    return out


def correct_rollout(learner: Any, h: Any, batch: RolloutBatch, adv: Advantages) -> tuple[Advantages, dict[str, float]]:
    """(advantages, metrics) after the configured correction; `batch.trainer_logprobs` is set when
    the trainer's pi_old is recomputed."""
    r = learner.cfg.rollout
    mode, cap = str(r.get("is_correction", "none")), float(r.get("is_cap", 2.0))
    if mode == "none" and not bool(r.get("recompute_old_logprobs", False)):
        return adv, {}
    cfg = learner.cfg
    with h.timer("recompute_old"):
        trainer = sequence_logprobs(
            learner.policy,
            batch,
            micro_batch_size=cfg.optim.micro_batch_size,
            temperature=r.temperature,
            chunk_size=cfg.model.logit_chunk_size,
            device=h.device,
            distinct=cfg.optim.dedup_sequences,
        ).float()  # [N, T]
    if batch.forced_mode is not None:  # a forced first token keeps its proposal log-prob (policy/samplers.py)
        trainer[:, 0] = batch.old_logprobs[:, 0].float()
    batch.trainer_logprobs = trainer
    mask = sampled_mask(batch, batch.response_mask.float())  # [N, T]
    weights = importance_weights(trainer, batch.old_logprobs.float(), mask, mode, cap)  # [N, T]
    metrics = correction_metrics(weights, trainer, batch.old_logprobs.float(), mask, mode, cap)
    if mode == "none":
        return adv, {k: v for k, v in metrics.items() if "kl" in k}
    return replace(adv, tokens=adv.tokens * weights.to(adv.tokens.dtype)), metrics
