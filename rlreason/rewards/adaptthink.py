"""`adaptthink`: AdaptThink's reward, correctness against the initial policy's think-mode accuracy.

Zhang et al., "AdaptThink: Reasoning Models Can Learn When to Think", arXiv 2505.13417.
Deviations from the paper and the released code: docs/algorithms.md#adaptthink
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.distributed import rank
from rlreason.errors import ConfigError, DataError
from rlreason.json_files import write_json
from rlreason.policy.sample_records import EvalSettings, generate_records
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.tasks.base import Problem

SOURCES = ("column", "presample")


@REWARDS.register("adaptthink")
class AdaptThink(Reward):
    """r = correct - mean reference think-accuracy of the problem + delta [short].

        r_i = 1[correct_i] - ref_acc_think(x) + delta * 1[o_i starts in no-think mode]

    ref_acc_think(x): the mean accuracy of K samples of the *initial* policy forced to think on x, from
    the task metadata (`source: column`) or sampled here once per problem and cached (`source: presample`).
    Defaults: delta 0.05, source column, column ref_think_acc, samples 16, temperature 1.0, cache auto.

    Deviations from the paper and the released code: docs/algorithms.md#adaptthink
    """

    def __init__(
        self,
        delta: float = 0.05,
        source: str = "column",
        column: str = "ref_think_acc",
        samples: int = 16,
        temperature: float = 1.0,
        max_new_tokens: int = 0,
        cache: str = "auto",
        seed: int = 0,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}")
        if not delta >= 0:
            raise ValueError(f"delta: expected a number >= 0, got {delta}")
        if int(samples) != samples or samples < 1:
            raise ValueError(f"samples: expected a positive integer, got {samples}")
        if not temperature >= 0:
            raise ValueError(f"temperature: expected >= 0 (0 = greedy), got {temperature}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens: expected >= 0 (0: rollout.max_new_tokens), got {max_new_tokens}")
        self.delta, self.source, self.column = float(delta), source, column
        self.samples, self.temperature, self.max_new_tokens = int(samples), float(temperature), max_new_tokens
        self.cache, self.seed = cache, seed
        self.needs_initial_params = source == "presample"  # theta_0 samples the reference accuracies
        self._ref: dict[str, float] = {}
        self._loaded = False
        self._initial: torch.nn.Module | None = None

    # -- reference accuracies -----------------------------------------------------------------
    def _cache_path(self, ctx: RewardContext) -> Path | None:
        if self.cache == "auto":
            return Path(ctx.run_dir) / "adaptthink_ref.json" if ctx.run_dir else None
        return Path(self.cache) if self.cache else None

    def _from_column(self, batch: RolloutBatch) -> torch.Tensor:
        out = []
        for i in range(batch.num_samples):
            meta = batch.meta[i] if i < len(batch.meta) else {}
            value = meta.get(self.column)
            try:
                out.append(float(value))
            except (TypeError, ValueError):
                raise DataError(
                    f"sample {i} (uid {meta.get('uid')!r}): meta[{self.column!r}]: adaptthink with source: column "
                    f"needs the problem's reference think-accuracy, got {value!r}"
                ) from None
        return torch.tensor(out)

    def _initial_policy(self, ctx: RewardContext) -> torch.nn.Module:
        if self._initial is None:
            if ctx.policy is None or ctx.initial_params is None:
                raise ConfigError("reward.source: presample needs the policy and its initial parameters")
            policy = copy.deepcopy(ctx.policy)
            policy.load_state_dict(ctx.initial_params, strict=False)
            self._initial = policy.eval().requires_grad_(False)
        return self._initial

    def _presample(self, batch: RolloutBatch, ctx: RewardContext) -> torch.Tensor:
        path = self._cache_path(ctx)
        if not self._loaded:
            self._loaded = True
            if path is not None and path.is_file():
                self._ref.update({str(k): float(v) for k, v in json.loads(path.read_text()).items()})
        uids = [str(m.get("uid")) for m in batch.meta]
        todo: dict[str, int] = {}
        for i, uid in enumerate(uids):
            if uid not in self._ref and uid not in todo:
                todo[uid] = i
        if todo:
            if ctx.verifier is None or ctx.tokenizer is None:
                raise ConfigError("reward.source: presample needs the run's tokenizer and verifier")
            problems, prompts = [], []
            for uid, i in todo.items():
                problems.append(Problem(uid=uid, prompt=batch.prompts[i], gold=batch.golds[i]))
                prompts.append(batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist())
            settings = EvalSettings(
                samples=self.samples,
                temperature=self.temperature,
                max_new_tokens=self.max_new_tokens or ctx.max_new_tokens,
                batch_size=0,
                seed=self.seed,
            )
            records = generate_records(
                self._initial_policy(ctx),
                ctx.tokenizer,
                ctx.control,
                problems,
                prompts,
                ctx.verifier,
                settings,
                force_mode="think",
            )
            for uid in todo:
                mine = [r["correct"] for r in records if r["uid"] == uid]
                self._ref[uid] = sum(mine) / len(mine)
            if path is not None and _is_rank_zero():
                write_json(path, dict(sorted(self._ref.items())))
        return torch.tensor([self._ref[u] for u in uids])

    # -- the reward ---------------------------------------------------------------------------
    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        ref = self._from_column(batch) if self.source == "column" else self._presample(batch, ctx)
        modes = batch.control_mode if batch.control_mode is not None else [None] * batch.num_samples
        short = torch.tensor([m == "short" for m in modes], dtype=torch.bool)
        valid = torch.tensor([m is not None for m in modes], dtype=torch.bool)
        acc = (ctx.correct.bool() & valid).float()
        r = acc - ref.float() + self.delta * short.float()
        n = batch.num_samples
        return RewardOutput(
            rewards=r,
            metrics={
                "reward/adaptthink/mean": float(r.mean()) if n else 0.0,
                "reward/adaptthink/ref_think_acc": float(ref.mean()) if n else 0.0,
                "reward/adaptthink/short_bonus_frac": float(short.float().mean()) if n else 0.0,
            },
        )


def _is_rank_zero() -> bool:
    return rank() == 0
