"""The rollout's KV cache, kept past sampling for a reward that reads the same sequences again.

L2T's information-gain reward scores forced answers after every episode prefix of a response: its
packed pass runs prompt + response through the whole model again, which is most of its tokens
(`rlreason.rewards.forced_answer`). The rollout has already computed every layer's keys and values
on those positions, so `reward.scoring: rollout_cache` reads them from here and runs only the
cue + gold blocks; the penalty's JVP on the last block reads that layer's recorded inputs.

Layout, as the rollout lays out its batch: row i's prompt is left-padded into columns [0, P),
response token t sits at column P + t; `valid` marks the columns the model has seen: the prompt and
every response token but the last (sampled, never fed back; a prefix that includes it is scored by
the packed pass instead). Values are the decoding
loop's (one token at a time), which differ from a whole-sequence forward by float32 rounding only.

Memory: the whole batch's cache, [N, P + T] positions of every layer's keys and values, lives from
the rollout until the reward; that is why it is opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlreason.policy.cache_arg import cache_kwarg
from rlreason.policy.decoder import decoder_of


@dataclass
class DecodeState:
    keys: list[torch.Tensor]  # per layer [N, kv_heads, S, head_dim]
    values: list[torch.Tensor]
    layer_input: torch.Tensor  # [N, S, hidden]: the last decoder layer's input at every column
    valid: torch.Tensor  # [N, S] bool
    prompt_width: int  # P
    weights_version: int = -1  # `weights_version(model)` when the cache was filled

    def matches(self, model: torch.nn.Module) -> bool:
        """The cache was filled by these weights as they are now (no in-place update since)."""
        return self.weights_version == weights_version(model)

    def sequence_layer_input(self, i: int, prompt_len: int, response_len: int) -> torch.Tensor:
        """[prompt_len + response_len, hidden]: row i's layer inputs on its prompt + response, in order."""
        p = self.prompt_width
        return self.layer_input[i, p - prompt_len : p + response_len]

    def select(self, rows: list[int]) -> DecodeState:
        """The state of the batch rows `rows`, in that order."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.valid.device)
        return DecodeState(
            keys=[k[idx] for k in self.keys],
            values=[v[idx] for v in self.values],
            layer_input=self.layer_input[idx],
            valid=self.valid[idx],
            prompt_width=self.prompt_width,
            weights_version=self.weights_version,
        )

    @staticmethod
    def concat(parts: list[DecodeState]) -> DecodeState:
        """Rows of several rollout chunks in one state (columns padded to the widest; pads invalid)."""
        p = max(s.prompt_width for s in parts)
        width = max(p + s.valid.shape[1] - s.prompt_width for s in parts)

        def place(t: torch.Tensor, s: DecodeState, dim: int) -> torch.Tensor:
            before = p - s.prompt_width
            after = width - before - t.shape[dim]
            pad = [0, 0] * (t.dim() - 1 - dim) + [before, after]
            return torch.nn.functional.pad(t, pad)

        layers = len(parts[0].keys)
        return DecodeState(
            keys=[torch.cat([place(s.keys[k], s, 2) for s in parts]) for k in range(layers)],
            values=[torch.cat([place(s.values[k], s, 2) for s in parts]) for k in range(layers)],
            layer_input=torch.cat([place(s.layer_input, s, 1) for s in parts]),
            valid=torch.cat([place(s.valid, s, 1) for s in parts]),
            prompt_width=p,
            weights_version=parts[0].weights_version if len({s.weights_version for s in parts}) == 1 else -1,
        )


def weights_version(model: torch.nn.Module) -> int:
    """A counter that every in-place change of a parameter advances (the optimiser's step, a load):
    a cache is only valid for the weights that filled it."""
    return sum(p._version for p in model.parameters())


class DecodeRecorder:
    """Keeps what the decoding loop's cache holds for every row, including the rows it drops.

    The rollout drops finished rows from its working cache: `save_rows` copies a row's keys and
    values into the full-batch store once, as it leaves (and for the rest at the end), so the
    store costs one copy per row, not one per token. A forward pre-hook on the last decoder layer
    records that layer's input, one column per decoding step (`record_inputs`)."""

    def __init__(self, layer: torch.nn.Module, n: int, width: int, prompt_width: int, weights: int) -> None:
        self.n, self.width, self.prompt_width = n, width, prompt_width
        self.weights_version = weights  # `weights_version(model)` at sampling time
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.hidden: torch.Tensor | None = None
        self._inputs: list[torch.Tensor] = []
        self._hook = layer.register_forward_pre_hook(self._record_input, with_kwargs=True)

    def _record_input(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        self._inputs.append((args[0] if args else kwargs["hidden_states"]).detach())

    def record_inputs(self, rows: torch.Tensor, start: int, length: int) -> None:
        """The last forward's layer inputs of the active `rows`, into columns [start, start + length)."""
        inp = self._inputs[-1]
        if self.hidden is None:
            self.hidden = inp.new_zeros((self.n, self.width, inp.shape[-1]))
        if length == self.width or rows.numel() == self.n:  # every row: a plain slice copy
            self.hidden[:, start : start + length] = inp[:, -length:]
        else:
            self.hidden[rows, start : start + length] = inp[:, -length:]
        self._inputs.clear()

    def save_rows(self, cache: object, local: torch.Tensor, rows: torch.Tensor) -> None:
        """Copy the cache rows `local` (the batch rows `rows`) into the store: every column so far."""
        layers = cache.layers  # type: ignore[attr-defined]
        if not self.keys:  # zeros, not empty: a masked column must still give a finite score
            for layer in layers:
                _, h, _, d = layer.keys.shape
                self.keys.append(layer.keys.new_zeros((self.n, h, self.width, d)))
                self.values.append(layer.values.new_zeros((self.n, h, self.width, layer.values.shape[-1])))
        for store_k, store_v, layer in zip(self.keys, self.values, layers):
            length = layer.keys.shape[2]
            store_k[:, :, :length].index_copy_(0, rows, layer.keys.index_select(0, local))
            store_v[:, :, :length].index_copy_(0, rows, layer.values.index_select(0, local))

    def close(self, prompt_mask: torch.Tensor, response_mask: torch.Tensor) -> DecodeState:
        """The state: every column the loop fed through the model. Each row's last sampled token was
        never fed back, so its column is not valid (no query of the response reads it)."""
        p = self.prompt_width
        lengths = response_mask.sum(-1)
        width = p + (int(lengths.max()) if lengths.numel() else 0)
        valid = torch.cat([prompt_mask.bool(), response_mask.bool()], dim=1)[:, :width].clone()
        rows = torch.arange(self.n, device=valid.device)
        valid[rows, p + (lengths - 1).clamp(min=0)] = False
        self.remove()
        assert self.hidden is not None
        return DecodeState(
            keys=[k[:, :, :width] for k in self.keys],
            values=[v[:, :, :width] for v in self.values],
            layer_input=self.hidden[:, :width],
            valid=valid,
            prompt_width=p,
            weights_version=self.weights_version,
        )

    def remove(self) -> None:
        self._hook.remove()


@torch.no_grad()
def teacher_forced_state(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
) -> DecodeState:
    """The state the rollout would have kept for these responses, from one forward over the whole
    sequences instead of token by token (same layout; values equal up to float rounding)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = torch.cat([prompt_ids, response_ids], dim=1).to(device)
    mask = torch.cat([prompt_mask, response_mask], dim=1).to(device)
    n, width = ids.shape
    recorder = DecodeRecorder(decoder_of(model).layers[-1], n, width, prompt_ids.shape[1], weights_version(model))
    was_training = model.training
    model.eval()
    try:
        cache = DynamicCache(config=model.config)
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, **{cache_kwarg(model): cache})
        every = torch.arange(n, device=device)
        recorder.save_rows(cache, every, every)
        recorder.record_inputs(every, 0, width)
        return recorder.close(prompt_mask.to(device), response_mask.to(device))  # as the rollout's
    finally:
        recorder.remove()
        model.train(was_training)
