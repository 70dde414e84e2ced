"""J(s), the policy's forced-answer likelihood of the gold answer after a prefix s: L2T's fitting-gain score.

J(s) is the geometric-mean probability of the gold tokens (cue + gold + EOS teacher-forced after s).
`forced_answer_scores` runs one sequence per (prefix, answer); `packed_forced_answer_scores` scores
every prefix of a sample in one pass with a custom 4D attention mask; `scored_logprobs` applies the
output head only at the scored positions (`chunk_size`), so no [rows, width, vocab] logits are held.
"""

from __future__ import annotations

import torch

from rlreason.errors import RLReasonError
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
