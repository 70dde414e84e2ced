"""J(s) at every episode prefix from the rollout's KV cache (`info_gain`'s `scoring: rollout_cache`).

The packed pass (`rlreason.rewards.forced_answer`) runs each sample's prompt + response and then its
K + 1 cue + gold blocks through the whole model. Here the prompt + response part comes from the
rollout's cache (`rlreason.policy.decode_state`): only the blocks run, each attending to the cached
keys and values of its prefix and to itself causally, with position ids continuing at the prefix,
so a block computes what the sequence prefix + suffix would, up to the float32 rounding of the
decoding loop's keys and values. The first suffix token is predicted by the prefix's last position,
whose output the cache does not hold, so the answer cue must be non-empty (`InfoGain` falls back to
the packed pass otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlreason.policy.cache_arg import cache_kwarg
from rlreason.policy.decode_state import DecodeState
from rlreason.policy.decoder import decoder_of
from rlreason.policy.length_passes import length_sorted_passes


def cache_is_usable(model: torch.nn.Module) -> bool:
    """Full attention in every layer (a sliding-window layer keeps only part of the prefix) and an
    attention kernel that honours a custom 4D mask."""
    config = getattr(model, "config", None)
    types = getattr(config, "layer_types", None) or []
    attn = getattr(config, "_attn_implementation", None)
    return all(t == "full_attention" for t in types) and attn in (None, "eager", "sdpa")


@torch.no_grad()
def cached_forced_answer_scores(
    model: torch.nn.Module,
    state: DecodeState,
    rows: list[int],
    prompt_lengths: list[int],
    responses: list[list[int]],
    boundaries: list[list[int]],
    suffix_ids: list[list[int]],
    n_scored: list[int],
    pad_id: int,
    batch_size: int,
) -> list[torch.Tensor]:
    """Per entry m (state row rows[m]): J after prompt + responses[m][:b] for every b in
    boundaries[m], the last n_scored[m] tokens of suffix_ids[m] (cue + gold + EOS) scored.

    The cache holds a row's response up to its last token (sampled, never fed back): a block whose
    prefix includes that token starts with it. Every scored token must be predicted inside its block,
    so the cue must be non-empty (the caller falls back to the packed pass otherwise)."""
    from transformers import DynamicCache

    body, head = decoder_of(model), model.get_output_embeddings()
    kwarg = cache_kwarg(body)
    device = state.valid.device
    dtype = state.layer_input.dtype
    p = state.prompt_width
    fed = (state.valid[:, p:].sum(-1)).tolist()  # response tokens in the cache, per row
    layouts = [
        block_layout(responses[m], fed[rows[m]], boundaries[m], suffix_ids[m], n_scored[m]) for m in range(len(rows))
    ]
    lengths = [sum(len(b.tokens) for b in lay) for lay in layouts]
    was_training = model.training
    model.eval()
    scores: list[torch.Tensor] = [torch.zeros(0)] * len(rows)
    try:
        for members in length_sorted_passes(lengths, batch_size):
            members = [m for m in members if layouts[m]]
            if not members:
                continue
            q_width = max(lengths[m] for m in members)
            s_width = max(b.sees for m in members for b in layouts[m])
            ids = torch.full((len(members), q_width), pad_id, dtype=torch.long)
            pos = torch.zeros((len(members), q_width), dtype=torch.long)
            sees_until = torch.zeros((len(members), q_width), dtype=torch.long)  # state columns < p + this
            block_of = torch.full((len(members), q_width), -1, dtype=torch.long)
            picks: list[tuple[int, int, int]] = []  # (pass row, query position, target id)
            groups: list[tuple[int, int]] = []  # (pass row, tokens scored) per block
            for r, m in enumerate(members):
                a = 0
                for k, blk in enumerate(layouts[m]):
                    n = len(blk.tokens)
                    ids[r, a : a + n] = torch.tensor(blk.tokens)
                    pos[r, a : a + n] = prompt_lengths[m] + blk.sees + torch.arange(n)
                    sees_until[r, a : a + n] = blk.sees
                    block_of[r, a : a + n] = k
                    picks += [(r, a + q, y) for q, y in blk.scored]
                    groups.append((r, len(blk.scored)))
                    a += n
            idx = torch.tensor([rows[m] for m in members], device=device)
            s_cols = p + s_width
            valid = state.valid[idx, :s_cols]
            col = torch.arange(s_cols, device=device)
            to_state = valid[:, None, :] & (col[None, None, :] < p + sees_until.to(device)[:, :, None])
            q = torch.arange(q_width, device=device)
            blocks = block_of.to(device)
            to_self = (blocks[:, :, None] == blocks[:, None, :]) & (q[None, None, :] <= q[None, :, None])
            to_self = to_self | torch.eye(q_width, dtype=torch.bool, device=device)[None]  # pads see themselves
            allowed = torch.cat([to_state, to_self], dim=-1)
            mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
            cache = DynamicCache(
                ddp_cache_data=[(k[idx, :, :s_cols], v[idx, :, :s_cols]) for k, v in zip(state.keys, state.values)]
            )
            hidden = body(
                input_ids=ids.to(device),
                attention_mask=mask[:, None],
                position_ids=pos.to(device),
                use_cache=True,
                **{kwarg: cache},
            ).last_hidden_state
            pr, pq, target = (torch.tensor(c, device=device) for c in zip(*picks))
            logp = torch.log_softmax(head(hidden[pr, pq]).float(), -1).gather(-1, target[:, None]).squeeze(-1)
            per_row: dict[int, list[torch.Tensor]] = {}
            for (r, _), lp in zip(groups, logp.split([n for _, n in groups])):
                per_row.setdefault(r, []).append(lp.mean().exp())
            for r, m in enumerate(members):
                scores[m] = torch.stack(per_row[r]).cpu()
    finally:
        model.train(was_training)
    return scores


@dataclass
class Block:
    tokens: list[int]  # what runs: the prefix tokens the cache lacks, then the suffix but its last token
    sees: int  # response tokens of the prefix read from the cache
    scored: list[tuple[int, int]]  # (block position predicting it, target id) per scored suffix token


def block_layout(response: list[int], fed: int, boundaries: list[int], suffix: list[int], n_scored: int) -> list[Block]:
    """One block per boundary b: the cache serves the prefix up to min(b, fed) response tokens."""
    first = len(suffix) - n_scored
    out = []
    for b in boundaries:
        sees = min(b, fed)
        extra = response[sees:b]
        tokens = extra + suffix[:-1]  # the last suffix token is only a target
        scored = [(len(extra) + j - 1, suffix[j]) for j in range(first, len(suffix))]
        if scored and scored[0][0] < 0:
            raise ValueError("cached scoring: the first scored token needs a non-empty answer cue")
        out.append(Block(tokens, sees, scored))
    return out
