"""LoRA through PEFT (`model.lora: {r, alpha, dropout, target_modules, merged_export}`), optional extra `peft`.

Only the adapters train; the base stays frozen in `model.dtype` (bf16 halves its memory, and a
frozen weight needs no fp32 master copy), while the adapters are float32 master weights (PEFT's
`autocast_adapter_dtype`). The KL reference is the same model with its adapters disabled
(`adapters_disabled`): no second copy in memory. `save_pretrained` of the policy writes the adapter
(`adapter_config.json` + weights, which `AutoModelForCausalLM.from_pretrained` loads onto its base
when peft is installed); `merged_export: true` also writes `merged/`, a plain checkpoint with the
adapters folded in, for serving without peft.

`model.disable_dropout` (the default) zeroes the adapters' dropout too: sampling runs without it,
so training with it would break the ratio-1 start of every step (set `disable_dropout: false` to keep
`lora.dropout`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlreason.errors import ConfigError

KEYS = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear", "merged_export": False}


def lora_problem(lora: dict[str, Any]) -> tuple[str, str] | None:
    """(key, expectation) of the first invalid `model.lora` entry, or None (checked at config load)."""
    for key in lora:
        if key not in KEYS:
            return key, f"unknown key (valid: {', '.join(KEYS)})"
    r, alpha, dropout = lora.get("r", 8), lora.get("alpha", 16), lora.get("dropout", 0.0)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        return "r", f"expected a positive integer rank, got {r!r}"
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        return "alpha", f"expected a positive number, got {alpha!r}"
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        return "dropout", f"expected a probability in [0, 1), got {dropout!r}"
    targets = lora.get("target_modules", "all-linear")
    if not (
        isinstance(targets, str) or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))
    ):
        return "target_modules", f"expected 'all-linear' or a list of module names, got {targets!r}"
    return None


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def apply_lora(model: torch.nn.Module, lora: dict[str, Any]) -> torch.nn.Module:
    """Wrap `model` with trainable LoRA adapters (base frozen); needs the optional extra `peft`."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("model.lora: needs the optional extra peft (pip install 'rlreason[peft]')") from None
    cfg = {**KEYS, **lora}
    targets = cfg["target_modules"]
    config = LoraConfig(
        r=int(cfg["r"]),
        lora_alpha=float(cfg["alpha"]),
        lora_dropout=float(cfg["dropout"]),
        target_modules=list(targets) if not isinstance(targets, str) else targets,
        task_type="CAUSAL_LM",
    )
    try:
        wrapped = get_peft_model(model, config, autocast_adapter_dtype=True)
    except ValueError as exc:  # e.g. target modules not found in the model
        raise ConfigError(f"model.lora.target_modules: {str(exc).splitlines()[0]}") from None
    for p in wrapped.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return wrapped


@contextlib.contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The base model (the KL reference) for the duration of the block."""
    with model.disable_adapter():
        yield model


def merged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A plain model with the adapters folded into the base weights (the policy itself is untouched)."""
    return copy.deepcopy(model).merge_and_unload()


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_adapter_model(path: str | Path, *, trainable: bool, **kwargs: Any) -> torch.nn.Module:
    """A saved LoRA policy: its base (`base_model_name_or_path`), embeddings resized to the saved
    tokenizer when control tokens were added, then the adapter (trainable to continue training)."""
    try:
        from peft import PeftConfig, PeftModel
    except ImportError:
        raise ConfigError(f"model.name_or_path: {path} is a LoRA adapter; it needs the optional extra peft") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_name = PeftConfig.from_pretrained(str(path)).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(base_name, **kwargs)
    size = len(AutoTokenizer.from_pretrained(str(path)))
    if size > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(size, mean_resizing=False)  # rows come from the adapter's saved embeddings
    return PeftModel.from_pretrained(base, str(path), is_trainable=trainable)


def save_extras(model: torch.nn.Module, out_dir: Path, lora: dict[str, Any] | None) -> None:
    """`merged/` next to the saved adapter when `model.lora.merged_export` asks for it."""
    if lora and lora.get("merged_export") and is_lora(model):
        merged_copy(model).save_pretrained(Path(out_dir) / "merged", safe_serialization=True)
