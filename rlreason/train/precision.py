"""Precision and regularisation settings of the models an RL run holds.

- Master weights: the trained policy is loaded in float32 whatever `model.dtype` says
  (`rlreason.policy.load`); `model.dtype` is the compute dtype, applied by Lightning's autocast
  (`trainer.precision: bf16-mixed`, the default for `model.dtype: bfloat16`). The frozen reference
  has no master weights to protect and is kept in the compute dtype.
- Dropout: RL compares log-probabilities of the same tokens under the sampler (eval mode), the
  trainer (train mode) and the reference (eval mode). With dropout on, the first ratio is not 1
  and the KL is not 0 at step 0, so dropout is switched off in policy and reference by default
  (`model.disable_dropout`, as TRL's `disable_dropout`). Hugging Face attention applies its dropout
  as a float attribute (`attention_dropout`) passed to the kernel, not as an `nn.Dropout`, so both
  are zeroed, and the config too (a later re-init or save keeps it).
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(name: str) -> torch.dtype:
    return DTYPES[str(name)]


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout probability of `model` to 0; returns how many were non-zero."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            changed += module.p > 0
            module.p = 0.0
        for attr in ("attention_dropout", "dropout_rate"):
            value = getattr(module, attr, None)
            if isinstance(value, float) and not isinstance(value, bool):
                changed += value > 0
                setattr(module, attr, 0.0)
    config = getattr(model, "config", None)
    if config is not None:
        for key, value in list(vars(config).items()):
            if (key.endswith("dropout") or key.endswith("_pdrop")) and isinstance(value, float):
                setattr(config, key, 0.0)
    return int(changed)
