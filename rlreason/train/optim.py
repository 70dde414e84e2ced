"""Optimisers (`OPTIMIZERS`) and learning-rate schedules (`SCHEDULES`): a warm-up, then a registered
shape (constant / linear / cosine, as in transformers' schedulers).

The optimiser only ever sees float32 parameters (master weights), so its state is float32 too: a
bf16 weight would drop almost every update at RL learning rates (1e-6 is below half a bf16 ulp of
any weight above ~4e-4 in magnitude). Compute in bf16 comes from autocast (`trainer.precision`).

`optim.optimizer` and `optim.schedule` name entries of these registries; config validation reads
the allowed names from them, and `rlreason list optimizers` / `schedules` shows them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from omegaconf import DictConfig

from rlreason.errors import RLReasonError
from rlreason.registry import OPTIMIZERS, SCHEDULES


@OPTIMIZERS.register("adamw")
def adamw(groups: list[dict[str, Any]], optim_cfg: DictConfig) -> torch.optim.Optimizer:
    """AdamW (torch.optim) with optim.lr, optim.betas and optim.eps; two fp32 moments per parameter."""
    return torch.optim.AdamW(groups, lr=optim_cfg.lr, betas=tuple(optim_cfg.betas), eps=optim_cfg.eps)


@OPTIMIZERS.register("sgd")
def sgd(groups: list[dict[str, Any]], optim_cfg: DictConfig) -> torch.optim.Optimizer:
    """Plain SGD at optim.lr, no momentum and no state: mostly for exactness checks (DDP vs one process)."""
    return torch.optim.SGD(groups, lr=optim_cfg.lr)


# Bytes per parameter each optimiser keeps as state (fp32), for the checkpoint size estimate.
adamw.state_bytes_per_param = 8  # type: ignore[attr-defined]  # exp_avg, exp_avg_sq
sgd.state_bytes_per_param = 0  # type: ignore[attr-defined]


def build_optimizer(params: Iterable[torch.nn.Parameter], optim_cfg: DictConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad and p.dtype != torch.float32:
            raise RLReasonError(
                f"optimizer: a trainable parameter is {str(p.dtype).removeprefix('torch.')}; master weights must be "
                "float32 (load the policy with load_policy(..., training=True); model.dtype is the compute dtype)"
            )
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": optim_cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return OPTIMIZERS.get(optim_cfg.optimizer, where="optim.optimizer")(groups, optim_cfg)


@SCHEDULES.register("constant")
def constant(progress: float) -> float:
    """The base learning rate throughout."""
    return 1.0


@SCHEDULES.register("linear")
def linear(progress: float) -> float:
    """Linear decay from the base learning rate to 0 at the last step."""
    return max(0.0, 1.0 - progress)


@SCHEDULES.register("cosine")
def cosine(progress: float) -> float:
    """Half a cosine from the base learning rate to 0 at the last step."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step s (0-based)."""
    shape = SCHEDULES.get(schedule, where="optim.schedule")

    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        return shape(min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))

    return fn


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim_cfg: DictConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = optim_cfg.warmup_steps or round(optim_cfg.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, warmup, optim_cfg.schedule))
