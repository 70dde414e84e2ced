"""`info_gain`: L2T's dense information-gain process reward (Wang et al., arXiv 2505.10425).

Episode k of a response z_1..z_K, with state s_k = (x, z_1..z_{k-1}), earns (eq. 5-7, Algorithm 1)

    r_k = DeltaI_k - beta * C_k,            R_k = r_out / K + alpha * r_k
    DeltaI_k = J(s_{k+1}) - J(s_k)          (J: `rlreason.rewards.forced_answer`)
    C_k = (g_k . Delta_theta)^2 + damping * ||Delta_theta||^2,   g_k = grad_theta log pi(z_k | s_k)

with r_out the outcome reward, J(s) the policy's geometric-mean probability of the gold answer
forced after s, Delta_theta = theta - theta_ref on `params` (`rlreason.policy.tangent`) and
g_k . Delta_theta from one forward-mode JVP (`rlreason.policy.jvp`).

Defaults: alpha 0.8, beta 0.6 (the paper's), correct 1.0, wrong 0.0, episodes lab, params
last_block, rank 8, seed 0, damping 0, batch_size 64, scoring packed (or rollout_cache,
separate), chunk_size 0, fast False.

Deviations from the paper and the released code: docs/algorithms.md#info_gain
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import torch

from rlreason.batch import RewardOutput, RolloutBatch, select_rows, unique_samples
from rlreason.policy.decoder import decoder_of
from rlreason.policy.episodes import MODES, Episodes, segment_batch
from rlreason.policy.jvp import directional_logprobs, last_block_directional_logprobs, last_block_tangent
from rlreason.policy.tangent import SUBSETS, parameter_delta, subset_names
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.rewards.cached_scoring import cache_is_usable, cached_forced_answer_scores
from rlreason.rewards.episode_types import EPISODE_TYPES, episode_types
from rlreason.rewards.forced_answer import forced_answer_scores, packed_scores_and_layer_inputs

SCORINGS = ("packed", "rollout_cache", "separate")


def cue_ids(ctx: RewardContext) -> list[int]:
    """Token ids of the answer cue; canonical control strings in it (``</think>``) become their ids,
    so the cue is right also for models whose control tokens are mapped onto other vocabulary."""
    if not ctx.answer_cue:
        return []
    controls = sorted(ctx.control_ids, key=len, reverse=True)
    parts = re.split("(" + "|".join(map(re.escape, controls)) + ")", ctx.answer_cue) if controls else [ctx.answer_cue]
    ids: list[int] = []
    for part in parts:
        if part in ctx.control_ids:
            ids.append(ctx.control_ids[part])
        elif part:
            ids += ctx.tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids


def per_type_metrics(
    batch: RolloutBatch,
    eps: list[Episodes],
    gains: list[torch.Tensor],
    penalties: list[torch.Tensor],
    episode_rewards: list[torch.Tensor],
) -> dict[str, float]:
    """Mean gain, penalty and episode reward per episode type (useful / recheck / other), and the
    number of each type per sample, over the samples whose task marked its `useful_steps`."""
    sums: dict[str, list[float]] = {t: [0.0, 0.0, 0.0, 0.0] for t in EPISODE_TYPES}  # gain, penalty, reward, n
    n_samples = 0
    for i, e in enumerate(eps):
        meta = batch.meta[i] if i < len(batch.meta) else {}
        if "useful_steps" not in meta:
            continue
        n_samples += 1
        types = episode_types(batch.completions[i], meta["useful_steps"]) if InfoGain._has_reasoning(e) else None
        if types is None or len(types) != len(e.spans) or gains[i].numel() != len(types):
            continue
        for k, t in enumerate(types):
            acc = sums[t]
            acc[0] += float(gains[i][k])
            acc[1] += float(penalties[i][k])
            acc[2] += float(episode_rewards[i][k])
            acc[3] += 1
    out: dict[str, float] = {}
    for t, (g, p, r, n) in sums.items():
        if n_samples:
            out[f"info_gain/episodes_per_sample/{t}"] = n / n_samples
        if n:  # a type absent from this batch logs nothing (not a misleading 0)
            out[f"info_gain/gain/{t}"] = g / n
            out[f"info_gain/penalty/{t}"] = p / n
            out[f"info_gain/episode_reward/{t}"] = r / n
    return out


@REWARDS.register("info_gain")
class InfoGain(Reward):
    """L2T information-gain process reward: per-episode fitting gain minus a Fisher compression penalty.

    `fast`: the same estimator in fewer FLOPs (length-grouped scoring passes; with `params:
    last_block`, the penalty's JVP on the last layer only, from the scoring pass's recorded inputs),
    equal to the default path up to float32 rounding; off by default, so the default is the exact
    reference. Deviations from the paper and the released code: docs/algorithms.md#info_gain
    """

    needs_initial_params = True

    def __init__(
        self,
        alpha: float = 0.8,
        beta: float = 0.6,
        correct: float = 1.0,
        wrong: float = 0.0,
        episodes: str = "lab",
        params: str = "last_block",
        rank: int = 8,
        seed: int = 0,
        damping: float = 0.0,
        batch_size: int = 64,
        scoring: str = "packed",
        chunk_size: int = 0,
        fast: bool = False,
    ) -> None:
        if episodes not in MODES:
            raise ValueError(f"episodes: expected one of {', '.join(MODES)}, got {episodes!r}")
        if scoring not in SCORINGS:
            raise ValueError(
                f"scoring: expected 'packed' (one pass per sample), 'rollout_cache' (the blocks only, on the "
                f"rollout's KV cache) or 'separate', got {scoring!r}"
            )
        if params not in SUBSETS:
            raise ValueError(f"params: expected one of {', '.join(SUBSETS)}, got {params!r}")
        for key, value, low in (("alpha", alpha, 0), ("beta", beta, 0), ("damping", damping, 0)):
            if value < low:
                raise ValueError(f"{key}: expected a value >= {low}, got {value}")
        for key, value in (("rank", rank), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{key}: expected an integer >= 1, got {value}")
        if chunk_size < 0:
            raise ValueError(f"chunk_size: expected >= 0 (0 = whole logits in one pass), got {chunk_size}")
        self.fast = fast  # the same estimator in fewer FLOPs, equal up to float32 rounding (docs)
        self.chunk_size = chunk_size  # > 0: logits of at most this many positions at once (memory)
        self.alpha, self.beta, self.correct, self.wrong = alpha, beta, correct, wrong
        self.mode, self.params, self.rank, self.seed = episodes, params, rank, seed
        self.damping, self.batch_size, self.scoring = damping, batch_size, scoring
        self.reads_decode_state = scoring == "rollout_cache"
        self.last_final_j: list[float | None] = []  # J(s_{K+1}) per sample, None without reasoning
        self.last_cache_scored = False

    # -- the two estimators ----------------------------------------------------------------------
    def fitting_gain(self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext) -> list[torch.Tensor]:
        return self._score_prefixes(batch, eps, ctx)[0]

    def _score_prefixes(
        self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext, layer: torch.nn.Module | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Per-sample gains and, with `layer` (the `fast` penalty), every sample's input to that layer
        on prompt + response, recorded by the packed pass (samples without reasoning are only encoded)."""
        tok = ctx.tokenizer
        cue = cue_ids(ctx)
        state = ctx.decode_state if self.scoring == "rollout_cache" else None
        self.last_cache_scored = (
            state is not None and bool(cue) and cache_is_usable(ctx.policy) and state.matches(ctx.policy)
        )
        if self.last_cache_scored:
            return self._score_from_cache(batch, eps, ctx, cue, with_layer_inputs=layer is not None)
        contexts, answers, owners = [], [], []
        packed_rows, bases, context_lengths, suffixes, n_scored = [], [], [], [], []
        for i, e in enumerate(eps):
            if not self._has_reasoning(e) and layer is None:
                continue
            prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist()
            response = batch.response_ids[i][batch.response_mask[i].bool()].tolist()
            gold = tok(batch.golds[i], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            boundaries = e.boundaries if self._has_reasoning(e) else []
            packed_rows.append(i)
            bases.append(prompt + response)
            context_lengths.append([len(prompt) + b for b in boundaries])
            suffixes.append(cue + gold)
            n_scored.append(len(gold))
            for b in boundaries:
                contexts.append(prompt + response[:b] + cue)
                answers.append(gold)
                owners.append(i)
        hidden: list[torch.Tensor] | None = None
        if self.scoring in ("packed", "rollout_cache"):  # rollout_cache without a usable cache: packed
            # a packed row is ~K+1 sequences long, so fewer rows per pass keep the pass the same size
            per_pass = max(1, self.batch_size // max(1, max((len(c) for c in context_lengths), default=1)))
            packed, recorded = packed_scores_and_layer_inputs(
                ctx.policy,
                bases,
                context_lengths,
                suffixes,
                n_scored,
                tok.pad_token_id,
                per_pass,
                self.chunk_size,
                sort_by_length=self.fast,
                layer=layer,
                drop_unread_token=self.fast,
            )
            scores = torch.cat(packed) if packed else torch.zeros(0)
            if recorded is not None:
                hidden = [torch.zeros(0)] * len(eps)
                for i, h in zip(packed_rows, recorded):
                    hidden[i] = h
        else:
            scores = forced_answer_scores(ctx.policy, contexts, answers, tok.pad_token_id, self.batch_size)
        per_sample = Counter(owners)
        per_row, k = [], 0
        for i in range(len(eps)):
            per_row.append(scores[k : k + per_sample[i]])
            k += per_sample[i]
        return self._gains(eps, per_row), hidden

    def _gains(self, eps: list[Episodes], scores: list[torch.Tensor]) -> list[torch.Tensor]:
        """DeltaI_k = J(s_{k+1}) - J(s_k) from each sample's J values (none: no reasoning, zero gain)."""
        gains: list[torch.Tensor] = []
        self.last_final_j = []
        for e, j in zip(eps, scores):
            if j.numel() == 0:
                gains.append(torch.zeros(len(e.spans)))
                self.last_final_j.append(None)
                continue
            gains.append(j[1:] - j[:-1])
            self.last_final_j.append(float(j[-1]))
        return gains

    def _score_from_cache(
        self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext, cue: list[int], with_layer_inputs: bool
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """`_score_prefixes` with the prompt + response read from the rollout's KV cache
        (`rlreason.rewards.cached_scoring`); the penalty's layer inputs come from the cache too."""
        tok, state = ctx.tokenizer, ctx.decode_state
        prompt_lengths = batch.prompt_mask.sum(-1).tolist()
        response_lengths = batch.response_mask.sum(-1).tolist()
        rows = [i for i, e in enumerate(eps) if self._has_reasoning(e)]
        golds = [tok(batch.golds[i], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for i in rows]
        scored = cached_forced_answer_scores(
            ctx.policy,
            state,
            rows,
            [prompt_lengths[i] for i in rows],
            [batch.response_ids[i, : response_lengths[i]].tolist() for i in rows],
            [eps[i].boundaries for i in rows],
            [cue + g for g in golds],
            [len(g) for g in golds],
            tok.pad_token_id,
            self.batch_size,
        )
        scores = [torch.zeros(0)] * len(eps)
        for i, j in zip(rows, scored):
            scores[i] = j
        hidden = None
        if with_layer_inputs:
            hidden = [state.sequence_layer_input(i, prompt_lengths[i], response_lengths[i]) for i in range(len(eps))]
        return self._gains(eps, scores), hidden

    @staticmethod
    def _has_reasoning(e: Episodes) -> bool:
        """A well-formed reasoning region (a <short> answer or broken markup has none: zero gain)."""
        return e.format_ok and e.reasoning

    def penalty(
        self,
        batch: RolloutBatch,
        eps: list[Episodes],
        ctx: RewardContext,
        layer_inputs: list[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        if self.beta == 0 or ctx.initial_params is None:
            return [torch.zeros(len(e.spans)) for e in eps]
        tangent, sq_norm = self.tangent(ctx.policy, ctx.initial_params)
        local = last_block_tangent(ctx.policy, tangent) if layer_inputs is not None else None
        if local is not None and layer_inputs is not None:
            d = last_block_directional_logprobs(ctx.policy, batch, layer_inputs, local, self.batch_size)
        else:
            d = directional_logprobs(ctx.policy, batch, tangent, self.batch_size, self.chunk_size)
        out = []
        for i, e in enumerate(eps):
            per_ep = torch.stack([d[i, a:b].sum() for a, b in e.spans]) if e.spans else torch.zeros(1)
            out.append(per_ep.double().pow(2).float() + self.damping * sq_norm)
        return out

    def tangent(
        self, model: torch.nn.Module, initial: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], float]:
        """Delta_theta on the subset (or its random projection) and its squared norm."""
        return parameter_delta(model, initial, self.params, self.rank, self.seed)

    def _penalty_layer(self, ctx: RewardContext) -> torch.nn.Module | None:
        """With `fast` (packed scoring, a penalty on the last block): the layer whose inputs the
        scoring pass records for the penalty's JVP; None: the penalty runs its own full forward."""
        if not self.fast or self.scoring == "separate" or self.beta == 0 or ctx.initial_params is None:
            return None
        if self.params != "last_block" or self.chunk_size > 0:
            return None
        names = {n: t for n, t in ctx.policy.named_parameters() if n in subset_names(ctx.policy, "last_block")}
        if last_block_tangent(ctx.policy, names) is None:
            return None
        return decoder_of(ctx.policy).layers[-1]

    def _gains_and_penalties(
        self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """DeltaI_k and C_k of every sample. With `fast`, each distinct sequence is scored once and
        its values shared by its copies (a sharp policy repeats responses within a group)."""
        layer = self._penalty_layer(ctx)
        reps, owner = unique_samples(batch) if self.fast else ([], [])
        if not self.fast or len(reps) == batch.num_samples:
            gains, layer_inputs = self._score_prefixes(batch, eps, ctx, layer)
            return gains, self.penalty(batch, eps, ctx, layer_inputs)
        sub, sub_eps = select_rows(batch, reps), [eps[i] for i in reps]
        state = ctx.decode_state.select(reps) if ctx.decode_state is not None else None
        sub_ctx = replace(ctx, decode_state=state)
        gains, layer_inputs = self._score_prefixes(sub, sub_eps, sub_ctx, layer)
        penalties = self.penalty(sub, sub_eps, sub_ctx, layer_inputs)
        self.last_final_j = [self.last_final_j[o] for o in owner]
        return [gains[o] for o in owner], [penalties[o] for o in owner]

    # -- the reward ------------------------------------------------------------------------------
    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        if ctx.policy is None or ctx.tokenizer is None:
            raise ValueError("info_gain needs the policy and tokenizer in the reward context")
        canon = ctx.canonicalize
        eps = segment_batch(batch.response_ids, batch.response_mask, ctx.tokenizer, self.mode, canon)
        gains, penalties = self._gains_and_penalties(batch, eps, ctx)
        r_out = torch.where(ctx.correct, self.correct, self.wrong).float()
        episode_rewards = []
        for i, e in enumerate(eps):
            k = len(e.spans)
            g = gains[i] if gains[i].numel() == k else torch.zeros(k)
            episode_rewards.append(r_out[i] / k + self.alpha * (g - self.beta * penalties[i]))
        rewards = torch.stack([e.sum() for e in episode_rewards])
        all_g = torch.cat(gains) if gains else torch.zeros(1)
        all_p = torch.cat(penalties) if penalties else torch.zeros(1)
        finals = [j for j in self.last_final_j if j is not None]  # the samples with reasoning
        metrics = {
            "info_gain/gain_mean": float(all_g.mean()),
            "info_gain/penalty_mean": float(all_p.mean()),
            "info_gain/J_final_mean": sum(finals) / len(finals) if finals else 0.0,
            "info_gain/episodes_per_sample": sum(len(e.spans) for e in eps) / max(1, len(eps)),
            "info_gain/format_fail": sum(not e.format_ok for e in eps) / max(1, len(eps)),
        }
        if self.scoring == "rollout_cache":  # 0: no usable cache this step, the packed pass ran instead
            metrics["info_gain/cache_scored"] = float(self.last_cache_scored)
        metrics.update(per_type_metrics(batch, eps, gains, penalties, episode_rewards))
        return RewardOutput(
            rewards=rewards,
            episode_rewards=episode_rewards,
            episode_spans=[e.spans for e in eps],
            metrics=metrics,
        )
