"""J(s), the policy's forced-answer likelihood of the gold answer after a prefix s: L2T's fitting-gain score.

J(s) is the geometric-mean probability of the gold tokens (cue + gold + EOS teacher-forced after s).
`forced_answer_scores` runs one sequence per (prefix, answer); `packed_forced_answer_scores` scores
every prefix of a sample in one pass with a custom 4D attention mask; `scored_logprobs` applies the
output head only at the scored positions (`chunk_size`), so no [rows, width, vocab] logits are held.
"""

from __future__ import annotations

import torch

from rlreason.errors import RLReasonError
from rlreason.policy.decoder import decoder_of
from rlreason.policy.length_passes import length_sorted_passes
from rlreason.policy.padding import right_pad


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
            ids, mask = right_pad([c + a for c, a in zip(ctx, ans)], pad_id)
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
    scores, _ = packed_scores_and_layer_inputs(
        model, bases, context_lengths, suffix_ids, n_scored, pad_id, batch_size, chunk_size
    )
    return scores


@torch.no_grad()
def packed_scores_and_layer_inputs(
    model: torch.nn.Module,
    bases: list[list[int]],
    context_lengths: list[list[int]],
    suffix_ids: list[list[int]],
    n_scored: list[int],
    pad_id: int,
    batch_size: int,
    chunk_size: int = 0,
    *,
    sort_by_length: bool = False,
    layer: torch.nn.Module | None = None,
    drop_unread_token: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """`packed_forced_answer_scores`, and with `layer` also each sample's input hidden states to that
    decoder layer at its base positions ([len(bases[i]), H]): the base part of a packed row is
    computed exactly as the sequence prompt + response alone, so a caller needing the policy on the
    plain sequence from that layer on (the penalty's JVP on the last block) need not run the layers
    below it again. A sample with no context lengths is only encoded (no J).

    `sort_by_length`: passes take samples of similar packed length together
    (`rlreason.policy.length_passes`: less padding, no larger passes) and the output head runs at the
    scored positions only. `drop_unread_token`: a block's
    last suffix token is only a target, no query reads it, so it is left out of the row. With either,
    the values differ from the default layout by float32 rounding only (the kernels' reductions
    depend on the padded width)."""
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
    drop = int(drop_unread_token)
    lengths = [len(bases[i]) + len(context_lengths[i]) * (len(suffix_ids[i]) - drop) for i in range(len(bases))]
    if sort_by_length:
        passes = length_sorted_passes(lengths, batch_size)
    else:
        passes = [list(range(a, min(a + batch_size, len(bases)))) for a in range(0, len(bases), batch_size)]
    scores: list[torch.Tensor] = [torch.zeros(0)] * len(bases)
    hidden: list[torch.Tensor] | None = [torch.zeros(0)] * len(bases) if layer is not None else None
    recorded: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(_recorder(recorded), with_kwargs=True) if layer is not None else None
    try:
        for rows in passes:
            inputs, scored = _packed_inputs(
                [bases[i] for i in rows],
                [context_lengths[i] for i in rows],
                [suffix_ids[i] for i in rows],
                [n_scored[i] for i in rows],
                pad_id,
                dtype,
                drop,
            )
            inputs = {k: v.to(device) for k, v in inputs.items()}
            recorded.clear()
            rr = torch.tensor([r for r, pr, _ in scored for _ in pr], dtype=torch.long)
            cc = torch.tensor([q for _, pr, _ in scored for q in pr], dtype=torch.long)
            yy = torch.tensor([y for _, _, ys in scored for y in ys], dtype=torch.long)
            if chunk_size > 0 or sort_by_length:  # only the scored positions' logits, chunk_size at a time
                flat = scored_logprobs(model, inputs, rr, cc, yy, chunk_size if chunk_size > 0 else max(1, len(rr)))
            else:
                logp = torch.log_softmax(model(**inputs, use_cache=False).logits.float(), -1)
                flat = logp[rr.to(device), cc.to(device), yy.to(device)]
            per_row: dict[int, list[torch.Tensor]] = {}
            for (r, _, _), lp in zip(scored, flat.split([len(pr) for _, pr, _ in scored])):
                per_row.setdefault(r, []).append(lp.mean().exp())
            for r, i in enumerate(rows):
                if r in per_row:
                    scores[i] = torch.stack(per_row[r]).cpu()
                if hidden is not None:
                    hidden[i] = recorded[0][r, : len(bases[i])]
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)
    return scores, hidden


def _recorder(store: list[torch.Tensor]):
    def hook(module, args, kwargs):
        store.append((args[0] if args else kwargs["hidden_states"]).detach())

    return hook


def _packed_inputs(
    bases: list[list[int]],
    context_lengths: list[list[int]],
    suffix_ids: list[list[int]],
    n_scored: list[int],
    pad_id: int,
    dtype: torch.dtype,
    drop: int = 0,
) -> tuple[dict[str, torch.Tensor], list[tuple[int, list[int], list[int]]]]:
    """Token ids, position ids and additive 4D mask of one pass of packed rows, and the scored
    (row, predictor positions, target ids) per block. A query sees the keys `allowed` marks: a base
    token its causal prefix; a block token the row's first c_k tokens and its own block causally; a
    padding query only itself (a query that sees nothing is NaN). `drop`: leave out the last `drop`
    suffix tokens of each block (targets only, read by no query)."""
    lengths = [len(b) + len(c) * (len(s) - drop) for b, c, s in zip(bases, context_lengths, suffix_ids)]
    width = max(lengths)
    ids = torch.full((len(bases), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(bases), width), dtype=torch.long)
    allowed = torch.zeros((len(bases), width, width), dtype=torch.bool)
    scored: list[tuple[int, list[int], list[int]]] = []
    for r, (base, ctx, suffix) in enumerate(zip(bases, context_lengths, suffix_ids)):
        n, s, length = len(base), len(suffix) - drop, lengths[r]
        c = torch.tensor(ctx, dtype=torch.long)
        q = torch.arange(length)
        block = torch.where(q >= n, (q - n) // s, -1) if s else torch.full((length,), -1)
        no_prefix = torch.zeros(length, dtype=torch.long)
        prefix = torch.where(block >= 0, c[block.clamp(min=0)], 0) if len(ctx) else no_prefix
        ids[r, :length] = torch.tensor(base + suffix[:s] * len(ctx), dtype=torch.long)
        pos[r, :length] = torch.where(block >= 0, prefix + (q - n) % max(s, 1), q)
        allowed[r, :length, :length] = ((block[:, None] == block[None, :]) & (q[None, :] <= q[:, None])) | (
            q[None, :] < prefix[:, None]
        )
        pad = torch.arange(length, width)
        allowed[r, pad, pad] = True
        first_scored = len(suffix) - n_scored[r]
        for k, ck in enumerate(ctx):
            a = n + k * s
            # token j of the block is predicted at block position j - 1 (or at prefix token c - 1)
            predictors = [a + j - 1 if j > 0 else ck - 1 for j in range(first_scored, len(suffix))]
            scored.append((r, predictors, suffix[first_scored:]))
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {"input_ids": ids, "attention_mask": mask[:, None], "position_ids": pos}, scored


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
    hidden = decoder_of(model)(**inputs, use_cache=False).last_hidden_state
    device = hidden.device
    picked = hidden[rows.to(device), cols.to(device)]  # [M, H]
    head = model.get_output_embeddings()
    out = []
    for a in range(0, picked.shape[0], chunk_size):
        logp = torch.log_softmax(head(picked[a : a + chunk_size]).float(), -1)
        out.append(logp.gather(-1, targets[a : a + chunk_size].to(device).unsqueeze(-1)).squeeze(-1))
    return torch.cat(out) if out else torch.zeros(0, device=device)
