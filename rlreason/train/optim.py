"""AdamW (or SGD) with a warm-up then constant / linear / cosine schedule (as in transformers' schedulers).

The optimiser only ever sees float32 parameters (master weights), so its state is float32 too: a
bf16 weight would drop almost every update at RL learning rates (1e-6 is below half a bf16 ulp of
any weight above ~4e-4 in magnitude). Compute in bf16 comes from autocast (`trainer.precision`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter], optim_cfg) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad and p.dtype != torch.float32:
            from rlreason.errors import RLReasonError

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
    if optim_cfg.optimizer == "sgd":  # plain SGD: mostly for exactness checks (e.g. DDP vs one process)
        return torch.optim.SGD(groups, lr=optim_cfg.lr)
    return torch.optim.AdamW(groups, lr=optim_cfg.lr, betas=tuple(optim_cfg.betas), eps=optim_cfg.eps)


def lr_lambda(total_steps: int, warmup_steps: int, schedule: str):
    """Multiplier of the base learning rate at optimiser step s (0-based)."""

    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return fn


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg, total_steps: int):
    warmup = optim_cfg.warmup_steps or round(optim_cfg.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, warmup, optim_cfg.schedule))
