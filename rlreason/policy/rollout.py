"""Generation: G samples per prompt with a KV cache, log-probs recorded while sampling.

The `hf` backend drives any `transformers` causal LM with its own decoding loop instead of
`model.generate`, for two reasons: it records each sampled token's log-probability under the
temperature-scaled policy at no extra cost (so an on-policy update needs no second forward pass),
and it draws randomness per sequence (`rlreason.policy.sampling`), so a rollout does not depend on
how samples are batched or sharded. Other backends subclass `RolloutBackend` and register in
`ROLLOUT_BACKENDS` (`rollout.backend: <name>`): `vllm` is `rlreason/policy/vllm_engine.py`.

Log-probabilities are those of softmax(logits / temperature) over the full vocabulary, the
distribution the training loss also uses (as TRL does); top-k / top-p only restrict which token is
drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlreason.policy.cache_arg import cache_kwarg
from rlreason.policy.decode_state import DecodeRecorder, DecodeState, weights_version
from rlreason.policy.decoder import decoder_of
from rlreason.policy.padding import left_pad
from rlreason.policy.sampling import sample_tokens, uniforms
from rlreason.registry import ROLLOUT_BACKENDS


@dataclass
class SamplingParams:
    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    stop_on_eos: bool = True


@dataclass
class Generation:
    response_ids: torch.Tensor  # [N, T] right-padded with pad_id
    response_mask: torch.Tensor  # [N, T]
    logprobs: torch.Tensor  # [N, T] log pi(o_t) under softmax(logits / temperature); 0 at padding
    truncated: torch.Tensor  # [N] bool
    decode_state: DecodeState | None = None  # the KV cache, with `keep_decode_state` (policy/decode_state.py)
    policy_version: int = -1  # the optimiser step whose weights sampled it (an engine with its own copy; -1: live)


class RolloutBackend:
    """What `rollout.backend` names (`ROLLOUT_BACKENDS`), built once per run with the EOS ids, the pad
    id, `rollout.batch_size` (sequences at once; 0: all) and whether the reward reads the rollout's KV
    cache. `generate` samples one response per token-id prompt, each from its own seed.

    A backend that samples from its own copy of the weights (an inference engine) declares
    `holds_weights`; the training step then pushes the policy into it with `sync` after its
    optimiser updates (and before the first rollout), and `version` says which optimiser step it
    holds."""

    holds_weights: bool = False
    version: int = 0  # the optimiser step whose weights the backend samples from (holds_weights)
    reads_engine_settings: bool = False  # `rollout.vllm` is this backend's (else it is unused, with a warning)

    def __init__(self, eos_ids: list[int], pad_id: int, batch_size: int = 0, keep_decode_state: bool = False) -> None:
        self.eos_ids = torch.tensor(sorted(set(eos_ids)), dtype=torch.long)
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.keep_decode_state = keep_decode_state

    @classmethod
    def settings_problem(cls, engine: dict[str, Any], trainer: dict[str, Any]) -> tuple[str, str] | None:
        """(key under `rollout`, what is wrong) for this backend's engine settings (`rollout.vllm`) and
        the trainer it would run under (`trainer`), or None; checked when a config loads."""
        return None

    def configure(self, engine: dict[str, Any], model_dtype: str) -> None:
        """An engine's own settings (`rollout.vllm`) and `model.dtype`; nothing to set by default."""

    def generate(
        self, model: torch.nn.Module, prompts: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> Generation:
        raise NotImplementedError

    def sync(self, model: torch.nn.Module, version: int) -> None:
        """Push `model`'s weights into the backend's own copy (`holds_weights` backends only)."""
        raise NotImplementedError(f"{type(self).__name__} samples from the live policy: nothing to sync")


def build_backend(
    name: str,
    eos_ids: list[int],
    pad_id: int,
    batch_size: int = 0,
    keep_decode_state: bool = False,
    engine: dict[str, Any] | None = None,
    model_dtype: str = "float32",
) -> RolloutBackend:
    """The registered backend `name` (`rollout.backend`), configured with its engine settings."""
    backend = ROLLOUT_BACKENDS.get(name, where="rollout.backend")(eos_ids, pad_id, batch_size, keep_decode_state)
    backend.configure(dict(engine or {}), model_dtype)
    return backend


@ROLLOUT_BACKENDS.register("hf")
class HFRolloutBackend(RolloutBackend):
    """Batched sampling with the model's own KV cache (`rollout.backend: hf`), from the live policy.

    `keep_decode_state`: also return the cache of every row (and the last layer's inputs) for a
    reward that reads the sequences again (`Reward.reads_decode_state`). The samples are the same
    either way."""

    @torch.no_grad()
    def generate(
        self,
        model: torch.nn.Module,
        prompts: list[list[int]],
        params: SamplingParams,
        seeds: list[int],
    ) -> Generation:
        """Sample one response per prompt token list (repeat a prompt G times for a group)."""
        chunk = self.batch_size or len(prompts)
        parts = [
            self._generate_chunk(model, prompts[i : i + chunk], params, seeds[i : i + chunk])
            for i in range(0, len(prompts), chunk)
        ]
        width = max(p.response_ids.shape[1] for p in parts)

        def cat(name: str, fill: float) -> torch.Tensor:
            tensors = [getattr(p, name) for p in parts]
            return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill) for t in tensors])

        states = [p.decode_state for p in parts]
        return Generation(
            response_ids=cat("response_ids", self.pad_id),
            response_mask=cat("response_mask", 0),
            logprobs=cat("logprobs", 0.0),
            truncated=torch.cat([p.truncated for p in parts]),
            decode_state=DecodeState.concat(states) if all(states) else None,  # type: ignore[arg-type]
        )

    def _generate_chunk(
        self, model: torch.nn.Module, prompts: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> Generation:
        from transformers import DynamicCache  # here, not at import: config validation imports this registry

        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        recorder: DecodeRecorder | None = None
        try:
            ids, mask = left_pad(prompts, self.pad_id)
            ids, mask = ids.to(device), mask.to(device)
            prompt_mask = mask
            n, t_max = ids.shape[0], params.max_new_tokens
            u = uniforms(seeds, t_max) if params.temperature > 0 else None
            eos = self.eos_ids.to(device)
            out_ids = torch.full((n, t_max), self.pad_id, dtype=torch.long, device=device)
            out_lp = torch.zeros((n, t_max), dtype=torch.float32, device=device)
            out_mask = torch.zeros((n, t_max), dtype=torch.long, device=device)
            done = torch.zeros(n, dtype=torch.bool, device=device)
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            # our own cache object, updated in place by every forward: nothing is read back from the
            # outputs' deprecated `past_key_values` field
            cache = DynamicCache(config=model.config)
            kw = cache_kwarg(model)
            recorder = _recorder(model, n, ids.shape[1] + t_max, ids.shape[1]) if self.keep_decode_state else None
            out = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, **{kw: cache})
            rows = torch.arange(n, device=device)  # rows still generating; finished ones leave the batch
            # one query per decoding step: for sdpa, the mask transformers builds from a padded 2D mask
            # is that mask as [rows, 1, 1, keys] booleans; passing it ready skips rebuilding it every
            # token (the same values, so the same attention; 6 % of a lab rollout). Rows without
            # padding (also once finished rows have left) keep the 2D mask, for which transformers
            # passes no mask at all; eager attention wants an additive float mask instead. Only the
            # prompt columns can be padding, so this changes only when rows leave.
            sdpa = getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
            ready = sdpa and not bool(prompt_mask.all())
            if recorder is not None:
                recorder.record_inputs(rows, 0, ids.shape[1])
            logits = out.logits[:, -1, :]
            next_pos = position[:, -1:] + 1
            steps = 0
            for t in range(t_max):
                steps = t + 1
                logits = logits.float()
                if params.temperature > 0:
                    scaled = logits / params.temperature
                    tok = sample_tokens(scaled, u[rows.cpu(), t], params.top_k, params.top_p)  # type: ignore[index]
                else:
                    scaled = logits
                    tok = scaled.argmax(-1)
                lp = torch.log_softmax(scaled, -1).gather(-1, tok[:, None]).squeeze(-1)
                out_ids[rows, t] = tok
                out_lp[rows, t] = lp
                out_mask[rows, t] = 1
                finished = torch.isin(tok, eos) if params.stop_on_eos else torch.zeros_like(tok, dtype=torch.bool)
                done[rows[finished]] = True
                if bool(done.all()) or t == t_max - 1:
                    break
                keep = ~finished
                if not bool(keep.all()):  # compact: drop finished rows from the batch and the KV cache
                    if recorder is not None:  # their cache, before it is dropped
                        leaving = torch.nonzero(finished).squeeze(-1)
                        recorder.save_rows(cache, leaving, rows[leaving])
                    idx = torch.nonzero(keep).squeeze(-1)
                    cache.batch_select_indices(idx)
                    rows, tok, mask, next_pos = rows[idx], tok[idx], mask[idx], next_pos[idx]
                    ready = ready and not bool(prompt_mask[rows].all())
                mask = torch.cat([mask, torch.ones((mask.shape[0], 1), dtype=mask.dtype, device=device)], dim=1)
                out = model(
                    input_ids=tok[:, None],
                    attention_mask=mask[:, None, None, :].bool() if ready else mask,
                    position_ids=next_pos,
                    use_cache=True,
                    **{kw: cache},
                )
                if recorder is not None:
                    recorder.record_inputs(rows, ids.shape[1] + t, 1)
                logits = out.logits[:, -1, :]
                next_pos = next_pos + 1
            state = None
            if recorder is not None:
                recorder.save_rows(cache, torch.arange(rows.numel(), device=device), rows)
                state = recorder.close(prompt_mask, out_mask[:, :steps])
                recorder = None
            truncated = ~done if params.stop_on_eos else torch.ones(n, dtype=torch.bool, device=device)
            return Generation(
                response_ids=out_ids[:, :steps].cpu(),
                response_mask=out_mask[:, :steps].cpu(),
                logprobs=out_lp[:, :steps].cpu(),
                truncated=truncated.cpu(),
                decode_state=state,
            )
        finally:
            if recorder is not None:  # sampling failed: leave no hook behind
                recorder.remove()
            model.train(was_training)


def _recorder(model: torch.nn.Module, n: int, width: int, prompt_width: int) -> DecodeRecorder | None:
    """A recorder on the model's last decoder layer; None for a model without one (`decoder.layers`):
    its rollout keeps no cache and the reward that asked falls back to its own pass."""
    try:
        layers = decoder_of(model).layers
    except (ValueError, AttributeError):
        return None
    if not len(layers):
        return None
    return DecodeRecorder(layers[-1], n, width, prompt_width, weights_version(model))
