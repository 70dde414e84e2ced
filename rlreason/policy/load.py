"""Loading a policy: any causal LM + tokenizer from a directory or hub name, or the lab model.

`lab-tiny` is built once per architecture (cached under `cache_dir/lab-tiny-<hash>`) and then loaded
from that directory like any checkpoint.

Precision: a policy loaded for training keeps float32 master weights whatever `model.dtype` says
(`model.dtype` is then the compute dtype: `trainer.precision: bf16-mixed` autocasts the forward
passes). At lr 1e-6 almost every AdamW update of a bf16 weight is below half a bf16 ulp and rounds
away; verl and TRL keep fp32 master weights with bf16 compute for the same reason.

Start-up checks, each a one-line `ConfigError`: the tokenizer must round-trip a sample with
spaces, newlines and ``\\boxed{}`` (transformers v5 may rebuild the pre-tokenizer of a
`LlamaTokenizer`-class config over a ByteLevel `tokenizer.json`, as R1-Distill's is, and silently
lose spaces: the published `tokenizer.json` is then read as it is, and refused only if that loses
text too), and every control token must be one id; the resolved ids are printed in one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from rlreason.errors import ConfigError
from rlreason.policy.control_tokens import ControlTokens, setup_control_tokens
from rlreason.policy.lab_tiny import DEFAULT_ARCH, build_lab_tiny
from rlreason.policy.lora import apply_lora, is_adapter_dir, is_lora, load_adapter_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def lab_tiny_dir(cache_dir: Path, arch: dict[str, Any]) -> Path:
    key = json.dumps({**DEFAULT_ARCH, **arch}, sort_keys=True)
    path = Path(cache_dir) / f"lab-tiny-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if not (path / "config.json").is_file():
        try:
            build_lab_tiny(path, **arch)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(
                f"model.name_or_path: cannot build lab-tiny in the cache {cache_dir} ({exc.strerror or exc});"
                " set RLREASON_CACHE to a writable directory"
            ) from None
    return path


ROUND_TRIP_SAMPLE = "Let x = 3.\n\n  Then  \\boxed{x^2 + 1} = 10, so\tthe answer is \\boxed{\\frac{1}{2}}.\n"


def load_policy(
    model_cfg: Any, *, cache_dir: Path, training: bool = False, quiet: bool = False
) -> tuple[torch.nn.Module, Any, ControlTokens]:
    """(model, tokenizer, control tokens) for `model_cfg` (the `model` section of an experiment).

    `training`: float32 master weights whatever `model.dtype` says (see the module docstring); with
    `model.lora` the frozen base stays in `model.dtype` and the float32 adapters are the masters."""
    hf_logging.disable_progress_bar()
    name = str(model_cfg.name_or_path)
    lab = dict(model_cfg.lab) if model_cfg.lab else {}
    path = str(lab_tiny_dir(cache_dir, lab)) if name == "lab-tiny" else name
    is_local = Path(path).exists()
    if not is_local and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise ConfigError(f"model.name_or_path: '{name}' does not exist (expected a model directory or hub name)")
    if not is_local:
        _check_hub_available(name, path, local_files_only=bool(model_cfg.local_files_only))
    lora = dict(model_cfg.lora) if getattr(model_cfg, "lora", None) else {}
    kwargs: dict[str, Any] = {
        "trust_remote_code": bool(model_cfg.trust_remote_code),
        "local_files_only": bool(model_cfg.local_files_only),
    }
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        load_kwargs = {
            "dtype": torch.float32 if training and not lora else DTYPES[model_cfg.dtype],
            **({"attn_implementation": model_cfg.attn_implementation} if model_cfg.attn_implementation else {}),
            **kwargs,
        }
        if is_adapter_dir(path):  # a LoRA run's policy: base + adapter (training continues the adapter)
            model = load_adapter_model(path, trainable=training, **load_kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **load_kwargs)
    except OSError as exc:
        where = "a directory without a usable model" if is_local else "not reachable on the Hugging Face Hub (offline?)"
        raise ConfigError(
            f"model.name_or_path: cannot load '{name}': {where} ({str(exc).splitlines()[0][:160]})"
        ) from None
    tokenizer = round_tripping(tokenizer, path, name, kwargs, quiet=quiet)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model_cfg.chat_template:
        tokenizer.chat_template = model_cfg.chat_template
    control = setup_control_tokens(
        model,
        tokenizer,
        mode=model_cfg.control_tokens,
        mapping=dict(model_cfg.control_token_map or {}),
    )
    if lora and training and not is_lora(model):  # after the control tokens: their rows are the frozen base's
        model = apply_lora(model, lora)
    if not quiet:
        print(f"[rlreason] control tokens: {control.describe()}", flush=True)
    return model, tokenizer, control


def round_tripping(tokenizer: Any, path: str, name: str, kwargs: dict[str, Any], *, quiet: bool = False) -> Any:
    """`tokenizer`, or, when its class rebuilt the pre-tokenizer and loses text, the checkpoint's own
    `tokenizer.json` read as published (`PreTrainedTokenizerFast`: the same vocabulary, merges, special
    tokens and chat template); transformers below 5.20 rebuilds a `LlamaTokenizer` config over a
    ByteLevel `tokenizer.json` that way. Neither round-trips: `check_round_trip`'s one-line error."""
    if decoded(tokenizer) == ROUND_TRIP_SAMPLE:
        return tokenizer
    try:
        published = PreTrainedTokenizerFast.from_pretrained(path, **kwargs)
    except (OSError, ValueError):
        published = None
    if published is None or decoded(published) != ROUND_TRIP_SAMPLE:
        check_round_trip(tokenizer, name)
    if not quiet:
        print(
            f"[rlreason] tokenizer: {type(tokenizer).__name__} loses text under this transformers; "
            f"using {name}'s tokenizer.json as published",
            flush=True,
        )
    return published


def decoded(tokenizer: Any, sample: str = ROUND_TRIP_SAMPLE) -> str:
    """decode(encode(sample)), special tokens and spaces as they come back."""
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def check_round_trip(tokenizer: Any, name: str, sample: str = ROUND_TRIP_SAMPLE) -> None:
    """decode(encode(sample)) must give `sample` back, or the policy trains on text it cannot read."""
    back = decoded(tokenizer, sample)
    if back != sample:
        raise ConfigError(
            f"model.name_or_path: the tokenizer of '{name}' does not round-trip text: {sample!r} decodes to "
            f"{back!r} ({type(tokenizer).__name__}; a transformers version that swapped its pre-tokenizer? "
            f"set tokenizer_class to TokenizersBackend / PreTrainedTokenizerFast in tokenizer_config.json)"
        )


def _check_hub_available(name: str, repo_id: str, *, local_files_only: bool) -> None:
    """Refuse, in one line, a hub model that cannot be fetched: offline and not in the local cache.

    Without this the user gets transformers' multi-line OSError (or, with a flaky network, a long
    retry loop) only after every other component has been built.
    """
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    offline = is_offline_mode()
    if not (offline or local_files_only):
        return
    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:
        raise ConfigError(
            f"model.name_or_path: '{name}' is neither a local directory nor a valid hub name (expected owner/model)"
        ) from None
    if isinstance(cached, str):
        return
    why = (
        "the Hugging Face hub is offline (HF_HUB_OFFLINE=1)"
        if offline
        else "model.local_files_only is true (no download allowed)"
    )
    raise ConfigError(
        f"model.name_or_path: '{name}' is not a local directory and {why} and it is not in the cache "
        f"{constants.HF_HUB_CACHE}; download it on a machine with network (huggingface-cli download {repo_id}) "
        f"or give a local path"
    )


def format_prompt(tokenizer: Any, prompt: str, model_cfg: Any) -> str:
    """The text the model sees: the raw prompt, or the chat template with a generation prompt."""
    if not model_cfg.use_chat_template:
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("model.use_chat_template: the tokenizer has no chat template (set model.chat_template)")
    messages = []
    if model_cfg.system_prompt:
        messages.append({"role": "system", "content": model_cfg.system_prompt})
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
