"""What every reward model implements, and the context the training loop hands it.

A reward never knows the algorithm: it maps a `RolloutBatch` plus per-sample correctness to a
`RewardOutput`. The context carries the policy for rewards that score with it (L2T's information
gain); those that need the initial parameters as well set `needs_initial_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.policy.decode_state import DecodeState


@dataclass
class RewardContext:
    """Everything outside the batch a reward may use."""

    correct: torch.Tensor  # [N] bool: the verifier's verdict on each sample's answer
    answered: torch.Tensor  # [N] bool: an answer could be extracted at all
    policy: torch.nn.Module | None = None
    tokenizer: Any = None
    initial_params: dict[str, torch.Tensor] | None = None  # theta_ref snapshot (needs_initial_params)
    max_new_tokens: int = 0
    step: int = 0  # 0-based optimisation step (the rollout batch's index)
    max_steps: int = 0  # total steps of the run (optim.steps); 0 when unknown (schedules need it)
    control_ids: dict[str, int] = field(default_factory=dict)  # "<short>"/"<think>"/... -> token id
    answer_cue: str = ""  # text appended before a forced answer (info-gain's J)
    canonicalize: Any = None  # mapped control-token text -> canonical strings (see ControlTokens)
    control: Any = None  # the ControlTokens (rewards that generate with a forced mode: adaptthink)
    verifier: Any = None  # fn(responses, golds) -> list[bool], the run's verifier
    run_dir: str | None = None  # the run directory (caches kept next to the run)
    decode_state: DecodeState | None = None  # the rollout's KV cache, for a reward that `reads_decode_state`


class Reward:
    """Base class. Subclasses implement `__call__(batch, ctx) -> RewardOutput`."""

    needs_initial_params: bool = False  # the context must carry theta_ref (`initial_params`)
    reads_decode_state: bool = False  # the rollout must keep its KV cache for this reward (`decode_state`)

    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:  # pragma: no cover
        raise NotImplementedError
