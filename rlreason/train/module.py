"""One LightningModule that runs any registered (reward, algorithm) pair.

An RL step (DESIGN.md section 3):

    problems -> rollout (G samples each) -> verifier -> reward -> algo.advantages
             -> num_iterations x minibatches x micro-batches of (log-probs -> algo.loss -> backward)
             -> optimiser step per minibatch -> metrics

A supervised algorithm (`needs_rollout = False`, e.g. SFT) gets the problems' target responses
instead of a rollout and goes through the same forward and loss path.

Optimisation is manual (`automatic_optimization = False`) because one RL step performs several
optimiser steps. Loss normalisers are reduced across DDP ranks and divided by the world size, so
the gradient DDP averages equals the gradient of one process holding the whole global batch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytorch_lightning as pl
import torch

from rlreason.algos.base import Algorithm, LossInputs
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import RLReasonError
from rlreason.policy.lora import adapters_disabled, is_lora
from rlreason.policy.rollout import SamplingParams, left_pad
from rlreason.rewards.base import Reward, RewardContext
from rlreason.tasks.base import Problem
from rlreason.train import faults
from rlreason.train.collect import collect_rollout
from rlreason.train.forward import response_logprobs
from rlreason.train.optim import build_optimizer, build_scheduler
from rlreason.train.parity import Parity, parity_jump
from rlreason.train.precision import compute_dtype, disable_dropout
from rlreason.train.step_metrics import Metric, Ratio, reduce_metrics


class NonFiniteError(RLReasonError):
    """Too many consecutive non-finite updates: the run stops on the last good state (exit status 3)."""

    exit_code = 3


def _chunks(n: int, size: int) -> list[slice]:
    size = size or n
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


class RLModule(pl.LightningModule):
    def __init__(
        self,
        cfg: Any,
        policy: torch.nn.Module,
        tokenizer: Any,
        control: Any,
        algo: Algorithm,
        reward: Reward | None,
        verifier: Any = None,
        ref_policy: torch.nn.Module | None = None,
        answer_cue: str = "",
        format_prompt: Any = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.cfg = cfg
        self.policy = policy
        self.tokenizer = tokenizer
        self.control = control
        self.algo = algo
        self.reward = reward
        self.verifier = verifier
        self.answer_cue = answer_cue
        self._format_prompt = format_prompt or (lambda text: text)
        self._frozen: dict[str, Any] = {"ref": ref_policy, "initial": None}  # not submodules: no grads, no ckpt
        hidden = getattr(policy.config, "hidden_size", None)
        head = algo.value_head(hidden) if algo.needs_values and hidden else None
        self.value_head = head
        self._prompt_cache: dict[str, list[int]] = {}
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self._step, self._step_fault = 0, None
        self.max_nonfinite_in_a_row = int(getattr(cfg.optim, "max_nonfinite_in_a_row", 3) or 3)
        self.sampling = SamplingParams(
            max_new_tokens=cfg.rollout.max_new_tokens,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
            stop_on_eos=cfg.rollout.stop_on_eos,
        )
        from rlreason.policy.rollout import BACKENDS

        eos = [tokenizer.eos_token_id] + [t for t in getattr(control, "extra_eos_ids", []) or []]
        self.backend = BACKENDS[cfg.rollout.backend](eos, tokenizer.pad_token_id, cfg.rollout.batch_size)
        from rlreason.policy.samplers import build_sampler

        self.sampler = build_sampler(cfg.rollout)  # None unless rollout.sampler forces modes
        self._parity: Parity | None = None  # sampler-vs-trainer log-prob gap of the step (before its first update)
        self._parity_history: list[float] = []
        self.last_batch: RolloutBatch | None = None  # for callbacks (sample text)
        self.last_reward: RewardOutput | None = None

    # -- setup --------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.policy.train()
        ref = self._frozen["ref"]
        if ref is not None:
            # frozen: no master-weight concern, so it lives in the compute dtype (half the memory in bf16)
            ref.to(self.device, dtype=compute_dtype(self.cfg.model.dtype)).eval().requires_grad_(False)
        if getattr(self.cfg.model, "disable_dropout", True):
            for model in (self.policy, ref):
                if model is not None:
                    disable_dropout(model)
        needs_snapshot = self.reward is not None and getattr(self.reward, "needs_initial_params", False)
        if needs_snapshot and self._frozen["initial"] is None:
            self._frozen["initial"] = {n: p.detach().clone() for n, p in self.policy.named_parameters()}

    # -- checkpoint state beyond parameters and optimiser (see rlreason/train/resume.py) -------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from rlreason.train.resume import capture_rng_state

        checkpoint["rlreason"] = {
            "rng": capture_rng_state(),
            "nonfinite_in_a_row": self.nonfinite_in_a_row,
            "nonfinite_total": self.nonfinite_total,
            # info-gain's theta_ref: the parameters at the start of the run, not at the resumed step
            "initial_params": self._frozen["initial"],
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
        self.nonfinite_in_a_row = int(state.get("nonfinite_in_a_row", 0))
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        if state.get("initial_params") is not None:
            self._frozen["initial"] = state["initial_params"]
        self._rng_to_restore = state.get("rng")

    def on_train_start(self) -> None:
        # restored here, not in on_load_checkpoint, so that nothing between loading and the first
        # resumed step (data loader and optimiser set-up) draws from the restored streams
        from rlreason.train.resume import restore_rng_state

        if getattr(self, "_rng_to_restore", None) is not None:
            restore_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def configure_optimizers(self):
        params = list(self.policy.parameters())
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        opt = build_optimizer(params, self.cfg.optim)
        per_step = self.algo.num_iterations * self.cfg.optim.minibatches if self.algo.needs_rollout else 1
        sched = build_scheduler(opt, self.cfg.optim, self.cfg.optim.steps * per_step)
        return [opt], [{"scheduler": sched, "interval": "step"}]

    # -- helpers ------------------------------------------------------------------------------
    def prompt_ids(self, problem: Problem) -> list[int]:
        ids = self._prompt_cache.get(problem.uid)
        if ids is None:
            text = self._format_prompt(problem.prompt)
            ids = self.tokenizer(text, add_special_tokens=not self.cfg.model.use_chat_template)["input_ids"]
            self._prompt_cache[problem.uid] = ids
        return ids

    def _reduce_sum(self, value: float) -> float:
        """Sum over DDP ranks (identity on one process)."""
        if self.trainer is None or self.trainer.world_size == 1:
            return float(value)
        t = torch.tensor(float(value), device=self.device, dtype=torch.float64)
        return float(self.trainer.strategy.reduce(t, reduce_op="sum"))

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _global_norm(self, local: float) -> float:
        """A normaliser summed over ranks, divided by the world size (see module docstring)."""
        return self._reduce_sum(local) / self.world_size

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, problems: list[Problem], batch_idx: int) -> None:
        t0 = time.perf_counter()
        self._step = batch_idx  # 0-based; a resumed run continues the count
        if self.algo.needs_rollout:
            metrics = self._rl_step(problems, batch_idx)
        else:
            metrics = self._sft_step(problems)
        metrics["perf/step_time"] = time.perf_counter() - t0
        if "perf/tokens" in metrics:
            metrics["perf/tokens_per_sec"] = metrics.pop("perf/tokens") / metrics["perf/step_time"]
        skipped = {k.rsplit("/", 1)[-1]: v for k, v in metrics.items() if k.rsplit("/", 1)[-1].startswith("nonfinite_")}
        metrics = {k: v for k, v in metrics.items() if not k.rsplit("/", 1)[-1].startswith("nonfinite_")}
        # updates skipped in this step, logged every step (Lightning would repeat a key's stale value)
        metrics.update(
            {f"faults/nonfinite_{k}": skipped.get(f"nonfinite_{k}", 0.0) for k in ("reward", "loss", "grad")}
        )
        metrics["faults/nonfinite_total"] = float(self.nonfinite_total)
        self._log_metrics(metrics)
        self._count_faulty_step()

    def _rl_step(self, problems: list[Problem], step: int) -> dict[str, float]:
        cfg = self.cfg
        t0 = time.perf_counter()
        rank = self.trainer.global_rank if self.trainer is not None else 0
        batch = collect_rollout(
            self.policy,
            self.tokenizer,
            self.backend,
            problems,
            [self.prompt_ids(p) for p in problems],
            self.sampling,
            group_size=cfg.rollout.group_size,
            seed=cfg.seed,
            step=step,
            control=self.control,
            group_offset=rank * len(problems),
            sampler=self.sampler,
        )
        t_rollout = time.perf_counter() - t0
        correct, answered = self._verify(batch)
        if self.algo.beta > 0:
            batch.ref_logprobs = self._ref_logprobs(batch)
        rout = self._compute_reward(batch, correct, answered, step)
        self.last_batch, self.last_reward = batch, rout
        metrics = self._batch_metrics(batch, rout, correct)
        metrics["perf/rollout_time"] = t_rollout
        metrics.update(batch.extras.get("rollout_metrics", {}))
        if self._reduce_sum(float(not torch.isfinite(rout.rewards).all())) > 0:  # every rank skips together
            return {**metrics, **self._skip_update("reward")}
        if self.value_head is not None:
            batch.extras["values"] = self._values(batch)
        advantages = self.algo.advantages(batch, rout)
        metrics.update({f"algo/{k}": float(v) for k, v in getattr(self.algo, "last_advantage_metrics", {}).items()})
        keep = batch.extras.get("keep")  # dynamic sampling (rlreason/algos/dler.py): rows that train nothing
        if keep is not None and self._reduce_sum(float(keep.sum())) == 0:  # every rank skips together
            return {**metrics, "algo/ds_skipped_step": 1.0}
        metrics.update(self._update(batch, advantages))
        metrics["perf/tokens"] = float(batch.response_mask.sum())
        return metrics

    def _verify(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
        from rlreason.verify import extract_answer

        answered = torch.tensor([extract_answer(c) is not None for c in batch.completions], dtype=torch.bool)
        verdicts = self.verifier(batch.completions, batch.golds)
        return torch.tensor(verdicts, dtype=torch.bool), answered

    @torch.no_grad()
    def _ref_logprobs(self, batch: RolloutBatch) -> torch.Tensor:
        ref = self._frozen["ref"]
        if ref is None and is_lora(self.policy):  # the base under the adapters is the reference
            with adapters_disabled(self.policy) as base:
                return self._logprobs_of(base, batch)
        return self._logprobs_of(ref, batch)

    def _logprobs_of(self, ref: torch.nn.Module, batch: RolloutBatch) -> torch.Tensor:
        out = []
        for sl in _chunks(batch.num_samples, self.cfg.optim.micro_batch_size):
            o = response_logprobs(
                ref,
                batch.prompt_ids[sl].to(self.device),
                batch.prompt_mask[sl].to(self.device),
                batch.response_ids[sl].to(self.device),
                batch.response_mask[sl].to(self.device),
                temperature=self.cfg.rollout.temperature,
                chunk_size=self.cfg.model.logit_chunk_size,
            )
            out.append(o.logprobs.cpu())
        return torch.cat(out)

    @torch.no_grad()
    def _values(self, batch: RolloutBatch) -> torch.Tensor:
        """[N, T] critic values at rollout time (critic algorithms: GAE and value clipping)."""
        out = []
        for sl in _chunks(batch.num_samples, self.cfg.optim.micro_batch_size):
            o = response_logprobs(
                self.policy,
                batch.prompt_ids[sl].to(self.device),
                batch.prompt_mask[sl].to(self.device),
                batch.response_ids[sl].to(self.device),
                batch.response_mask[sl].to(self.device),
                with_hidden=True,
                chunk_size=self.cfg.model.logit_chunk_size,
            )
            out.append(self.value_head(o.hidden).squeeze(-1).float().cpu())
        return torch.cat(out) * batch.response_mask

    def _compute_reward(
        self, batch: RolloutBatch, correct: torch.Tensor, answered: torch.Tensor, step: int
    ) -> RewardOutput:
        assert self.reward is not None
        ctx = RewardContext(
            correct=correct,
            answered=answered,
            policy=self.policy,
            tokenizer=self.tokenizer,
            initial_params=self._frozen["initial"],
            max_new_tokens=self.cfg.rollout.max_new_tokens,
            step=step,
            max_steps=self.cfg.optim.steps,
            control=self.control,
            verifier=self.verifier,
            run_dir=getattr(self.trainer, "default_root_dir", None) if self._trainer is not None else None,
            control_ids=getattr(self.control, "ids", {}) if self.control is not None else {},
            answer_cue=self.answer_cue,
            canonicalize=getattr(self.control, "canonicalize", None),
        )
        rout = self.reward(batch, ctx)
        rout.rewards = rout.rewards.float()
        if rout.episode_spans is not None and batch.episode_spans is None:
            batch.episode_spans = rout.episode_spans
        return rout

    def _update(self, batch: RolloutBatch, advantages: torch.Tensor) -> dict[str, float]:
        """num_iterations passes of minibatch optimiser steps over the rollout batch."""
        cfg, algo = self.cfg, self.algo
        opt = self.optimizers()
        sched = self.lr_schedulers()
        mask = batch.response_mask.float()
        if algo.mask_truncated_completions:
            mask = mask * (~batch.truncated).float().unsqueeze(-1)
        keep = batch.extras.get("keep")  # dynamic sampling: dropped groups leave the loss and its normalisers
        if keep is not None:
            mask = mask * keep.float().unsqueeze(-1)
        n = batch.num_samples
        minibatches = _chunks(n, n // cfg.optim.minibatches)
        on_policy = algo.num_iterations == 1 and len(minibatches) == 1
        tokens_batch = self._global_norm(float(mask.sum()))
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        self._parity, parity_metrics = Parity(), {}
        for _ in range(algo.num_iterations):
            for mb in minibatches:
                idx = torch.arange(n)[mb]
                norms = {
                    "num_seqs": self._global_norm(len(idx) if keep is None else max(float(keep[idx].sum()), 1e-8)),
                    "num_tokens": self._global_norm(
                        float(mask[idx].sum()) if keep is None else max(float(mask[idx].sum()), 1e-8)
                    ),
                    "num_tokens_batch": tokens_batch,
                    "max_new_tokens": cfg.rollout.max_new_tokens,
                    "num_control": self._global_norm(_control_tokens_in_mask(batch.control_pos, mask, idx)),
                }
                bad_loss = False
                for micro in _chunks(len(idx), cfg.optim.micro_batch_size):
                    sub = idx[micro]
                    loss, m = self._micro_loss(batch, advantages, mask, sub, norms, on_policy)
                    if faults.active("nan_loss", self._step + 1):
                        loss = loss * float("nan")
                    # backward even when non-finite: DDP ranks must all reduce, and the NaN gradient
                    # makes every rank skip this optimiser step together
                    bad_loss |= not bool(torch.isfinite(loss.detach()))
                    self.manual_backward(loss)
                    for k, v in m.items():
                        sums[k] += float(v)
                    sums["loss"] += float(loss.detach())
                parity, self._parity = (self._parity, None) if self._parity is not None else (None, None)
                stats = self._optimizer_step(opt, sched, "loss" if bad_loss else "grad")
                for k, v in stats.items():
                    sums[k] += v
                    counts[k] += 1
                if parity is not None:
                    parity_metrics = self._parity_metrics(parity)
        steps = algo.num_iterations * len(minibatches)
        out = {f"algo/{k}": v / steps for k, v in sums.items() if k not in counts}
        out.update(parity_metrics)
        # skipped-update counts are totals over the step; everything else is a mean over updates
        out.update({f"optim/{k}": sums[k] if k.startswith("nonfinite_") else sums[k] / counts[k] for k in counts})
        out["optim/lr"] = float(opt.param_groups[0]["lr"])
        return out

    def _micro_loss(
        self,
        batch: RolloutBatch,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        sub: torch.Tensor,
        norms: dict[str, float],
        on_policy: bool,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        algo, dev = self.algo, self.device
        entropy_coef = float(getattr(algo, "entropy_coef", 0.0) or 0.0)
        out = response_logprobs(
            self.policy,
            batch.prompt_ids[sub].to(dev),
            batch.prompt_mask[sub].to(dev),
            batch.response_ids[sub].to(dev),
            batch.response_mask[sub].to(dev),
            temperature=self.cfg.rollout.temperature,
            with_entropy=True,
            entropy_grad=algo.needs_entropy_grad or entropy_coef > 0,
            with_hidden=self.value_head is not None,
            chunk_size=self.cfg.model.logit_chunk_size,
        )
        if self._parity is not None:  # before the first optimiser step: sampler and trainer hold the same weights
            self._parity.add(batch.old_logprobs[sub].to(dev), out.logprobs.detach(), mask[sub].to(dev))
        old = out.logprobs.detach() if on_policy else batch.old_logprobs[sub].to(dev)
        values = returns = old_values = None
        if self.value_head is not None:
            values = self.value_head(out.hidden).squeeze(-1)
            returns = batch.extras["returns"][sub].to(dev) if "returns" in batch.extras else None
            old_values = batch.extras["values"][sub].to(dev)
        inp = LossInputs(
            logprobs=out.logprobs,
            mask=mask[sub].to(dev),
            old_logprobs=old,
            ref_logprobs=batch.ref_logprobs[sub].to(dev) if batch.ref_logprobs is not None else None,
            advantages=advantages[sub].to(dev),
            entropy=out.entropy,
            values=values,
            returns=returns,
            old_values=old_values,
            control_pos=batch.control_pos[sub].to(dev) if batch.control_pos is not None else None,
            **norms,
        )
        return algo.loss(inp)

    def _parity_metrics(self, parity: Parity) -> dict[str, float]:
        """`parity/logprob_diff_mean|max`: |log pi_sampler - log pi_trainer| of the sampled tokens, reduced
        over ranks; a warning when the mean jumps (stale rollout weights, a wrong temperature, dropout)."""
        total, count = self._reduce_sum(parity.total), self._reduce_sum(parity.count)
        biggest = parity.max
        if self.world_size > 1 and torch.distributed.is_initialized():
            t = torch.tensor(biggest, device=self.device, dtype=torch.float64)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            biggest = float(t)
        mean = total / max(count, 1.0)
        jump = parity_jump(self._parity_history, mean)
        if jump and (self.trainer is None or self.trainer.is_global_zero):
            import warnings

            warnings.warn(
                f"step {self._step + 1}: sampler/trainer log-prob gap jumped to {mean:.3g} (max {biggest:.3g}; "
                f"median of the previous steps {jump:.3g}): stale rollout weights, temperature or dropout?",
                stacklevel=2,
            )
        self._parity_history.append(mean)
        return {"parity/logprob_diff_mean": mean, "parity/logprob_diff_max": biggest}

    def _optimizer_step(self, opt: Any, sched: Any, cause: str = "grad") -> dict[str, float]:
        params = [p for g in opt.param_groups for p in g["params"]]
        max_norm = self.cfg.optim.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
        if not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            return self._skip_update(cause)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return {"grad_norm": float(norm)}

    def _skip_update(self, what: str) -> dict[str, float]:
        """Drop one optimiser update (the caller zeroed its gradients); the step counts as faulty."""
        self.nonfinite_total += 1
        self._step_fault = what
        return {f"nonfinite_{what}": 1.0}

    def _count_faulty_step(self) -> None:
        """A step with any skipped update extends the run of faulty steps; a clean step ends it."""
        what, self._step_fault = self._step_fault, None
        self.nonfinite_in_a_row = self.nonfinite_in_a_row + 1 if what else 0
        if self.nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
            raise NonFiniteError(
                f"{self.nonfinite_in_a_row} steps in a row with non-finite updates (last: non-finite {what} at"
                f" step {self._step + 1}; optim.max_nonfinite_in_a_row={self.max_nonfinite_in_a_row})"
            )

    # -- supervised ---------------------------------------------------------------------------
    def _sft_step(self, problems: list[Problem]) -> dict[str, float]:
        prompts, targets = [], []
        eos = self.tokenizer.eos_token_id
        for p in problems:
            for style in sorted(p.targets):
                text = p.targets[style]
                if self.control is not None and hasattr(self.control, "render"):
                    text = self.control.render(text)
                prompts.append(self.prompt_ids(p))
                targets.append(self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos])
        if not targets:
            raise ValueError("SFT needs problems with targets; the task gave none")
        prompt_ids, prompt_mask = left_pad(prompts, self.tokenizer.pad_token_id)
        width = max(len(t) for t in targets)
        resp = torch.full((len(targets), width), self.tokenizer.pad_token_id, dtype=torch.long)
        rmask = torch.zeros((len(targets), width), dtype=torch.long)
        for i, t in enumerate(targets):
            resp[i, : len(t)] = torch.tensor(t)
            rmask[i, : len(t)] = 1
        opt, sched = self.optimizers(), self.lr_schedulers()
        norms = {
            "num_seqs": self._global_norm(len(targets)),
            "num_tokens": self._global_norm(float(rmask.sum())),
            "num_tokens_batch": self._global_norm(float(rmask.sum())),
            "max_new_tokens": width,
        }
        total, sums, bad_loss = 0.0, defaultdict(float), False
        dev = self.device
        for micro in _chunks(len(targets), self.cfg.optim.micro_batch_size):
            out = response_logprobs(
                self.policy,
                prompt_ids[micro].to(dev),
                prompt_mask[micro].to(dev),
                resp[micro].to(dev),
                rmask[micro].to(dev),
                chunk_size=self.cfg.model.logit_chunk_size,
            )
            loss, m = self.algo.loss(LossInputs(logprobs=out.logprobs, mask=rmask[micro].float().to(dev), **norms))
            if faults.active("nan_loss", self._step + 1):
                loss = loss * float("nan")
            bad_loss |= not bool(torch.isfinite(loss.detach()))
            self.manual_backward(loss)
            total += float(loss.detach())
            for k, v in m.items():
                sums[k] += float(v)
        stats = self._optimizer_step(opt, sched, "loss" if bad_loss else "grad")
        out = {"train/loss": total, **{f"algo/{k}": v for k, v in sums.items()}}
        out.update({f"optim/{k}": v for k, v in stats.items()})
        out["optim/lr"] = float(opt.param_groups[0]["lr"])
        out["perf/tokens"] = float(rmask.sum())
        return out

    # -- metrics ------------------------------------------------------------------------------
    def _batch_metrics(self, batch: RolloutBatch, rout: RewardOutput, correct: torch.Tensor) -> dict[str, Metric]:
        lengths = batch.response_lengths.float()
        r = rout.rewards.float()
        m = {
            "train/reward_mean": float(r.mean()),
            "train/reward_std": float(r.std()) if r.numel() > 1 else 0.0,
            "train/accuracy": float(correct.float().mean()),
            "train/response_len_mean": float(lengths.mean()),
            "train/response_len_max": float(lengths.max()),
            "train/truncated_frac": float(batch.truncated.float().mean()),
        }
        if batch.control_mode is not None and any(self._has_modes()):
            modes = batch.control_mode
            think = torch.tensor([md == "think" for md in modes])
            short = torch.tensor([md == "short" for md in modes])
            m["mode/think_ratio"] = float(think.float().mean())
            m["mode/n_think"] = float(think.sum())
            m["mode/n_short"] = float(short.sum())
            m["mode/format_fail"] = float((~(think | short)).float().mean())
            m["mode/acc_think"] = Ratio(float(correct[think].sum()), float(think.sum()))
            m["mode/acc_short"] = Ratio(float(correct[short].sum()), float(short.sum()))
        levels = [meta.get("difficulty") for meta in batch.meta]
        for level in sorted({lv for lv in levels if isinstance(lv, str)}):
            at = torch.tensor([lv == level for lv in levels])
            m[f"train/accuracy/{level}"] = Ratio(float(correct[at].sum()), float(at.sum()))
            if "mode/think_ratio" in m:  # when does the policy think: the paper's question, per level
                m[f"mode/think_ratio/{level}"] = Ratio(float(think[at].sum()), float(at.sum()))
        for k, v in rout.metrics.items():
            m.setdefault(k, float(v))
        return m

    def _has_modes(self) -> list[bool]:
        return [bool(self.control is not None and getattr(self.control, "short_id", None) is not None)]

    def _log_metrics(self, metrics: dict[str, Metric]) -> None:
        """Reduce over ranks and write to every logger at x = step (see rlreason/train/step_metrics.py)."""
        every = max(1, int(self.cfg.logging.every_n_steps))
        if self._step % every:
            return
        reduced = reduce_metrics({k: v for k, v in metrics.items() if v is not None}, self.world_size)
        trainer = self._trainer
        if trainer is not None and trainer.is_global_zero:  # every configured logger (loggers.py)
            from rlreason.train.loggers import log_scalars

            log_scalars(trainer, reduced, self._step)
        prog = ("train/reward_mean", "train/accuracy", "train/loss", "mode/think_ratio")
        for k in prog:  # the progress bar only; already reduced, so no sync
            if k in reduced:
                self.log(k, reduced[k], prog_bar=True, logger=False, on_step=True, on_epoch=False, batch_size=1)


def _control_tokens_in_mask(control_pos: torch.Tensor | None, mask: torch.Tensor, idx: torch.Tensor) -> float:
    """Control tokens the loss actually sees: a truncated sample masked out by mask_truncated_completions
    keeps its control position but contributes nothing, so it must not enter the DeGRPO normaliser."""
    if control_pos is None:
        return 0.0
    pos = control_pos[idx]
    rows = torch.nonzero(pos >= 0).squeeze(-1)
    return float(mask[idx][rows, pos[rows]].sum())
