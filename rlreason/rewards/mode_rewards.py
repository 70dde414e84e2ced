"""Mode-aware rewards of the adaptive-thinking family: `ada_grpo` (ARM) and `autothink` (AutoThink).

Both read each sample's mode from its control token (`batch.control_mode`) and reshape a correctness
reward so the policy keeps exploring both modes. `adaptthink` lives in `rlreason/rewards/adaptthink.py`.

Overview: docs/algorithms.md#the-mode-rewards and docs/adaptive.md
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import ConfigError
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.rewards.length import _groups


def _modes(batch: RolloutBatch) -> list[str]:
    modes = batch.control_mode if batch.control_mode is not None else [None] * batch.num_samples
    return [m if m is not None else "unknown" for m in modes]


def ada_alpha(group_size: int, same_mode: int, step: int, total_steps: int) -> float:
    """ARM's alpha_i(t) = 1 + 1/2 (G / F(o_i) - 1)(1 + cos(pi t / T))."""
    return 1.0 + 0.5 * (group_size / same_mode - 1.0) * (1.0 + math.cos(math.pi * step / total_steps))


@REWARDS.register("ada_grpo")
class AdaGRPO(Reward):
    """ARM's Ada-GRPO: a rare mode's reward is scaled up, by a factor that decays to 1 over training.

    Wu et al., "ARM: Adaptive Reasoning Model", arXiv 2505.20258, sec. 3 (Ada-GRPO):

        alpha_i(t) = 1 + 1/2 (G / F(o_i) - 1) (1 + cos(pi t / T)),      r'_i = alpha_i(t) r_i

    with G the group size, F(o_i) the samples of o_i's group in its mode, t the 0-based step and T the
    total steps. Defaults: base {name: binary}, total_steps 0 (= optim.steps).

    Deviations from the paper and the released code: docs/algorithms.md#ada_grpo
    """

    def __init__(self, base: Mapping[str, Any] | None = None, total_steps: int = 0) -> None:
        if total_steps < 0:
            raise ValueError(f"total_steps: expected >= 0 (0: optim.steps), got {total_steps}")
        base_cfg = dict(base) if base is not None else {"name": "binary"}
        if base_cfg.get("name") == "ada_grpo":
            raise ValueError("base: ada_grpo cannot scale itself; name a correctness reward (e.g. binary)")
        self.base = REWARDS.build(base_cfg, where="reward.base")
        self.base_name = str(base_cfg["name"])
        self.total_steps = total_steps
        self.needs_initial_params = self.base.needs_initial_params
        self.reads_decode_state = self.base.reads_decode_state

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        total = self.total_steps or ctx.max_steps
        if total <= 0:
            raise ConfigError("reward.total_steps: ada_grpo needs the schedule length (set it or optim.steps)")
        inner = self.base(batch, ctx)
        modes = _modes(batch)
        alpha = torch.ones(batch.num_samples)
        for idx in _groups(batch):
            members = idx.tolist()
            for i in members:
                same = sum(modes[j] == modes[i] for j in members)
                alpha[i] = ada_alpha(len(members), same, ctx.step, total)
        r = inner.rewards.float() * alpha
        metrics = {k: v for k, v in inner.metrics.items()}
        metrics["reward/ada_grpo/mean"] = float(r.mean()) if r.numel() else 0.0
        metrics["reward/ada_grpo/alpha_mean"] = float(alpha.mean()) if r.numel() else 0.0
        metrics["reward/ada_grpo/alpha_max"] = float(alpha.max()) if r.numel() else 0.0
        return RewardOutput(rewards=r, metrics=metrics)


@REWARDS.register("autothink")
class AutoThink(Reward):
    """AutoThink's mode reward with stage-1 batch balancing and stage-3 length shaping.

    Tu et al., arXiv 2505.10832 (as in the released code). Base reward: think correct 1, think wrong 0,
    no-think (<short>) correct 2, no-think wrong -1. Stage 3, per group, z = (L - mean) / std over the
    correct (resp. wrong) samples; stage 1, with think share p > balance_rate, lam = clip(slope (p -
    balance_rate), 0, 1) (and symmetrically for no-think, targets 1 / -2):

        correct: r += exp(-alpha z) - 1          wrong: r += 1 - exp(-beta z)
        r <- (1 - lam) r + lam * target,         target: think correct 0, think wrong -1

    Defaults: balance_rate 1.0 (off), alpha = beta = 0, slope 2.0, format_penalty 0.0.

    Deviations from the paper and the released code: docs/algorithms.md#autothink
    """

    def __init__(
        self,
        balance_rate: float = 1.0,
        alpha: float = 0.0,
        beta: float = 0.0,
        slope: float = 2.0,
        think_correct: float = 1.0,
        think_wrong: float = 0.0,
        short_correct: float = 2.0,
        short_wrong: float = -1.0,
        format_penalty: float = 0.0,
    ) -> None:
        if not 0 <= balance_rate <= 1:
            raise ValueError(f"balance_rate: expected a share in [0, 1] (1: no balancing), got {balance_rate}")
        for key, value in (("alpha", alpha), ("beta", beta), ("slope", slope)):
            if not value >= 0:
                raise ValueError(f"{key}: expected a number >= 0, got {value}")
        self.balance_rate, self.alpha, self.beta, self.slope = balance_rate, alpha, beta, slope
        self.values = {
            ("think", True): think_correct,
            ("think", False): think_wrong,
            ("short", True): short_correct,
            ("short", False): short_wrong,
        }
        self.format_penalty = format_penalty

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        n = batch.num_samples
        raw = batch.control_mode if batch.control_mode is not None else [None] * n
        think = torch.tensor([m != "short" for m in raw], dtype=torch.bool)
        valid = torch.tensor([m is not None for m in raw], dtype=torch.bool)
        correct = ctx.correct.bool() & valid  # the code grades a format error as not correct
        r = torch.tensor(
            [
                self.values[("think" if think[i] else "short", bool(correct[i]))] if valid[i] else self.format_penalty
                for i in range(n)
            ],
            dtype=torch.float32,
        )
        lengths = batch.response_lengths.float()
        if self.alpha or self.beta:
            for idx in _groups(batch):
                for sign, coef in ((True, self.alpha), (False, self.beta)):
                    sel = idx[correct[idx] == sign]
                    if sel.numel() < 2 or coef == 0:
                        continue
                    z = (lengths[sel] - lengths[sel].mean()) / lengths[sel].std(correction=1).clamp(min=1e-6)
                    r[sel] += torch.exp(-coef * z) - 1 if sign else 1 - torch.exp(-coef * z)
        p_think = float(think.float().mean()) if n else 0.0
        lam_think = lam_short = 0.0
        if n and p_think > self.balance_rate:
            lam_think = min(1.0, max(0.0, (p_think - self.balance_rate) * self.slope))
            target = torch.where(correct, torch.tensor(0.0), torch.tensor(-1.0))
            r = torch.where(think, (1 - lam_think) * r + lam_think * target, r)
        if n and (1 - p_think) > self.balance_rate:
            lam_short = min(1.0, max(0.0, ((1 - p_think) - self.balance_rate) * self.slope))
            target = torch.where(correct, torch.tensor(1.0), torch.tensor(-2.0))
            r = torch.where(~think, (1 - lam_short) * r + lam_short * target, r)
        metrics = {
            "reward/autothink/mean": float(r.mean()) if n else 0.0,
            "reward/autothink/think_share": p_think,
            "reward/autothink/balance_think": lam_think,
            "reward/autothink/balance_short": lam_short,
        }
        return RewardOutput(rewards=r, metrics=metrics)
