"""What a step's rollout looked like: reward and accuracy, lengths, and, with control tokens, how
often the policy chose to think, overall and per difficulty level (the adaptive papers' question)."""

from __future__ import annotations

from typing import Any

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.train.step_metrics import Metric, Ratio


def rollout_metrics(
    batch: RolloutBatch, reward: RewardOutput, correct: torch.Tensor, control: Any
) -> dict[str, Metric]:
    """`train/*` and `mode/*` scalars of one rollout batch, then the reward's own metrics."""
    lengths = batch.response_lengths.float()
    r = reward.rewards.float()
    m: dict[str, Metric] = {
        "train/reward_mean": float(r.mean()),
        "train/reward_std": float(r.std()) if r.numel() > 1 else 0.0,
        "train/accuracy": float(correct.float().mean()),
        "train/response_len_mean": float(lengths.mean()),
        "train/response_len_max": float(lengths.max()),
        "train/truncated_frac": float(batch.truncated.float().mean()),
    }
    has_modes = control is not None and getattr(control, "short_id", None) is not None
    if batch.control_mode is not None and has_modes:
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
        if "mode/think_ratio" in m:
            m[f"mode/think_ratio/{level}"] = Ratio(float(think[at].sum()), float(at.sum()))
    for k, v in reward.metrics.items():
        m.setdefault(k, float(v))
    return m
