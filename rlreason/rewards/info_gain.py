"""`info_gain`: L2T's dense information-gain process reward (Wang et al., arXiv 2505.10425).

A response is a sequence of episodes z_1..z_K (see `rlreason.policy.episodes`); with the state
s_k = (x, z_1..z_{k-1}), episode k earns (paper eq. 5-7, Algorithm 1)

    r_k = DeltaI_k - beta * C_k,            R_k = r_out / K + alpha * r_k

with r_out the outcome reward (`correct` / `wrong`), alpha = 0.8 and beta = 0.6 as in the paper.

*Fitting gain* DeltaI_k = J(s_{k+1}) - J(s_k): how much episode k moved the policy toward the gold
answer. J(s) is the policy's own geometric-mean token probability of the gold answer (followed by
EOS) when forced to answer right after prefix s (the task's answer cue, e.g. ``</think>``, is
appended, then the gold tokens are teacher-forced). `scoring: packed` (default) scores all K+1
prefixes of a sample in one no-grad pass: the row is prompt + response followed by K+1 blocks of
cue + gold, and a custom 4D attention mask with matching position ids lets block k see exactly its
prefix (see `packed_forced_answer_scores`); `separate` runs K+1 sequences, for models whose
attention rejects custom 4D masks.

*Compression penalty* C_k = (g_k . Delta_theta)^2 + damping * ||Delta_theta||^2 with
g_k = grad_theta log pi(z_k | s_k) over a parameter subset (`params`) and
Delta_theta = theta - theta_ref (current minus initial policy): the rank-1 Fisher quadratic form
Delta_theta^T (g_k g_k^T + damping I) Delta_theta. It needs no matrix and no backward pass: one
forward-mode JVP (`torch.func.jvp`) with tangent Delta_theta gives every token's directional
derivative d log pi(o_t) / d theta . Delta_theta, summed per episode, then squared.

Deviations, on purpose:
- The paper leaves J unspecified; ours is the policy's own forced-answer likelihood, which needs no
  annotation and no second model.
- The paper approximates the Fisher term with an SVD-based proxy; ours is the exact rank-1 form on
  the chosen subset (`last_block`, `lm_head` (with tied embeddings: the shared embedding matrix),
  `all`) or on a seeded random projection of Delta_theta (`random_projection`: the orthogonal
  projection onto `rank` Gaussian directions over all parameters).
- A response without a reasoning region (a ``<short>`` answer) or with broken markup is one episode
  with zero gain; it still gets r_out and the penalty.

The released code (github.com/ML-TASA/L2T, commit 5fc0f58, read for this note) differs more: its
gain is the difference of consecutive episode scores from an external PRM (Qwen2.5-Math-PRM-7B);
the outcome reward sits on the last token undivided by K; broken episode markup costs 0.01; its
penalty is per *sequence* (a central finite difference of the sequence NLL along Delta_theta on the
parameters named "35", i.e. the last block, times beta = 1e-2), computed and passed to the reward
manager but never added to the reward. beta = 0 here reproduces "no penalty".
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch.func import functional_call, jvp

from rlreason.batch import RewardOutput, RolloutBatch
from rlreason.errors import RLReasonError
from rlreason.policy.episodes import MODES, Episodes, segment_batch
from rlreason.registry import REWARDS
from rlreason.rewards.base import Reward, RewardContext
from rlreason.rewards.episode_types import EPISODE_TYPES, episode_types

SUBSETS = ("last_block", "lm_head", "all", "random_projection")


def subset_names(model: torch.nn.Module, subset: str) -> list[str]:
    """Names of the parameters in a subset, found generically for Hugging Face causal LMs."""
    names = [n for n, p in model.named_parameters() if True]
    if subset in ("all", "random_projection"):
        return names
    if subset == "lm_head":
        out_emb = model.get_output_embeddings()
        target = out_emb.weight if out_emb is not None else None
        return [n for n, p in model.named_parameters() if p is target]  # tied: the shared embedding
    layers = [n for n in names if ".layers." in n]
    if not layers:
        raise ValueError("params: last_block needs a model with `.layers.N.` parameter names")
    last = max(int(n.split(".layers.")[1].split(".")[0]) for n in layers)
    return [n for n in names if f".layers.{last}." in n]


@contextlib.contextmanager
def jvp_ready(model: torch.nn.Module):
    """Forward-mode AD needs attention kernels with JVP rules (the eager one has them) and no
    activation checkpointing (its hooks call `requires_grad_`, which functorch forbids)."""
    impl = getattr(model.config, "_attn_implementation", None)
    switch = impl not in (None, "eager") and hasattr(model, "set_attn_implementation")
    checkpointing = bool(getattr(model, "is_gradient_checkpointing", False))
    if switch:
        model.set_attn_implementation("eager")
    if checkpointing:
        getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()
        model.disable_input_require_grads()  # the hook checkpointing installs on the embeddings
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(impl)
        if checkpointing:
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()


def _pad_right(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


@torch.no_grad()
def forced_answer_scores(
    model: torch.nn.Module, contexts: list[list[int]], answers: list[list[int]], pad_id: int, batch_size: int
) -> torch.Tensor:
    """J for each (context, answer): geometric-mean probability of the answer tokens after the context."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(contexts), batch_size):
            ctx, ans = contexts[i : i + batch_size], answers[i : i + batch_size]
            ids, mask = _pad_right([c + a for c, a in zip(ctx, ans)], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            for j, (c, a) in enumerate(zip(ctx, ans)):
                out.append(logp[j, len(c) - 1 : len(c) - 1 + len(a)].mean().exp().cpu())
    finally:
        model.train(was_training)
    return torch.stack(out) if out else torch.zeros(0)


@torch.no_grad()
def packed_forced_answer_scores(
    model: torch.nn.Module,
    bases: list[list[int]],
    context_lengths: list[list[int]],
    suffix_ids: list[list[int]],
    n_scored: list[int],
    pad_id: int,
    batch_size: int,
    chunk_size: int = 0,
) -> list[torch.Tensor]:
    """J at every prefix of a sample from ONE forward pass of the sample ("packed prefix scoring").

    Row i = bases[i] (prompt + response) followed by one block per context length c (the prefix
    bases[i][:c]) holding suffix_ids[i] (cue + gold + EOS). A custom 4D additive mask lets block k
    see the row's first c_k tokens and itself causally, with position ids continuing at c_k, so each
    block computes exactly what the separate sequence prefix + suffix would; the last n_scored[i]
    suffix tokens are scored. K + 1 forward passes of length ~T become one of length
    T + (K + 1) * len(suffix). Returns, per sample, its J values in context order.
    """
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if attn not in (None, "eager", "sdpa"):  # flash attention ignores a custom 4D mask: wrong J, silently
        raise RLReasonError(
            f"reward.scoring: 'packed' needs eager or sdpa attention (model.attn_implementation), the model "
            f"uses {attn!r}; set reward.scoring=separate"
        )
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    device, dtype = param.device, param.dtype if param.dtype.is_floating_point else torch.float32
    out: list[torch.Tensor] = []
    try:
        for start in range(0, len(bases), batch_size):
            rows = range(start, min(start + batch_size, len(bases)))
            lengths = [len(bases[i]) + len(context_lengths[i]) * len(suffix_ids[i]) for i in rows]
            width = max(lengths)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            pos = torch.zeros((len(rows), width), dtype=torch.long)
            allowed = torch.zeros((len(rows), width, width), dtype=torch.bool)
            scored: list[tuple[int, list[int], list[int]]] = []  # (row, predictor positions, target ids)
            for r, i in enumerate(rows):
                base, suffix, n = bases[i], suffix_ids[i], len(bases[i])
                ids[r, :n] = torch.tensor(base, dtype=torch.long)
                pos[r, :n] = torch.arange(n)
                allowed[r, :n, :n] = torch.ones(n, n, dtype=torch.bool).tril()
                first_scored = len(suffix) - n_scored[i]
                for k, c in enumerate(context_lengths[i]):
                    a = n + k * len(suffix)
                    b = a + len(suffix)
                    ids[r, a:b] = torch.tensor(suffix, dtype=torch.long)
                    pos[r, a:b] = torch.arange(c, c + len(suffix))
                    allowed[r, a:b, :c] = True
                    allowed[r, a:b, a:b] = torch.ones(len(suffix), len(suffix), dtype=torch.bool).tril()
                    # token j of the block is predicted at block position j - 1 (or at prefix token c - 1)
                    predictors = [a + j - 1 if j > 0 else c - 1 for j in range(first_scored, len(suffix))]
                    scored.append((r, predictors, suffix[first_scored:]))
                for q in range(lengths[r], width):  # padding: a query must see something (itself), or NaN
                    allowed[r, q, q] = True
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
            inputs = {
                "input_ids": ids.to(device),
                "attention_mask": mask[:, None].to(device),
                "position_ids": pos.to(device),
            }
            per_row: dict[int, list[torch.Tensor]] = {}
            if chunk_size > 0:  # only the scored positions' logits, chunk_size of them at a time
                rr = torch.tensor([r for r, pr, _ in scored for _ in pr], dtype=torch.long)
                cc = torch.tensor([q for _, pr, _ in scored for q in pr], dtype=torch.long)
                yy = torch.tensor([y for _, _, ys in scored for y in ys], dtype=torch.long)
                flat = scored_logprobs(model, inputs, rr, cc, yy, chunk_size).split([len(pr) for _, pr, _ in scored])
                for (r, _, _), lp in zip(scored, flat):
                    per_row.setdefault(r, []).append(lp.mean().exp().cpu())
            else:
                logp = torch.log_softmax(model(**inputs).logits.float(), -1)
                for r, predictors, targets in scored:
                    lp = logp[r, torch.tensor(predictors, device=device), torch.tensor(targets, device=device)]
                    per_row.setdefault(r, []).append(lp.mean().exp().cpu())
            out.extend(torch.stack(per_row[r]) if r in per_row else torch.zeros(0) for r in range(len(rows)))
    finally:
        model.train(was_training)
    return out


def scored_logprobs(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    rows: torch.Tensor,
    cols: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """log pi(targets[m] | position cols[m] of row rows[m]) without the [rows, width, V] logits: the
    decoder runs once, the output head only at the scored positions, `chunk_size` of them at a time."""
    from rlreason.train.forward import decoder_of

    hidden = decoder_of(model)(**inputs, use_cache=False).last_hidden_state
    device = hidden.device
    picked = hidden[rows.to(device), cols.to(device)]  # [M, H]
    head = model.get_output_embeddings()
    out = []
    for a in range(0, picked.shape[0], chunk_size):
        logp = torch.log_softmax(head(picked[a : a + chunk_size]).float(), -1)
        out.append(logp.gather(-1, targets[a : a + chunk_size].to(device).unsqueeze(-1)).squeeze(-1))
    return torch.cat(out) if out else torch.zeros(0, device=device)


def directional_logprobs(
    model: torch.nn.Module,
    batch: RolloutBatch,
    tangent: dict[str, torch.Tensor],
    batch_size: int,
    chunk_size: int = 0,
) -> torch.Tensor:
    """[N, T]: d log pi(o_t) / d theta . tangent for every response token, by one JVP per chunk.

    Sequences are packed to the left and padded on the right: with left padding, a pad query row has
    no key to attend to, its softmax is NaN, and forward-mode AD carries that NaN into every row that
    (with weight 0) reads it. Right padding leaves every query at least itself.
    """
    device = next(model.parameters()).device
    names = list(tangent)
    primals = {n: p.detach() for n, p in model.named_parameters() if n in tangent}
    n_resp_max = batch.response_ids.shape[1]
    out = []
    with jvp_ready(model):
        for i in range(0, batch.num_samples, batch_size):
            rows = range(i, min(i + batch_size, batch.num_samples))
            seqs, starts = [], []
            for r in rows:
                prompt = batch.prompt_ids[r][batch.prompt_mask[r].bool()].tolist()
                seqs.append(prompt + batch.response_ids[r][batch.response_mask[r].bool()].tolist())
                starts.append(len(prompt))
            ids, mask = _pad_right(seqs, 0)
            ids, mask = ids.to(device), mask.to(device)
            # logits at position p predict token p + 1: response token t sits at start + t
            index = torch.tensor(starts, device=device)[:, None] - 1 + torch.arange(n_resp_max, device=device)
            index = index.clamp(max=ids.shape[1] - 2)
            targets = ids.gather(1, index + 1)  # [n, T] the response tokens (junk past each response's end)

            def logprobs(params: dict[str, torch.Tensor], ids=ids, mask=mask, index=index, targets=targets):
                if chunk_size > 0:
                    return _chunked_jvp_logprobs(model, params, ids, mask, index, targets, chunk_size)
                logits = functional_call(model, params, (), {"input_ids": ids, "attention_mask": mask}, strict=False)
                raw = logits.logits
                logp = torch.log_softmax(raw.to(torch.promote_types(raw.dtype, torch.float32)), -1)
                at_response = logp.gather(1, index.unsqueeze(-1).expand(-1, -1, logp.shape[-1]))  # [n, T, V]
                return at_response.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

            _, d = jvp(logprobs, ({n: primals[n] for n in names},), ({n: tangent[n].to(device) for n in names},))
            valid = batch.response_mask[i : i + len(seqs)].to(device).bool()
            out.append(torch.where(valid, d, torch.zeros_like(d)).detach().cpu())
    return torch.cat(out)


def _chunked_jvp_logprobs(
    model: torch.nn.Module,
    params: dict[str, torch.Tensor],
    ids: torch.Tensor,
    mask: torch.Tensor,
    index: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """The response log-probs of `directional_logprobs` with the head applied `chunk_size` response
    positions at a time: forward-mode AD keeps no graph, so each chunk's [n, c, V] primal and tangent
    logits are freed before the next chunk is computed."""
    out = functional_call(
        model,
        params,
        (),
        {"input_ids": ids, "attention_mask": mask, "output_hidden_states": True, "logits_to_keep": 1},
        strict=False,
    )
    hidden = out.hidden_states[-1]
    head = model.get_output_embeddings()
    head_name = next((n for n, p in model.named_parameters() if p is head.weight), None)
    weight = params.get(head_name, head.weight) if head_name else head.weight
    bias = getattr(head, "bias", None)
    parts = []
    for a in range(0, index.shape[1], chunk_size):
        at = index[:, a : a + chunk_size]
        h = hidden.gather(1, at.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        raw = torch.nn.functional.linear(h, weight, bias)
        logp = torch.log_softmax(raw.to(torch.promote_types(raw.dtype, torch.float32)), -1)
        parts.append(logp.gather(-1, targets[:, a : a + chunk_size].unsqueeze(-1)).squeeze(-1))
    return torch.cat(parts, dim=1)


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
    """L2T information-gain process reward: per-episode fitting gain minus a Fisher compression penalty."""

    needs_policy = True
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
    ) -> None:
        if episodes not in MODES:
            raise ValueError(f"episodes: expected one of {', '.join(MODES)}, got {episodes!r}")
        if scoring not in ("packed", "separate"):
            raise ValueError(f"scoring: expected 'packed' (one pass per sample) or 'separate', got {scoring!r}")
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
        self.chunk_size = chunk_size  # > 0: logits of at most this many positions at once (memory)
        self.alpha, self.beta, self.correct, self.wrong = alpha, beta, correct, wrong
        self.mode, self.params, self.rank, self.seed = episodes, params, rank, seed
        self.damping, self.batch_size, self.scoring = damping, batch_size, scoring
        self.last_final_j: list[float] = []

    # -- the two estimators ----------------------------------------------------------------------
    def fitting_gain(self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext) -> list[torch.Tensor]:
        tok = ctx.tokenizer
        cue = cue_ids(ctx)
        contexts, answers, owners = [], [], []
        bases, context_lengths, suffixes, n_scored = [], [], [], []
        for i, e in enumerate(eps):
            prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist()
            response = batch.response_ids[i][batch.response_mask[i].bool()].tolist()
            gold = tok(batch.golds[i], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            if not self._has_reasoning(e):
                continue
            bases.append(prompt + response)
            context_lengths.append([len(prompt) + b for b in e.boundaries])
            suffixes.append(cue + gold)
            n_scored.append(len(gold))
            for b in e.boundaries:
                contexts.append(prompt + response[:b] + cue)
                answers.append(gold)
                owners.append(i)
        if self.scoring == "packed":
            # a packed row is ~K+1 sequences long, so fewer rows per pass keep the pass the same size
            per_pass = max(1, self.batch_size // max(1, max((len(c) for c in context_lengths), default=1)))
            packed = packed_forced_answer_scores(
                ctx.policy, bases, context_lengths, suffixes, n_scored, tok.pad_token_id, per_pass, self.chunk_size
            )
            scores = torch.cat(packed) if packed else torch.zeros(0)
        else:
            scores = forced_answer_scores(ctx.policy, contexts, answers, tok.pad_token_id, self.batch_size)
        gains: list[torch.Tensor] = []
        finals: list[float] = []
        k = 0
        for i, e in enumerate(eps):
            n_b = sum(1 for o in owners if o == i)
            if n_b == 0:
                gains.append(torch.zeros(len(e.spans)))
                continue
            j = scores[k : k + n_b]
            k += n_b
            gains.append(j[1:] - j[:-1])
            finals.append(float(j[-1]))
        self.last_final_j = finals  # J(s_{K+1}) of the samples with reasoning, for the metrics
        return gains

    @staticmethod
    def _has_reasoning(e: Episodes) -> bool:
        """A well-formed reasoning region (a <short> answer or broken markup has none: zero gain)."""
        return e.format_ok and e.reasoning

    def penalty(self, batch: RolloutBatch, eps: list[Episodes], ctx: RewardContext) -> list[torch.Tensor]:
        if self.beta == 0 or ctx.initial_params is None:
            return [torch.zeros(len(e.spans)) for e in eps]
        tangent, sq_norm = self.tangent(ctx.policy, ctx.initial_params)
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
        names = subset_names(model, self.params)
        current = dict(model.named_parameters())
        delta = {n: current[n].detach() - initial[n].to(current[n].device, current[n].dtype) for n in names}
        if self.params == "random_projection":
            delta = self.project(delta)
        sq = float(sum((t.double() * t.double()).sum() for t in delta.values()))
        return delta, sq

    def project(self, delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Orthogonal projection of `delta` onto the span of `rank` seeded Gaussian directions V:
        P delta = V^T (V V^T)^{-1} V delta. V is never held whole: it is regenerated block by block
        (2^22 entries of one parameter per block, each block seeded by (seed, block index)), so the
        memory is rank x one block, not rank model copies; the price is generating V twice per call."""
        r = self.rank
        gram = torch.zeros(r, r, dtype=torch.float64)
        coeff = torch.zeros(r, dtype=torch.float64)
        for v, d in self._blocks(delta):
            gram += (v @ v.T).double().cpu()
            coeff += (v @ d).double().cpu()
        y = torch.linalg.solve(gram, coeff)
        out = {n: torch.empty_like(t) for n, t in delta.items()}
        flat = {n: t.view(-1) for n, t in out.items()}
        for (v, _), (n, a, b) in zip(self._blocks(delta), self._block_index(delta)):
            flat[n][a:b] = (y.to(v.device, v.dtype) @ v).to(flat[n].dtype)
        return out

    @staticmethod
    def _block_index(delta: dict[str, torch.Tensor], size: int = 1 << 22) -> list[tuple[str, int, int]]:
        return [(n, a, min(a + size, t.numel())) for n, t in delta.items() for a in range(0, t.numel(), size)]

    def _blocks(self, delta: dict[str, torch.Tensor]):
        """(V block [rank, m], the matching slice of delta [m]) for every block, in a fixed order."""
        for k, (n, a, b) in enumerate(self._block_index(delta)):
            t = delta[n]
            dtype = torch.promote_types(t.dtype, torch.float32)
            gen = torch.Generator(device=t.device).manual_seed(self.seed * 1_000_003 + k)
            v = torch.randn(self.rank, b - a, generator=gen, device=t.device, dtype=dtype)
            yield v, t.reshape(-1)[a:b].to(dtype)

    # -- the reward ------------------------------------------------------------------------------
    def __call__(self, batch: RolloutBatch, ctx: RewardContext) -> RewardOutput:
        if ctx.policy is None or ctx.tokenizer is None:
            raise ValueError("info_gain needs the policy and tokenizer in the reward context")
        canon = getattr(ctx, "canonicalize", None)
        eps = segment_batch(batch.response_ids, batch.response_mask, ctx.tokenizer, self.mode, canon)
        gains = self.fitting_gain(batch, eps, ctx)
        penalties = self.penalty(batch, eps, ctx)
        r_out = torch.where(ctx.correct, self.correct, self.wrong).float()
        episode_rewards = []
        for i, e in enumerate(eps):
            k = len(e.spans)
            g = gains[i] if gains[i].numel() == k else torch.zeros(k)
            episode_rewards.append(r_out[i] / k + self.alpha * (g - self.beta * penalties[i]))
        rewards = torch.stack([e.sum() for e in episode_rewards])
        all_g = torch.cat(gains) if gains else torch.zeros(1)
        all_p = torch.cat(penalties) if penalties else torch.zeros(1)
        metrics = {
            "info_gain/gain_mean": float(all_g.mean()),
            "info_gain/penalty_mean": float(all_p.mean()),
            "info_gain/J_final_mean": sum(self.last_final_j) / len(self.last_final_j) if self.last_final_j else 0.0,
            "info_gain/episodes_per_sample": sum(len(e.spans) for e in eps) / max(1, len(eps)),
            "info_gain/format_fail": sum(not e.format_ok for e in eps) / max(1, len(eps)),
        }
        metrics.update(per_type_metrics(batch, eps, gains, penalties, episode_rewards))
        return RewardOutput(
            rewards=rewards,
            episode_rewards=episode_rewards,
            episode_spans=[e.spans for e in eps],
            format_ok=torch.tensor([e.format_ok for e in eps]),
            metrics=metrics,
        )
