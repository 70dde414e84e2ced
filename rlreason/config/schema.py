"""The experiment schema: every config section and key, its type, default and doc, declared together.

Each key is a dataclass field whose metadata (`field(..., metadata=doc(...))`) carries its doc, so
`rlreason list config` prints exactly what is declared here. A key whose value must be one of a few
words declares them (`choices=`), and a key that names a registered entry declares the registry
(`registry=`); validation reads both from here, so no list of allowed values is repeated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

Check = tuple[Callable[[Any], bool], str]
"""A key's own constraint: (whether a value is acceptable, what is expected, as the error says it)."""


def doc(text: str, *, choices: tuple[str, ...] = (), registry: str = "", check: Check | None = None) -> dict[str, Any]:
    """A config key's field metadata: its doc, the words (`choices`) or the registry whose names
    (`registry`) its value must be one of, and its range (`check`)."""
    return {"doc": text, "choices": choices, "registry": registry, "check": check}


def at_least(low: float, note: str = "") -> Check:
    """value >= low; `note` says what the boundary means, e.g. `0 = off`."""
    return (lambda v: v >= low, f">= {low:g}" + (f" ({note})" if note else ""))


POSITIVE: Check = (lambda v: v >= 1, "a positive integer")
SHARE: Check = (lambda v: 0 < v <= 1, "in (0, 1]")


def non_empty(what: str) -> Check:
    return (lambda v: bool(str(v).strip()), what)


@dataclass
class ModelConfig:
    """The policy. `lab-tiny` builds the lab's tiny model; anything else is a path or hub name."""

    name_or_path: str = field(
        default="lab-tiny",
        metadata=doc(
            "'lab-tiny' (the lab's tiny model), a model directory or a hub name",
            check=non_empty("'lab-tiny', a model directory or hub name"),
        ),
    )
    lab: dict[str, Any] = field(
        default_factory=dict, metadata=doc("lab-tiny architecture overrides (hidden_size, num_hidden_layers, ...)")
    )
    dtype: str = field(
        default="float32",
        metadata=doc(
            "compute dtype; training keeps float32 master weights and optimiser state whatever this says "
            "(bfloat16 / float16 default trainer.precision to bf16-mixed / 16-mixed; `rlreason eval` loads in it)",
            choices=("float32", "bfloat16", "float16"),
        ),
    )
    control_tokens: str = field(
        default="add",
        metadata=doc("add: new special tokens; map: reuse existing tokens (control_token_map)", choices=("add", "map")),
    )
    control_token_map: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "canonical token -> the vocabulary's token text or id, e.g. {'<short>': 151650} on R1-Distill-Qwen"
        ),
    )
    disable_dropout: bool = field(
        default=True, metadata=doc("dropout off in policy and reference during RL (TRL's disable_dropout)")
    )
    logit_chunk_size: int = field(
        default=0,
        metadata=doc(
            ">0: response log-probs / entropy / scores computed over this many positions at a time (the "
            "[n, T, vocab] fp32 logits are never whole in memory); 0: one pass",
            check=at_least(0, "0 = no chunking"),
        ),
    )
    lora: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "LoRA via PEFT (optional extra `peft`): {r, alpha, dropout, target_modules, merged_export}; {} = off"
        ),
    )
    chat_template: str | None = field(default=None, metadata=doc("a Jinja template overriding the tokenizer's own"))
    use_chat_template: bool = field(
        default=False, metadata=doc("wrap prompts in the chat template (model.system_prompt first)")
    )
    system_prompt: str | None = field(
        default=None, metadata=doc("system message put before each prompt when use_chat_template is on")
    )
    trust_remote_code: bool = field(default=False, metadata=doc("let transformers run the model repository's own code"))
    gradient_checkpointing: bool = field(
        default=False, metadata=doc("recompute activations in the backward pass (less memory)")
    )
    attn_implementation: str | None = field(
        default=None, metadata=doc("transformers' attn_implementation (null: its default)")
    )
    local_files_only: bool = field(
        default=False, metadata=doc("never contact the hub; the model must be local or cached")
    )


@dataclass
class RolloutConfig:
    """Sampling the policy's responses (RL only)."""

    backend: str = field(default="hf", metadata=doc("the generation backend", registry="rollout_backends"))
    group_size: int = field(default=8, metadata=doc("G samples per prompt", check=POSITIVE))
    prompts_per_step: int = field(default=8, metadata=doc("prompts per rollout batch (per rank)", check=POSITIVE))
    max_new_tokens: int = field(default=64, metadata=doc("response length limit in tokens", check=POSITIVE))
    temperature: float = field(
        default=1.0, metadata=doc("sampling temperature (> 0)", check=(lambda v: v > 0, "> 0 for sampling"))
    )
    top_p: float = field(
        default=1.0,
        metadata=doc("nucleus sampling: draw from the smallest set of tokens with this mass", check=SHARE),
    )
    top_k: int = field(
        default=0, metadata=doc("draw from the k most likely tokens (0 disables)", check=at_least(0, "0 disables"))
    )
    batch_size: int = field(
        default=0,
        metadata=doc(
            "sequences generated at once; 0 = the whole rollout batch",
            check=at_least(0, "0 = the whole rollout batch"),
        ),
    )
    stop_on_eos: bool = field(default=True, metadata=doc("a response ends at an end-of-sequence token"))
    sampler: str = field(
        default="none",
        metadata=doc(
            "force the first token's mode (rlreason/policy/samplers.py)", choices=("none", "forced_mode", "paired")
        ),
    )
    sampler_share: float = field(
        default=0.5,
        metadata=doc(
            "forced_mode: P(<short>) per sample (paired: 0.5)",
            check=(lambda v: 0 < v < 1, "a share in (0, 1) (P(<short>))"),
        ),
    )
    vllm: dict[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "backend vllm's engine (optional extra `vllm`): {dtype: auto, kv_cache_memory_bytes: 67108864, "
            "gpu_memory_utilization: 0.5, max_model_len: 0, enforce_eager: true, tensor_parallel_size: 1, "
            "sleep_mode: false} (rlreason/policy/vllm_engine.py)"
        ),
    )
    is_correction: str = field(
        default="none",
        metadata=doc(
            "importance weights pi_old / pi_sampler on the loss, truncated or masked at is_cap, per token or "
            "sequence (rlreason/algos/rollout_correction.py)",
            choices=("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
        ),
    )
    is_cap: float = field(
        default=2.0,
        metadata=doc(
            "is_correction's cap C on the importance weight",
            check=(lambda v: v >= 1, ">= 1 (the largest importance weight kept)"),
        ),
    )
    recompute_old_logprobs: bool = field(
        default=False,
        metadata=doc("pi_old from a trainer pass instead of the sampler's log-probs (on with any is_correction)"),
    )


@dataclass
class OptimConfig:
    """Optimisation: the run length, optimiser, learning-rate schedule and batching."""

    steps: int = field(
        default=100, metadata=doc("rollout batches for RL, optimisation batches for SFT", check=POSITIVE)
    )
    optimizer: str = field(default="adamw", metadata=doc("the optimiser", registry="optimizers"))
    lr: float = field(default=1e-4, metadata=doc("base learning rate", check=(lambda v: v > 0, "> 0")))
    weight_decay: float = field(
        default=0.0,
        metadata=doc("decoupled weight decay of matrices (biases and norms get none)", check=at_least(0)),
    )
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999],
        metadata=doc(
            "AdamW's (beta1, beta2)",
            check=(lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two values in [0, 1), e.g. [0.9, 0.999]"),
        ),
    )
    eps: float = field(default=1e-8, metadata=doc("AdamW's epsilon", check=(lambda v: v > 0, "> 0")))
    schedule: str = field(default="constant", metadata=doc("learning-rate shape after warm-up", registry="schedules"))
    warmup_ratio: float = field(
        default=0.0,
        metadata=doc(
            "linear warm-up over this share of the optimiser steps", check=(lambda v: 0 <= v < 1, "in [0, 1)")
        ),
    )
    warmup_steps: int = field(
        default=0, metadata=doc("linear warm-up steps (overrides warmup_ratio when > 0)", check=at_least(0))
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata=doc("gradient clipping norm (0 disables clipping)", check=at_least(0, "0 disables clipping")),
    )
    minibatches: int = field(default=1, metadata=doc("optimiser steps per pass over a rollout batch", check=POSITIVE))
    micro_batch_size: int = field(
        default=0,
        metadata=doc(
            "gradient-accumulation chunk; 0 = the whole minibatch", check=at_least(0, "0 = the whole minibatch")
        ),
    )
    micro_batch_tokens: int = field(
        default=0,
        metadata=doc(
            "RL update: > 0 packs length-sorted samples into micro-batches of at most this many padded tokens, "
            "each cut to its own longest prompt and response (replaces micro_batch_size; same gradient up to "
            "float rounding); 0 = off (rlreason/train/micro_batches.py)",
            check=at_least(0, "0 = off"),
        ),
    )
    dedup_sequences: bool = field(
        default=False,
        metadata=doc(
            "RL passes: run the model once per distinct (prompt, response) of a micro-batch and give its "
            "copies the same log-probs (the backward sums their gradients); same gradient up to float "
            "rounding; off = every row (rlreason/train/forward.py)"
        ),
    )
    max_nonfinite_in_a_row: int = field(
        default=3, metadata=doc("skipped non-finite updates in a row before the run stops", check=POSITIVE)
    )
    batch_size: int = field(default=32, metadata=doc("SFT examples per step", check=POSITIVE))


@dataclass
class EvalConfig:
    """Evaluation during and after training."""

    every_n_steps: int = field(
        default=0, metadata=doc("evaluate every n steps; 0 = only at the end", check=at_least(0, "0 = only at the end"))
    )
    at_start: bool = field(default=False, metadata=doc("also evaluate before the first step"))
    split: str = field(default="test", metadata=doc("the task split evaluated"))
    n: int = field(default=200, metadata=doc("problems (0 = all)", check=at_least(0, "0 = all")))
    samples: int = field(default=1, metadata=doc("k samples per problem; pass@1 averaged over them", check=POSITIVE))
    temperature: float = field(default=0.0, metadata=doc("0 = greedy", check=at_least(0, "0 = greedy")))
    top_p: float = field(default=1.0, metadata=doc("nucleus sampling mass", check=SHARE))
    max_new_tokens: int = field(
        default=0,
        metadata=doc(
            "response length limit; 0 = rollout.max_new_tokens", check=at_least(0, "0 = rollout.max_new_tokens")
        ),
    )
    batch_size: int = field(default=64, metadata=doc("sequences generated at once", check=POSITIVE))
    suite: list[dict[str, Any]] = field(
        default_factory=list, metadata=doc("extra tasks ({name: ..., **params}) evaluated at the end")
    )
    per_mode: bool = field(
        default=False, metadata=doc("also evaluate with <short> and with <think> forced (lab calibration)")
    )


LOGGERS = ("tensorboard", "wandb", "mlflow", "csv")


@dataclass
class LoggingConfig:
    """Where a run is written, what is logged and how often it checkpoints."""

    dir: str = field(
        default="runs",
        metadata=doc(
            "a relative dir is relative to the project of the config file named on the command line (the nearest "
            "folder above it with pyproject.toml or .git, else the file's own folder); given on the command line it is "
            "relative to the working directory. Saved configs hold the absolute path",
            check=non_empty("a directory path"),
        ),
    )
    version: str | None = field(default=None, metadata=doc("run directory name (default: version_<n>)"))
    logger: Any = field(default="tensorboard", metadata=doc("a logger, or a list of them", choices=LOGGERS))
    project: str | None = field(default=None, metadata=doc("W&B project / MLflow experiment (default: the run's name)"))
    tracking_uri: str | None = field(
        default=None, metadata=doc("MLflow tracking URI (default: a file store in <logging.dir>/mlruns)")
    )
    every_n_steps: int = field(default=1, metadata=doc("log metrics every n steps", check=POSITIVE))
    samples_every_n_steps: int = field(
        default=10, metadata=doc("log sample responses every n steps (0 disables)", check=at_least(0, "0 disables"))
    )
    num_samples: int = field(default=4, metadata=doc("sample responses logged each time", check=at_least(0)))
    progress_bar: bool = field(default=True, metadata=doc("show Lightning's progress bar"))
    histograms: bool = field(default=True, metadata=doc("a response-length histogram in TensorBoard every step"))
    checkpoint_every_n_steps: int | None = field(
        default=None,
        metadata=doc(
            "null = auto: RL runs every max(1, optim.steps // 10) steps, SFT only at the end; 0 = only at the end. "
            "Ctrl-C always checkpoints at the next step boundary",
            check=(lambda v: v is None or v >= 0, ">= 0 (0 = only at the end) or null (auto)"),
        ),
    )
    keep_last_n: int = field(
        default=2, metadata=doc("checkpoints kept (0 keeps all)", check=at_least(0, "0 keeps all"))
    )


@dataclass
class InitConfig:
    """Where the policy starts from, and resuming an interrupted run."""

    from_: str | None = field(
        default=None,
        metadata=doc(
            "a run directory, a Hugging Face model directory or hub name, or an experiment YAML whose run is executed "
            "first (and reused when it already exists)"
        ),
    )
    resume: str | None = field(
        default=None,
        metadata=doc(
            "continue an interrupted run: 'auto' (the newest run of this config, if any; `run --resume`), a run "
            "directory or a checkpoint file; see rlreason/train/resume.py"
        ),
    )


@dataclass
class ExperimentConfig:
    """An experiment: the top-level keys of a config file."""

    name: str = field(
        default="experiment",
        metadata=doc("the run's name (its directory under logging.dir)", check=non_empty("a non-empty run name")),
    )
    seed: int = field(default=0, metadata=doc("the run's seed (seed_everything, data order, rollout sampling)"))
    model: ModelConfig = field(default_factory=ModelConfig, metadata=doc(ModelConfig.__doc__ or ""))
    task: dict[str, Any] = field(
        default_factory=lambda: {"name": "lab-arith"},
        metadata=doc("the training task {name, **params}", registry="tasks"),
    )
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=doc(EvalConfig.__doc__ or ""))
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata=doc(RolloutConfig.__doc__ or ""))
    reward: dict[str, Any] = field(
        default_factory=lambda: {"name": "binary"},
        metadata=doc("the reward {name, **params} (RL only)", registry="rewards"),
    )
    algo: dict[str, Any] = field(
        default_factory=lambda: {"name": "grpo"}, metadata=doc("the algorithm {name, **params}", registry="algos")
    )
    optim: OptimConfig = field(default_factory=OptimConfig, metadata=doc(OptimConfig.__doc__ or ""))
    trainer: dict[str, Any] = field(
        default_factory=dict, metadata=doc("keyword arguments handed to lightning.Trainer (devices, precision, ...)")
    )
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata=doc(LoggingConfig.__doc__ or ""))
    init: InitConfig = field(default_factory=InitConfig, metadata=doc(InitConfig.__doc__ or ""))


COMPONENT_SECTIONS = tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.metadata.get("registry"))
"""The sections written `{name: ..., **params}` and built from a registry (task, reward, algo)."""


@dataclass(frozen=True)
class FieldDoc:
    """One config key as `rlreason list config` shows it."""

    key: str  # dotted, as written in files (`init.from`)
    type: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    registry: str = ""


def yaml_key(name: str) -> str:
    """A field's key in files: `from_` is written `from` (a Python keyword)."""
    return "from" if name == "from_" else name


def field_docs() -> list[tuple[str, str, list[FieldDoc]]]:
    """(section, its doc, its keys) for the top-level keys and then each section, in declaration order."""
    top: list[FieldDoc] = []
    sections: list[tuple[str, str, list[FieldDoc]]] = []
    for f in dataclasses.fields(ExperimentConfig):
        if dataclasses.is_dataclass(f.default_factory):  # a section: its keys one level down
            keys = [_field_doc(sub, f"{f.name}.") for sub in dataclasses.fields(f.default_factory)]
            sections.append((f.name, f.metadata["doc"], keys))
        else:
            top.append(_field_doc(f, ""))
    return [("(top level)", ExperimentConfig.__doc__ or "", top), *sections]


def _field_doc(f: dataclasses.Field, prefix: str) -> FieldDoc:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    meta = f.metadata
    return FieldDoc(f"{prefix}{yaml_key(f.name)}", str(f.type), default, meta["doc"], meta["choices"], meta["registry"])


def field_metas() -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, metadata) of every key, top-level keys first, then each section's, in declaration order."""
    out = []
    for f in dataclasses.fields(ExperimentConfig):
        if dataclasses.is_dataclass(f.default_factory):
            subs = dataclasses.fields(f.default_factory)
            out += [(f"{f.name}.{yaml_key(sub.name)}", dict(sub.metadata)) for sub in subs]
        else:
            out.append((yaml_key(f.name), dict(f.metadata)))
    return out


def field_meta(key: str) -> dict[str, Any]:
    """The metadata (`doc`, `choices`, `registry`) of a dotted key, e.g. `optim.optimizer`."""
    cls: Any = ExperimentConfig
    *path, last = key.split(".")
    for part in path:
        cls = next(f.default_factory for f in dataclasses.fields(cls) if yaml_key(f.name) == part)
    return dict(next(f.metadata for f in dataclasses.fields(cls) if yaml_key(f.name) == last))


def loggers_of(cfg: DictConfig) -> list[str]:
    """`logging.logger` as a list of names (a single name is allowed)."""
    value = cfg.logging.logger
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def checkpoint_interval(cfg: DictConfig, needs_rollout: bool) -> int:
    """`logging.checkpoint_every_n_steps`, with null resolved: RL runs keep ~10 checkpoints' worth of
    progress (a crash or Ctrl-C costs at most a tenth of the run), SFT warm-ups only the final state."""
    every = cfg.logging.checkpoint_every_n_steps
    if every is not None:
        return int(every)
    return max(1, int(cfg.optim.steps) // 10) if needs_rollout else 0
