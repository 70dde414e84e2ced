"""`l2t_ppo`: L2T's policy update (Wang et al., arXiv 2505.10425, Algorithm 1, "practical
implementation with GRPO").

Per-episode rewards R_{i,k} (`RewardOutput.episode_rewards`, e.g. `info_gain`; a sequence reward is
one episode) are spread over the episode's tokens by surprise weights, then

    r_{i,t} = R_{i,k} * w_t,   w_t = -log pi_old(o_t) / sum_{t' in episode k} -log pi_old(o_t')
    r~_i = trim_mean_95%(r_{i,.})
    A^_i = (r~_i - mean_group(r~)) / (std_group(r~) + 1e-8)
    A_{i,t} = A^_i * r_{i,t} / r~_i      (A^_i on every token when |r~_i| <= guard_eps * mean_t |r_{i,t}|)

with GRPO's clipped surrogate plus k3 KL. `advantage: gae` is PPO with a value head instead.

Defaults: loss_type grpo, advantage grpo, trim 0.025, guard_eps 0.1, group_score mean, gamma 1.0,
gae_lambda 0.95, vf_coef 0.1, value_clip 0.2, eps_low = eps_high = 0.2, beta 0.

Deviations from the paper and the released code: docs/algorithms.md#l2t_ppo
"""

from __future__ import annotations

import torch

from rlreason.algos import dler
from rlreason.algos.base import Advantages, LossInputs, group_stats
from rlreason.algos.grpo import GRPO, group_advantages
from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.registry import ALGOS


def trimmed_mean(x: torch.Tensor, proportion: float = 0.025) -> torch.Tensor:
    """Mean after cutting `proportion` of the values from each end (scipy.stats.trim_mean)."""
    n = x.numel()
    cut = int(proportion * n)
    if n == 0:
        return x.new_zeros(())
    s, _ = torch.sort(x)
    return s[cut : n - cut].mean() if n - 2 * cut > 0 else s.mean()


def token_rewards(
    episode_rewards: list[torch.Tensor],
    spans: list[list[tuple[int, int]]],
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """[N, T] token rewards: each episode's reward spread by surprise weights over its tokens."""
    out = torch.zeros_like(old_logprobs, dtype=torch.float64)
    surprise = (-old_logprobs.double()).clamp(min=0) * mask.double()
    for i, (rewards, sp) in enumerate(zip(episode_rewards, spans)):
        for r, (a, b) in zip(rewards.tolist(), sp):
            if b <= a:
                continue
            w = surprise[i, a:b]
            total = w.sum()
            valid = mask[i, a:b].double()
            w = w / total if total > 0 else valid / valid.sum().clamp(min=1)
            out[i, a:b] = r * w
    return out.float()


@ALGOS.register("l2t_ppo")
class L2TPPO(GRPO):
    """L2T's GRPO-style update with dense per-episode rewards spread over tokens (Algorithm 1).

    r_{i,t} = R_{i,k} w_t (w ~ surprise);  r~_i = trim_mean(r_i);  A^_i = z-score of r~_i in its group
    (of T_i r~_i with `group_score: sum`);
    A_{i,t} = A^_i r_{i,t} / r~_i (guarded near r~_i = 0); `advantage: gae` for a critic instead.
    Deviations from the paper and the released code: docs/algorithms.md#l2t_ppo
    """

    def __init__(
        self,
        loss_type: str = "grpo",
        advantage: str = "grpo",
        trim: float = 0.025,
        guard_eps: float = 0.1,
        group_score: str = "mean",
        gamma: float = 1.0,
        gae_lambda: float = 0.95,
        vf_coef: float = 0.1,
        value_clip: float = 0.2,
        eps_low: float = 0.2,
        eps_high: float = 0.2,
        beta: float = 0.0,
        num_iterations: int = 1,
        mask_truncated_completions: bool = False,
        entropy_coef: float = 0.0,
        batch_norm: bool = False,
        dynamic_sampling: str = "off",
    ) -> None:
        super().__init__(
            loss_type,
            "group",
            eps_low,
            eps_high,
            beta,
            num_iterations,
            mask_truncated_completions,
            entropy_coef,
            batch_norm=batch_norm,
            dynamic_sampling=dynamic_sampling,
        )
        if advantage == "gae" and (batch_norm or dynamic_sampling != "off"):
            raise ValueError("advantage: gae whitens its own advantages; batch_norm and dynamic_sampling need 'grpo'")
        checks = (
            ("trim", trim, 0 <= trim < 0.5, "in [0, 0.5)"),
            ("guard_eps", guard_eps, guard_eps >= 0, ">= 0"),
            ("gamma", gamma, 0 <= gamma <= 1, "in [0, 1]"),
            ("gae_lambda", gae_lambda, 0 <= gae_lambda <= 1, "in [0, 1]"),
            ("vf_coef", vf_coef, vf_coef >= 0, ">= 0"),
            ("value_clip", value_clip, value_clip > 0, "> 0"),
        )
        for key, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"{key}: expected a number {expected}, got {value}")
        if advantage not in ("grpo", "gae"):
            raise ValueError(f"advantage: expected 'grpo' or 'gae', got {advantage!r}")
        if group_score not in ("mean", "sum"):
            raise ValueError(f"group_score: expected 'mean' (paper) or 'sum', got {group_score!r}")
        self.group_score = group_score
        self.trim, self.guard_eps, self.advantage = trim, guard_eps, advantage
        self.gamma, self.gae_lambda, self.vf_coef, self.value_clip = gamma, gae_lambda, vf_coef, value_clip
        self.needs_values = advantage == "gae"  # type: ignore[misc]

    def value_head(self, hidden_size: int) -> torch.nn.Module | None:
        if not self.needs_values:
            return None
        head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        return head

    @staticmethod
    def episodes_of(
        batch: RolloutBatch, reward: RewardOutput
    ) -> tuple[list[torch.Tensor], list[list[tuple[int, int]]]]:
        if reward.episode_rewards is not None and reward.episode_spans is not None:
            return reward.episode_rewards, reward.episode_spans
        ep_rewards = [r.reshape(1) for r in reward.rewards.float()]
        return ep_rewards, [[(0, int(n))] for n in batch.response_lengths.tolist()]

    def advantages(
        self, batch: RolloutBatch, reward: RewardOutput, values: torch.Tensor | None = None
    ) -> Advantages:
        mask = batch.response_mask.float()
        ep_rewards, spans = self.episodes_of(batch, reward)
        if self.advantage == "gae":
            return self.critic_advantages(batch, ep_rewards, spans, values)
        r_tok = token_rewards(ep_rewards, spans, batch.old_logprobs, mask)
        r_tilde = torch.stack(
            [trimmed_mean(r_tok[i][mask[i].bool()], self.trim) for i in range(batch.num_samples)]
        ).float()
        score = r_tilde * mask.sum(-1) if self.group_score == "sum" else r_tilde
        a_hat = group_advantages(score, batch.group_ids, "group", eps=1e-8)
        _, std = group_stats(score.double(), batch.group_ids)
        extra: dict[str, float] = {}
        keep = None
        if self.batch_norm or self.dynamic_sampling != "off":  # DLER's options on A^_i (rlreason/algos/dler.py)
            a_hat, extra, keep = dler.apply(
                a_hat, score, batch.group_ids, batch.response_mask, self.batch_norm, self.dynamic_sampling
            )
        mean_abs = (r_tok.abs() * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        guard = r_tilde.abs() <= self.guard_eps * mean_abs
        safe = torch.where(guard, torch.ones_like(r_tilde), r_tilde)
        scale = torch.where(guard.unsqueeze(-1), torch.ones_like(r_tok), r_tok / safe.unsqueeze(-1))
        metrics = {
            "zero_std_frac": float((std < 1e-12).double().mean()),
            "guard_frac": float(guard.float().mean()),
            "r_tilde_mean": float(r_tilde.mean()),
            # largest |r_{i,t} / r~_i| that got through the guard: how close to unstable the batch was
            "ratio_abs_max": float((scale * mask).abs().max()) if mask.any() else 0.0,
            **extra,
        }
        return Advantages(a_hat.unsqueeze(-1) * scale * mask, metrics, keep=keep)

    def critic_advantages(
        self,
        batch: RolloutBatch,
        ep_rewards: list[torch.Tensor],
        spans: list[list[tuple[int, int]]],
        values: torch.Tensor | None,
    ) -> Advantages:
        """GAE over each response with episode rewards on episode-final tokens, and the value targets."""
        mask = batch.response_mask.float()
        if values is None:
            raise ValueError("l2t_ppo with advantage: gae needs the value head's rollout-time values")
        values = values.float() * mask
        rewards = torch.zeros_like(values)
        for i, (rs, sp) in enumerate(zip(ep_rewards, spans)):
            for r, (a, b) in zip(rs.tolist(), sp):
                if b > a:
                    rewards[i, b - 1] += r
        adv = gae(rewards, values, mask, self.gamma, self.gae_lambda)
        returns = adv + values
        mean = (adv * mask).sum() / mask.sum().clamp(min=1)
        var = (((adv - mean) * mask) ** 2).sum() / mask.sum().clamp(min=1)
        metrics = {"value_mean": float((values * mask).sum() / mask.sum().clamp(min=1))}
        return Advantages((adv - mean) / (var.sqrt() + 1e-8) * mask, metrics, returns=returns)

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """GRPO's clipped surrogate (+ KL); with `advantage: gae`, plus vf_coef times the clipped value loss."""
        loss, metrics = super().loss(inp)
        if self.advantage == "gae" and inp.values is not None and inp.returns is not None:
            v, r = inp.values.float(), inp.returns.float()
            v_old = inp.old_values if inp.old_values is not None else v.detach()
            v_clipped = v_old + (v - v_old).clamp(-self.value_clip, self.value_clip)
            vf = 0.5 * torch.maximum((v - r) ** 2, (v_clipped - r) ** 2)
            vf_loss = (vf * inp.mask).sum() / inp.num_tokens
            loss = loss + self.vf_coef * vf_loss
            metrics["value_loss"] = vf_loss.detach()
        return loss, metrics


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation over right-padded sequences (V = 0 after the last token)."""
    adv = torch.zeros_like(rewards)
    last = rewards.new_zeros(rewards.shape[0])
    next_value = rewards.new_zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * m
        adv[:, t] = last
        next_value = torch.where(m > 0, values[:, t], next_value)
    return adv
