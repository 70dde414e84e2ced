"""Mode-exploration samplers: force each sample's first token to `<short>` or `<think>`.

A policy that has collapsed onto one mode never samples the other, so no reward can teach it when
the other is better. AdaptThink (Zhang et al., arXiv 2505.13417, sec. 3.2, "importance sampling")
draws the first token from a fixed proposal instead of the policy,

    pi_IS(o_1 = <short>) = s,    pi_IS(o_1 = <think>) = 1 - s,

samples the rest of the response from the policy, and records log pi_IS(o_1) as the first token's
old log-probability, so the PPO ratio of that token is

    rho_1 = pi_theta(o_1 | x) / pi_IS(o_1)   (pi_theta / s for <short>, pi_theta / (1 - s) for <think>)

and the clipped update stays an importance-sampled estimate for the policy's own mode choice. The
tokens after the first keep their true sampling log-probabilities.

- ``forced_mode`` (share s): each sample's mode is drawn independently with P(<short>) = s, from its
  own seed (run seed, step, problem uid, sample index), exactly the proposal above.
- ``paired``: every group gets G/2 samples of each mode (counterfactual rollouts: the same prompt
  answered both ways), the released AdaptThink rollout (bojieli/AdaptThink @ c32c616,
  src/adapt_think_vllm_rollout.py: `n_nothinking = round(n * nothinking_ratio)` with ratio 0.5,
  the first ones of each group no-think), with the correction log(1/2) (each sample's marginal).

Implementation: a forced sample is generated from prompt + control token with one token less of
budget, then the control token is put back in front of the response. Seeds are unchanged, so a
sample is the same however the batch is split or sharded (DDP invariance), and with no sampler the
rollout is exactly the plain one (the sampler is not even built). The forced short share is logged
as `rollout/forced_short_share`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rlreason.errors import ConfigError
from rlreason.policy.rollout import Generation, SamplingParams
from rlreason.policy.sampling import sample_seed

SAMPLERS = ("none", "forced_mode", "paired")


class ModeSampler:
    """Which samples are forced into which mode, and the rollout that forces them."""

    def __init__(self, kind: str, share: float = 0.5) -> None:
        if kind not in SAMPLERS[1:]:
            raise ConfigError(f"rollout.sampler: expected one of {', '.join(SAMPLERS)}, got {kind!r}")
        if not 0.0 < share < 1.0:
            raise ConfigError(f"rollout.sampler_share: expected a share in (0, 1) (P(<short>)), got {share!r}")
        if kind == "paired" and share != 0.5:
            raise ConfigError(f"rollout.sampler_share: paired forces G/2 samples per mode (share 0.5), got {share}")
        self.kind, self.share = kind, float(share)

    def modes(self, seed: int, step: int, uid: str, group_size: int) -> list[str]:
        """The forced mode of each of the G samples of one problem."""
        if self.kind == "paired":
            half = round(group_size * self.share)
            return ["short"] * half + ["think"] * (group_size - half)
        out = []
        for j in range(group_size):
            gen = torch.Generator().manual_seed(sample_seed("mode", seed, step, uid, j))
            out.append("short" if float(torch.rand(1, generator=gen, dtype=torch.float64)) < self.share else "think")
        return out

    def log_proposal(self, mode: str) -> float:
        """log pi_IS(o_1): log s for <short>, log(1 - s) for <think>."""
        return math.log(self.share if mode == "short" else 1.0 - self.share)

    def generate(
        self,
        backend: Any,
        model: torch.nn.Module,
        prompts: list[list[int]],
        params: SamplingParams,
        seeds: list[int],
        modes: list[str],
        control: Any,
    ) -> Generation:
        """Sample every response after its forced control token; old log-prob of that token = log pi_IS."""
        ids = {"short": getattr(control, "short_id", None), "think": getattr(control, "think_id", None)}
        if control is None or ids["short"] is None or ids["think"] is None:
            raise ConfigError("rollout.sampler: forcing a mode needs the model's control tokens (<short>, <think>)")
        if params.max_new_tokens < 2:
            raise ConfigError("rollout.max_new_tokens: a forced-mode rollout needs at least 2 (control token + answer)")
        rest = SamplingParams(
            max_new_tokens=params.max_new_tokens - 1,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            stop_on_eos=params.stop_on_eos,
        )
        first = torch.tensor([ids[m] for m in modes], dtype=torch.long)
        gen = backend.generate(model, [[*p, int(t)] for p, t in zip(prompts, first.tolist())], rest, seeds)
        n = first.shape[0]
        old_first = torch.tensor([self.log_proposal(m) for m in modes], dtype=gen.logprobs.dtype)
        return Generation(
            response_ids=torch.cat([first[:, None], gen.response_ids], dim=1),
            response_mask=torch.cat([torch.ones(n, 1, dtype=gen.response_mask.dtype), gen.response_mask], dim=1),
            logprobs=torch.cat([old_first[:, None], gen.logprobs], dim=1),
            truncated=gen.truncated,
            policy_version=gen.policy_version,
        )


def build_sampler(kind: str, share: float) -> ModeSampler | None:
    """The sampler `rollout.sampler` names (with `rollout.sampler_share`), or None for plain rollouts."""
    return None if kind == "none" else ModeSampler(kind, share)
