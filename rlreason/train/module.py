"""The LightningModule: adapts Lightning's hooks to the step functions (`train/step.py`,
`train/sft_step.py`), keeps checkpoint state beyond parameters and optimiser, and writes the
step's metrics.

Optimisation is manual (`automatic_optimization = False`): one RL step performs
`StepSettings.updates_per_step` optimiser updates, written out in `rl_step`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from rlreason.algos.base import Algorithm
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.distributed import RankReducer
from rlreason.policy.control_tokens import ControlTokens
from rlreason.policy.prompt_encoder import PromptEncoder
from rlreason.policy.rollout import SamplingParams, build_backend
from rlreason.policy.samplers import build_sampler
from rlreason.rewards.base import Reward
from rlreason.tasks.base import Problem
from rlreason.train import faults
from rlreason.train.faults import NonFiniteError, NonFiniteGuard
from rlreason.train.loggers import log_scalars
from rlreason.train.metrics import Metric, reduce_metrics
from rlreason.train.optim import build_optimizer, build_scheduler
from rlreason.train.parity import ParityMonitor
from rlreason.train.precision import compute_dtype, disable_dropout
from rlreason.train.resume import capture_rng_state, restore_rng_state
from rlreason.train.sft_step import sft_step
from rlreason.train.step import Learner, StepHandles, rl_step, step_settings
from rlreason.verify.task_verifier import TaskVerifier


class RLModule(pl.LightningModule):
    def __init__(
        self,
        cfg: DictConfig,
        policy: torch.nn.Module,
        tokenizer: Any,
        control: ControlTokens | None,
        algo: Algorithm,
        reward: Reward | None,
        verifier: TaskVerifier | None = None,
        ref_policy: torch.nn.Module | None = None,
        answer_cue: str = "",
        format_prompt: Any = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.policy = policy  # a submodule: trained, checkpointed
        hidden = getattr(policy.config, "hidden_size", None)
        self.value_head = algo.value_head(hidden) if algo.needs_values and hidden else None
        r = cfg.rollout
        keep_cache = reward is not None and reward.reads_decode_state  # a reward that reads the rollout's KV cache
        self.learner = Learner(
            settings=step_settings(cfg, algo),
            policy=policy,
            tokenizer=tokenizer,
            control=control,
            algo=algo,
            reward=reward,
            verifier=verifier,
            prompts=PromptEncoder(tokenizer, format_prompt, chat_template=cfg.model.use_chat_template),
            backend=build_backend(
                r.backend,
                [tokenizer.eos_token_id],
                tokenizer.pad_token_id,
                r.batch_size,
                keep_cache,
                engine=dict(r.vllm),
                model_dtype=cfg.model.dtype,
            ),
            sampler=build_sampler(r.sampler, r.sampler_share),
            sampling=SamplingParams(
                max_new_tokens=r.max_new_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                top_k=r.top_k,
                stop_on_eos=r.stop_on_eos,
            ),
            value_head=self.value_head,
            ref_policy=ref_policy,  # not a submodule: no grads, not in the checkpoint
            answer_cue=answer_cue,
        )
        self.guard = NonFiniteGuard(self.learner.settings.max_nonfinite_in_a_row)
        self.parity = ParityMonitor()
        self._step = 0
        self._rng_to_restore: Any = None
        self.last_batch: RolloutBatch | None = None  # for the sample-text callback
        self.last_reward: RewardOutput | None = None

    @property
    def tokenizer(self) -> Any:  # the checkpoint callback saves it next to the policy
        return self.learner.tokenizer

    # -- setup --------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.policy.train()
        learner = self.learner
        ref = learner.ref_policy
        if ref is not None:
            # frozen: no master-weight concern, so it lives in the compute dtype (half the memory in bf16)
            ref.to(self.device, dtype=compute_dtype(self.cfg.model.dtype)).eval().requires_grad_(False)
        if self.cfg.model.disable_dropout:
            for model in (self.policy, ref):
                if model is not None:
                    disable_dropout(model)
        reward = learner.reward
        if reward is not None and reward.needs_initial_params and learner.initial_params is None:
            learner.initial_params = {n: p.detach().clone() for n, p in self.policy.named_parameters()}

    def configure_optimizers(self):
        params = list(self.policy.parameters())
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        opt = build_optimizer(params, self.cfg.optim)
        s = self.learner.settings
        sched = build_scheduler(opt, self.cfg.optim, s.steps * s.updates_per_step)
        return [opt], [{"scheduler": sched, "interval": "step"}]

    # -- checkpoint state beyond parameters and optimiser (see rlreason/train/resume.py) -------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rlreason"] = {
            "rng": capture_rng_state(),
            "nonfinite_in_a_row": self.guard.in_a_row,
            "nonfinite_total": self.guard.total,
            # info-gain's theta_ref: the parameters at the start of the run, not at the resumed step
            "initial_params": self.learner.initial_params,
            # what the tensors in this file are: fp32 master weights and optimiser state, whatever
            # model.dtype (the compute dtype) says
            "dtypes": {
                "master_weights": str(next(self.policy.parameters()).dtype).removeprefix("torch."),
                "optimizer_state": "float32",
                "compute": str(self.cfg.model.dtype),
                "precision": str(self.trainer.precision) if self._trainer is not None else None,
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("rlreason", {})
        self.guard.in_a_row = int(state.get("nonfinite_in_a_row", 0))
        self.guard.total = int(state.get("nonfinite_total", 0))
        if state.get("initial_params") is not None:
            self.learner.initial_params = state["initial_params"]
        self._rng_to_restore = state.get("rng")

    def on_train_start(self) -> None:
        # restored here, not in on_load_checkpoint, so that nothing between loading and the first
        # resumed step (data loader and optimiser set-up) draws from the restored streams
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, problems: list[Problem], batch_idx: int) -> None:
        t0 = time.perf_counter()
        self._step = batch_idx  # 0-based; a resumed run continues the count
        trainer = self._trainer
        handles = StepHandles(
            step=batch_idx,
            device=self.device,
            backward=self.manual_backward,
            optimizer=self.optimizers(),
            scheduler=self.lr_schedulers(),
            ranks=RankReducer(trainer.world_size, trainer.global_rank) if trainer is not None else RankReducer(1, 0),
            parity=self.parity,
            run_dir=getattr(trainer, "default_root_dir", None) if trainer is not None else None,
            is_global_zero=trainer is None or trainer.is_global_zero,
        )
        learner = self.learner
        if faults.active("nan_loss", batch_idx + 1):  # the reliability tests' failpoints
            learner = dataclasses.replace(learner, algo=faults.nan_loss(learner.algo))
        if faults.active("skip_sync", batch_idx + 1):
            learner = dataclasses.replace(learner, backend=faults.stale_sync(learner.backend))
        step = rl_step if learner.algo.needs_rollout else sft_step
        result = step(learner, handles, problems)
        if result.batch is not None:
            self.last_batch, self.last_reward = result.batch, result.reward
        metrics = dict(result.metrics)
        metrics["perf/step_time"] = time.perf_counter() - t0
        if "perf/tokens" in metrics:
            metrics["perf/tokens_per_sec"] = metrics.pop("perf/tokens") / metrics["perf/step_time"]
        stop = self.guard.end_step(batch_idx, result.skipped, result.skip_cause)
        metrics["faults/nonfinite_total"] = float(self.guard.total)
        self._log_metrics(metrics)
        if stop is not None:  # run.py saves the last good state under this step count
            raise NonFiniteError(stop, steps_done=batch_idx)

    # -- logging ------------------------------------------------------------------------------
    def _log_metrics(self, metrics: dict[str, Metric]) -> None:
        """Reduce over ranks and write to every logger at x = step (see rlreason/train/metrics.py)."""
        every = max(1, int(self.cfg.logging.every_n_steps))
        if self._step % every:
            return
        world = self._trainer.world_size if self._trainer is not None else 1
        reduced = reduce_metrics({k: v for k, v in metrics.items() if v is not None}, world)
        trainer = self._trainer
        if trainer is not None and trainer.is_global_zero:  # every configured logger (loggers.py)
            log_scalars(trainer, reduced, self._step)
        prog = ("train/reward_mean", "train/accuracy", "train/loss", "mode/think_ratio")
        for k in prog:  # the progress bar only; already reduced, so no sync
            if k in reduced:
                self.log(k, reduced[k], prog_bar=True, logger=False, on_step=True, on_epoch=False, batch_size=1)
