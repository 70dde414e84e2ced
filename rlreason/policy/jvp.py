"""Forward-mode directional derivatives of a policy's response log-probs, d log pi(o_t) / d theta . v.

One `torch.func.jvp` per batch chunk gives, for a tangent v over some parameters (e.g. the
displacement from `rlreason.policy.tangent`), every response token's directional derivative with
no backward pass and no per-token gradient: what L2T's compression penalty (`info_gain`) needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.func import functional_call, jvp

from rlreason.batch import RolloutBatch
from rlreason.policy.decoder import decoder_of
from rlreason.policy.length_passes import length_sorted_passes
from rlreason.policy.padding import right_pad


@contextlib.contextmanager
def jvp_ready(model: torch.nn.Module) -> Iterator[None]:
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
            ids, mask = right_pad(seqs, 0)
            ids, mask = ids.to(device), mask.to(device)
            # logits at position p predict token p + 1: response token t sits at start + t
            index = torch.tensor(starts, device=device)[:, None] - 1 + torch.arange(n_resp_max, device=device)
            index = index.clamp(max=ids.shape[1] - 2)
            targets = ids.gather(1, index + 1)  # [n, T] the response tokens (junk past each response's end)

            def logprobs(params: dict[str, torch.Tensor], ids=ids, mask=mask, index=index, targets=targets):
                if chunk_size > 0:
                    return _chunked_jvp_logprobs(model, params, ids, mask, index, targets, chunk_size)
                kwargs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}  # no K/V copies
                logits = functional_call(model, params, (), kwargs, strict=False)
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


def last_block_tangent(model: torch.nn.Module, tangent: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The tangent renamed to the last decoder layer's own parameter names when all of it lives in
    that layer (`params: last_block`) and the model has the Llama/Qwen layout (decoder `layers`,
    `norm`, `rotary_emb`); None otherwise. Then `last_block_directional_logprobs` applies."""
    try:
        decoder = decoder_of(model)
    except ValueError:
        return None
    if not all(hasattr(decoder, a) for a in ("layers", "norm", "rotary_emb")) or not len(decoder.layers):
        return None
    local = {id(p): n for n, p in decoder.layers[-1].named_parameters()}
    params = dict(model.named_parameters())
    if not all(id(params[n]) in local for n in tangent if n in params) or any(n not in params for n in tangent):
        return None
    return {local[id(params[n])]: t for n, t in tangent.items()}


def last_block_directional_logprobs(
    model: torch.nn.Module,
    batch: RolloutBatch,
    layer_inputs: list[torch.Tensor],
    tangent: dict[str, torch.Tensor],
    batch_size: int,
) -> torch.Tensor:
    """`directional_logprobs` for a tangent on the last decoder layer only (`last_block_tangent`),
    pushed forward from that layer's input hidden states on prompt + response (`layer_inputs[i]`,
    [len, H], e.g. recorded by the packed scoring pass): the layers below carry no tangent, so they
    are not run again; the output head runs on the response positions only. Rows go into passes
    by length (`rlreason.policy.length_passes`: less padding). Equal to `directional_logprobs` up
    to float32 rounding."""
    decoder = decoder_of(model)
    layer, head = decoder.layers[-1], model.get_output_embeddings()
    device = next(model.parameters()).device
    primals = {n: p.detach() for n, p in layer.named_parameters() if n in tangent}
    tangents = {n: tangent[n].to(device) for n in primals}
    n_resp_max = batch.response_ids.shape[1]
    lengths = [int(h.shape[0]) for h in layer_inputs]
    out: torch.Tensor | None = None
    with jvp_ready(model):
        for rows in length_sorted_passes(lengths, batch_size):
            width = max(lengths[i] for i in rows)
            hidden = torch.zeros(len(rows), width, layer_inputs[rows[0]].shape[-1], dtype=layer_inputs[rows[0]].dtype)
            hidden = hidden.to(device)
            seqs, starts = [], []
            for r, i in enumerate(rows):
                prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist()
                seqs.append(prompt + batch.response_ids[i][batch.response_mask[i].bool()].tolist())
                starts.append(len(prompt))
                hidden[r, : lengths[i]] = layer_inputs[i]
            ids, valid = right_pad(seqs, 0)
            ids, valid = ids.to(device), valid.to(device).bool()
            q = torch.arange(width, device=device)
            allowed = (q[None, :] <= q[:, None])[None] & valid[:, None, :]  # causal, real keys (pad queries too)
            mask = torch.zeros(allowed.shape, dtype=hidden.dtype, device=device)
            mask = mask.masked_fill(~allowed, torch.finfo(hidden.dtype).min)[:, None]
            pos = q[None].expand(len(rows), -1)
            rope = decoder.rotary_emb(hidden, pos)
            index = torch.tensor(starts, device=device)[:, None] - 1 + torch.arange(n_resp_max, device=device)
            index = index.clamp(max=width - 2)
            targets = ids.gather(1, index + 1)

            def logprobs(params, hidden=hidden, mask=mask, pos=pos, rope=rope, index=index, targets=targets):
                kwargs = {"attention_mask": mask, "position_ids": pos, "position_embeddings": rope}
                y = functional_call(layer, params, (hidden,), kwargs, strict=False)
                y = decoder.norm(y[0] if isinstance(y, tuple) else y)
                at = y.gather(1, index.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
                raw = head(at)
                logp = torch.log_softmax(raw.to(torch.promote_types(raw.dtype, torch.float32)), -1)
                return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

            _, d = jvp(logprobs, (primals,), (tangents,))
            keep = batch.response_mask[rows].to(device).bool()
            if out is None:
                out = torch.zeros(batch.num_samples, n_resp_max, dtype=d.dtype)
            out[rows] = torch.where(keep, d, torch.zeros_like(d)).detach().cpu()
    return out if out is not None else torch.zeros(0, n_resp_max)
