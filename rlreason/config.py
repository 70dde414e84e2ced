"""Experiment configuration: a typed schema, YAML files with inheritance, command-line overrides.

An experiment is a YAML file with the top-level keys of `ExperimentConfig`. A file may start from
another (`base: other.yaml`, relative to the file or absolute); command-line arguments `key=value`
override any key (dotted keys, lists `[a,b]`, OmegaConf interpolation `${...}`). Component sections
(`task`, `reward`, `algo`) are `{name: ..., **params}` mappings checked against the registries, so
an unknown component or parameter fails at load time, not an hour into a run.

Every problem is raised as `ConfigError` with one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlreason.errors import ConfigError, RegistryError, RLReasonError


@dataclass
class ModelConfig:
    """The policy. `lab-tiny` builds the lab's tiny model; anything else is a path or hub name."""

    name_or_path: str = "lab-tiny"
    lab: dict[str, Any] = field(default_factory=dict)  # lab-tiny architecture overrides
    # compute dtype; training keeps float32 master weights and optimiser state whatever this says
    # (bfloat16 / float16 default trainer.precision to bf16-mixed / 16-mixed; `rlreason eval` loads in it)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    control_tokens: str = "add"  # add: new special tokens; map: reuse existing tokens (control_token_map)
    # canonical token -> the vocabulary's token text or id, e.g. {"<short>": 151650} on R1-Distill-Qwen
    control_token_map: dict[str, Any] = field(default_factory=dict)
    disable_dropout: bool = True  # dropout off in policy and reference during RL (TRL's disable_dropout)
    # >0: response log-probs / entropy / scores computed over this many positions at a time (the
    # [n, T, vocab] fp32 logits are never whole in memory); 0: one pass (bitwise the historical path)
    logit_chunk_size: int = 0
    # LoRA via PEFT (optional extra `peft`): {r, alpha, dropout, target_modules, merged_export}; {} = off
    lora: dict[str, Any] = field(default_factory=dict)
    chat_template: str | None = None  # a Jinja template overriding the tokenizer's own
    use_chat_template: bool = False
    system_prompt: str | None = None
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None
    local_files_only: bool = False


@dataclass
class RolloutConfig:
    backend: str = "hf"
    group_size: int = 8  # G samples per prompt
    prompts_per_step: int = 8  # prompts per rollout batch (per rank)
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 0  # sequences generated at once; 0 = the whole rollout batch
    stop_on_eos: bool = True
    sampler: str = "none"  # none | forced_mode | paired: force the first token's mode (rlreason/policy/samplers.py)
    sampler_share: float = 0.5  # forced_mode: P(<short>) per sample (paired: 0.5)


@dataclass
class OptimConfig:
    steps: int = 100  # rollout batches for RL, optimisation batches for SFT
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "constant"  # constant | linear | cosine (after warm-up)
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    minibatches: int = 1  # optimiser steps per pass over a rollout batch
    micro_batch_size: int = 0  # gradient-accumulation chunk; 0 = the whole minibatch
    max_nonfinite_in_a_row: int = 3  # skipped non-finite updates in a row before the run stops
    batch_size: int = 32  # SFT examples per step


@dataclass
class EvalConfig:
    every_n_steps: int = 0  # 0 = only at the end
    at_start: bool = False
    split: str = "test"
    n: int = 200  # problems (0 = all)
    samples: int = 1  # k samples per problem; pass@1 averaged over them
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 0  # 0 = rollout.max_new_tokens
    batch_size: int = 64
    suite: list[dict[str, Any]] = field(default_factory=list)  # extra tasks evaluated at the end
    per_mode: bool = False  # also evaluate with <short> and with <think> forced (lab calibration)


LOGGERS = ("tensorboard", "wandb", "mlflow", "csv")


@dataclass
class LoggingConfig:
    # a relative dir is relative to the project of the config file named on the command line (the
    # nearest folder above it with pyproject.toml or .git, else the file's own folder); given on the
    # command line it is relative to the working directory. Saved configs hold the absolute path.
    dir: str = "runs"
    version: str | None = None  # default: version_<n>
    logger: Any = "tensorboard"  # tensorboard | wandb | mlflow | csv, or a list of them
    project: str | None = None  # W&B project / MLflow experiment (default: the run's name)
    tracking_uri: str | None = None  # MLflow tracking URI (default: a file store in <logging.dir>/mlruns)
    every_n_steps: int = 1
    samples_every_n_steps: int = 10
    num_samples: int = 4
    progress_bar: bool = True
    histograms: bool = True
    # null = auto: RL runs every max(1, optim.steps // 10) steps, SFT only at the end; 0 = only at the
    # end. Ctrl-C always checkpoints at the next step boundary.
    checkpoint_every_n_steps: int | None = None
    keep_last_n: int = 2


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


@dataclass
class InitConfig:
    # a run directory, a Hugging Face model directory or hub name, or an experiment YAML whose run is
    # executed first (and reused when it already exists)
    from_: str | None = None
    # continue an interrupted run: "auto" (the newest run of this config, if any; `run --resume`), a
    # run directory or a checkpoint file; see rlreason/train/resume.py
    resume: str | None = None


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    task: dict[str, Any] = field(default_factory=lambda: {"name": "lab-arith"})
    eval: EvalConfig = field(default_factory=EvalConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: dict[str, Any] = field(default_factory=lambda: {"name": "binary"})
    algo: dict[str, Any] = field(default_factory=lambda: {"name": "grpo"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: dict[str, Any] = field(default_factory=dict)  # handed to lightning.Trainer
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    init: InitConfig = field(default_factory=InitConfig)


_RENAMES = {("init", "from"): "from_"}  # YAML keys that are Python keywords


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string: `algo.eps_low=1e-3` would reach
    the component as '1e-3'. Configs read numbers as YAML 1.2 does, so it is the float 0.001."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass: no arbitrary objects


def _rename_keys(d: dict[str, Any]) -> dict[str, Any]:
    init = d.get("init")
    if isinstance(init, dict) and "from" in init:
        init = dict(init)
        init["from_"] = init.pop("from")
        d = {**d, "init": init}
    return d


def _read_yaml(path: Path, *, chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """[(file, mapping)] from the root base to `path`, following `base:` links."""
    if not path.is_file():
        where = f"{chain[-1]}: base" if chain else "config"
        raise ConfigError(f"{where}: file not found: {path}")
    if path.resolve() in {p.resolve() for p in chain}:
        raise ConfigError(f"{path}: base: circular inheritance ({' -> '.join(str(p) for p in (*chain, path))})")
    try:
        data = _yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    base = data.pop("base", None)
    out: list[tuple[Path, dict[str, Any]]] = []
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: expected a path string, got {base!r}")
        base_path = Path(base) if Path(base).is_absolute() else path.parent / base
        out = _read_yaml(base_path, chain=(*chain, path))
    data = _rename_keys(data)
    init = data.get("init")
    if isinstance(init, dict) and isinstance(init.get("from_"), str):
        src = init["from_"]
        if src.endswith((".yaml", ".yml")) and not Path(src).is_absolute():
            init["from_"] = str((path.parent / src).resolve())  # a stage config is relative to the file naming it
    out.append((path, data))
    return out


def _key_of(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or ""
    return str(key).replace("from_", "from")


def _omegaconf_msg(exc: OmegaConfBaseException) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    msg = msg.replace("from_", "from")
    return re.sub(r"\s+", " ", msg).strip()


COMPONENT_SECTIONS = ("task", "reward", "algo")


def _merge(base: DictConfig, update: Any, source: str) -> DictConfig:
    """Merge `update` onto `base`; a component section whose `name` changes is replaced, not merged
    (the old component's parameters mean nothing to the new one)."""
    for key in COMPONENT_SECTIONS:
        new = update.get(key) if isinstance(update, (dict, DictConfig)) else None
        if isinstance(new, (dict, DictConfig)) and "name" in new and new["name"] != base[key].get("name"):
            base[key] = {}
    try:
        return OmegaConf.merge(base, update)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = _key_of(exc)
        raise ConfigError(f"{source}: {key or 'config'}: {_omegaconf_msg(exc)}") from None


def parse_overrides(overrides: list[str]) -> DictConfig:
    """`key=value` strings to a config; values are parsed as YAML (numbers, lists, null, ...)."""
    out = OmegaConf.create({})
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"command line: '{item}': expected key=value (e.g. optim.lr=1e-5)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][\w\-]*(\.[A-Za-z_0-9][\w\-]*)*", key):
            raise ConfigError(f"command line: '{key}': not a valid dotted key")
        try:
            parsed = _yaml_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        parts = key.split(".")
        if parts[:2] == ["init", "from"]:
            parts[1] = "from_"
        try:
            OmegaConf.update(out, ".".join(parts), parsed, force_add=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"command line: {key}: {_omegaconf_msg(exc)}") from None
    return out


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, *, _stage_chain: tuple[Path, ...] = ()
) -> DictConfig:
    """Load, inherit, override and validate an experiment config, and the `init.from` stage it names.

    Returns a resolved, read-only-typed `DictConfig` following `ExperimentConfig`. `_stage_chain` is
    internal: the stage files being loaded above this one (see `rlreason.init_from`).
    """
    cfg = OmegaConf.structured(ExperimentConfig)
    source_files: list[str] = []
    explicit_model: set[str] = set()  # model.* keys the files or the command line write themselves
    if path is not None:
        for file, data in _read_yaml(Path(path)):
            cfg = _merge(cfg, data, str(file))
            source_files.append(str(file))
            if isinstance(data.get("model"), dict):
                explicit_model |= set(data["model"])
    if overrides:
        parsed = parse_overrides(overrides)
        cfg = _merge(cfg, parsed, "command line")
        if isinstance(parsed.get("model"), DictConfig):
            explicit_model |= {str(k) for k in parsed.model}
    where = source_files[-1] if source_files else "config"
    if overrides:  # the offending value may come from either: name both
        where = f"{where} + command line" if source_files else "command line"
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{where}: {_key_of(exc) or 'config'}: {_omegaconf_msg(exc)}") from None
    validate(cfg, where=where)
    given = parse_overrides(overrides) if overrides else OmegaConf.create({})
    _absolute_paths(cfg, Path(path) if path is not None else None, given)
    from rlreason.init_from import check_init

    chain = (*_stage_chain, Path(path)) if path is not None and not _stage_chain else _stage_chain
    check_init(cfg, where, explicit_model, chain)
    return cfg


def project_root(config_file: Path) -> Path:
    """The project a config file belongs to: the nearest folder above it with pyproject.toml or .git
    (so every file under experiments/ shares the repository's runs/), else the file's own folder."""
    here = config_file.resolve().parent
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() or (d / ".git").exists():
            return d
    return here


def _absolute_paths(cfg: DictConfig, path: Path | None, given: DictConfig) -> None:
    """Make `logging.dir` and a local `init.from` absolute, so that a run started from any working
    directory finds the same runs and stage cache, and its saved config.yaml can be re-run anywhere.

    A relative `logging.dir` from a file (or the default) is relative to the project of `path`; from
    the command line, to the working directory. A relative `init.from` that exists as a local path
    (a run directory or model folder, relative to the working directory) becomes absolute; a hub name
    is left as it is. (A YAML stage in a file is already resolved against that file.)
    """
    log_dir = Path(str(cfg.logging.dir)).expanduser()
    if not log_dir.is_absolute():
        from_command_line = OmegaConf.select(given, "logging.dir") is not None
        anchor = Path.cwd() if from_command_line or path is None else project_root(path)
        log_dir = anchor / log_dir
    cfg.logging.dir = os.path.normpath(log_dir)
    src = cfg.init.from_
    if src and not Path(src).is_absolute() and Path(src).exists():
        cfg.init.from_ = str(Path(src).resolve())


def validate(cfg: DictConfig, *, where: str = "config") -> None:
    """Semantic checks the schema cannot express, all before any model load or run directory.

    The schema already refuses unknown keys and wrong types; this pass checks component names and
    parameters (each component is built once, which runs its own constructor checks: cheap, no data
    is read), value ranges, and cross-field constraints such as a group-relative algorithm with
    `rollout.group_size: 1` (every advantage would be zero). `where` names the file in messages.
    """
    _ensure_components_imported()
    algo_cls = _algo_class(cfg)
    needs_rollout = algo_cls is None or bool(getattr(algo_cls, "needs_rollout", True))
    task = _check_components(cfg, where, needs_rollout)
    _check_ranges(cfg, where)
    _check_cross_fields(cfg, where, algo_cls, needs_rollout, task)
    _check_trainer(cfg, where)
    _check_sharding(cfg, where, needs_rollout)


def _check_sharding(cfg: DictConfig, where: str, needs_rollout: bool) -> None:
    """`strategy: fsdp` with a reward that reads the parameters whole (info_gain's theta - theta_ref and
    its JVP over named parameters) would compute the penalty on shards: refused. Lightning runs FSDP
    on GPUs only, so this path cannot be tested on CPU; DDP is the tested multi-process strategy."""
    strategy = str(cfg.trainer.get("strategy", "")).lower() if "strategy" in cfg.trainer else ""
    if "fsdp" not in strategy or not needs_rollout:
        return
    from rlreason.registry import REWARDS

    reward = _dry_build(REWARDS, OmegaConf.to_container(cfg.reward), where, "reward")  # a combination decides per term
    if getattr(reward, "needs_initial_params", False):
        raise ConfigError(
            f"{where}: trainer.strategy: '{cfg.trainer.strategy}' shards the parameters, but reward "
            f"'{cfg.reward.name}' needs them whole (theta - theta_ref and its JVP); use strategy: ddp"
        )


def _check_components(cfg: DictConfig, where: str, needs_rollout: bool) -> Any:
    """Check and dry-build `task`, `reward` (when the algorithm has a rollout), `algo`, `eval.suite`.

    Returns the built task (for the split check)."""
    from rlreason.registry import ALGOS, REWARDS, TASKS, VERIFIERS

    built: dict[str, Any] = {}
    named = (("task", TASKS), ("reward", REWARDS), ("algo", ALGOS))
    sections: list[tuple[str, Any, Any]] = [(key, cfg.get(key), reg) for key, reg in named]
    sections += [(f"eval.suite[{i}]", item, TASKS) for i, item in enumerate(cfg.eval.suite)]
    for key, section, reg in sections:
        if key == "reward" and not needs_rollout:
            continue
        comp = OmegaConf.to_container(section) if isinstance(section, (DictConfig, ListConfig)) else section
        if not isinstance(comp, dict) or "name" not in comp:
            raise ConfigError(f"{where}: {key}: expected a mapping with 'name' (one of: {', '.join(reg.names())})")
        check_component(reg, comp, f"{where}: {key}")
        built[key] = _dry_build(reg, comp, where, key)
        if reg is TASKS:
            verifier = getattr(built[key], "verifier", "math")
            if verifier not in VERIFIERS:
                raise ConfigError(
                    f"{where}: {key}.name: task '{comp['name']}' grades with verifier '{verifier}', which is not "
                    f"registered (valid: {', '.join(VERIFIERS.names())})"
                )
    return built["task"]


def _dry_build(reg: Any, comp: dict[str, Any], where: str, key: str) -> Any:
    """Instantiate a component so its constructor's own checks (e.g. `task.pool`) fail at load time.

    A constructor's `ValueError("param: message")` becomes `ConfigError("<file>: <key>.param: message")`.
    """
    params = {k: v for k, v in comp.items() if k != "name"}
    try:
        return reg.get(comp["name"])(**params)
    except RLReasonError as exc:  # already names its key (e.g. reward.terms[0].weight)
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        m = re.match(r"([A-Za-z_][\w.\[\]]*): (.*)", msg)
        known = set(params) | {p.name for p in reg.params(comp["name"])}  # a missing one is named too
        if m and m.group(1).split(".")[0].split("[")[0] in known:
            raise ConfigError(f"{where}: {key}.{m.group(1)}: {m.group(2)}") from None
        raise ConfigError(f"{where}: {key}: cannot build {reg.name[:-1]} '{comp['name']}': {msg}") from None


def _check_ranges(cfg: DictConfig, where: str) -> None:
    """One (key, ok, expected) row per single-field constraint; the first failing row is reported."""
    r, o, e, lg = cfg.rollout, cfg.optim, cfg.eval, cfg.logging
    betas = list(o.betas)
    checks = [
        ("name", bool(str(cfg.name).strip()), "a non-empty run name"),
        ("model.name_or_path", bool(str(cfg.model.name_or_path).strip()), "'lab-tiny', a model directory or hub name"),
        ("model.control_tokens", cfg.model.control_tokens in ("add", "map"), "add | map"),
        ("model.dtype", cfg.model.dtype in ("float32", "bfloat16", "float16"), "float32 | bfloat16 | float16"),
        ("model.logit_chunk_size", cfg.model.logit_chunk_size >= 0, ">= 0 (0 = no chunking)"),
        ("rollout.group_size", r.group_size >= 1, "a positive integer"),
        ("rollout.prompts_per_step", r.prompts_per_step >= 1, "a positive integer"),
        ("rollout.max_new_tokens", r.max_new_tokens >= 1, "a positive integer"),
        ("rollout.temperature", r.temperature > 0, "> 0 for sampling"),
        ("rollout.top_p", 0 < r.top_p <= 1, "in (0, 1]"),
        ("rollout.top_k", r.top_k >= 0, ">= 0 (0 disables)"),
        ("rollout.batch_size", r.batch_size >= 0, ">= 0 (0 = the whole rollout batch)"),
        ("rollout.backend", r.backend in ("hf",), "'hf' (the only backend installed)"),
        ("rollout.sampler", r.sampler in ("none", "forced_mode", "paired"), "none | forced_mode | paired"),
        ("rollout.sampler_share", 0 < r.sampler_share < 1, "a share in (0, 1) (P(<short>))"),
        ("optim.steps", o.steps >= 1, "a positive integer"),
        ("optim.lr", o.lr > 0, "> 0"),
        ("optim.optimizer", o.optimizer in ("adamw", "sgd"), "adamw | sgd"),
        ("optim.weight_decay", o.weight_decay >= 0, ">= 0"),
        ("optim.betas", len(betas) == 2 and all(0 <= b < 1 for b in betas), "two values in [0, 1), e.g. [0.9, 0.999]"),
        ("optim.eps", o.eps > 0, "> 0"),
        ("optim.schedule", o.schedule in ("constant", "linear", "cosine"), "constant | linear | cosine"),
        ("optim.warmup_ratio", 0 <= o.warmup_ratio < 1, "in [0, 1)"),
        ("optim.warmup_steps", o.warmup_steps >= 0, ">= 0"),
        ("optim.minibatches", o.minibatches >= 1, "a positive integer"),
        ("optim.micro_batch_size", o.micro_batch_size >= 0, ">= 0 (0 = the whole minibatch)"),
        ("optim.batch_size", o.batch_size >= 1, "a positive integer"),
        ("optim.max_grad_norm", o.max_grad_norm >= 0, ">= 0 (0 disables clipping)"),
        ("optim.max_nonfinite_in_a_row", o.max_nonfinite_in_a_row >= 1, "a positive integer"),
        ("eval.every_n_steps", e.every_n_steps >= 0, ">= 0 (0 = only at the end)"),
        ("eval.n", e.n >= 0, ">= 0 (0 = all)"),
        ("eval.samples", e.samples >= 1, "a positive integer"),
        ("eval.temperature", e.temperature >= 0, ">= 0 (0 = greedy)"),
        ("eval.top_p", 0 < e.top_p <= 1, "in (0, 1]"),
        ("eval.max_new_tokens", e.max_new_tokens >= 0, ">= 0 (0 = rollout.max_new_tokens)"),
        ("eval.batch_size", e.batch_size >= 1, "a positive integer"),
        ("logging.dir", bool(str(lg.dir).strip()), "a directory path"),
        ("logging.every_n_steps", lg.every_n_steps >= 1, "a positive integer"),
        ("logging.samples_every_n_steps", lg.samples_every_n_steps >= 0, ">= 0 (0 disables)"),
        ("logging.num_samples", lg.num_samples >= 0, ">= 0"),
        (
            "logging.checkpoint_every_n_steps",
            lg.checkpoint_every_n_steps is None or lg.checkpoint_every_n_steps >= 0,
            ">= 0 (0 = only at the end) or null (auto)",
        ),
        ("logging.logger", _loggers_ok(lg.logger), f"one of {' | '.join(LOGGERS)}, or a non-empty list of them"),
        ("logging.keep_last_n", lg.keep_last_n >= 0, ">= 0 (0 keeps all)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{where}: {key}: expected {expected}, got {OmegaConf.select(cfg, key)!r}")
    from rlreason.policy.lora import lora_problem

    problem = lora_problem(OmegaConf.to_container(cfg.model.lora)) if cfg.model.lora else None
    if problem:
        raise ConfigError(f"{where}: model.lora.{problem[0]}: {problem[1]}")


def _loggers_ok(value: Any) -> bool:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, ListConfig)) else None
    return bool(names) and all(n in LOGGERS for n in names) and len(set(names)) == len(names)


def _check_cross_fields(cfg: DictConfig, where: str, algo_cls: Any, needs_rollout: bool, task: Any) -> None:
    """Constraints between keys; rollout constraints only when the algorithm has a rollout (not SFT)."""
    splits = list(task.splits())
    if cfg.eval.split not in splits:
        raise ConfigError(
            f"{where}: eval.split: task '{cfg.task.name}' has splits {', '.join(splits)}, got {cfg.eval.split!r}"
        )
    if not needs_rollout:
        return
    n_samples = cfg.rollout.group_size * cfg.rollout.prompts_per_step
    if n_samples % cfg.optim.minibatches:
        raise ConfigError(
            f"{where}: optim.minibatches: {cfg.optim.minibatches} does not divide the rollout batch of "
            f"{n_samples} samples (rollout.group_size x rollout.prompts_per_step)"
        )
    if cfg.rollout.sampler == "paired" and (cfg.rollout.group_size % 2 or cfg.rollout.sampler_share != 0.5):
        raise ConfigError(
            f"{where}: rollout.sampler: paired gives G/2 samples to each mode and needs an even rollout.group_size "
            f"and sampler_share 0.5, got {cfg.rollout.group_size} and {cfg.rollout.sampler_share}"
        )
    min_group = getattr(algo_cls, "min_group_size", 1)
    if cfg.rollout.group_size < min_group:
        raise ConfigError(
            f"{where}: rollout.group_size: algorithm '{cfg.algo.name}' compares samples within a group (a group "
            f"of one has zero advantage) and needs at least {min_group}, got {cfg.rollout.group_size}"
        )


# set by rlreason.train.run; the length of a run has one source of truth, optim.steps (the data, the
# LR schedule, results.json and the final eval step all read it), so Lightning's own limits are refused
TRAINER_RESERVED = (
    "logger",
    "callbacks",
    "max_epochs",
    "use_distributed_sampler",
    "max_steps",
    "min_steps",
    "min_epochs",
    "limit_train_batches",
)


def _check_trainer(cfg: DictConfig, where: str) -> None:
    """`trainer` keys must be `lightning.Trainer` arguments that rlreason does not set itself, and each
    value must fit the argument's annotation (`rlreason.typecheck`): Lightning checks values only
    when the Trainer is built, which is after any `init.from` stage has trained."""
    keys = list(cfg.trainer.keys())
    if not keys:
        return
    for key in keys:
        if key in TRAINER_RESERVED:
            hint = {"logger": "use logging.logger", "callbacks": "use logging.*", "use_distributed_sampler": ""}
            why = hint.get(key, "the run length is optim.steps=N")
            raise ConfigError(f"{where}: trainer.{key}: set by rlreason{f' ({why})' if why else ''}, remove it")
    import inspect
    import typing

    import pytorch_lightning as pl  # only when a trainer section is given: it is a slow import

    from rlreason.typecheck import mismatch

    valid = [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"]
    hints = typing.get_type_hints(pl.Trainer.__init__)
    values = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(values, dict)
    for key in keys:
        if key not in valid:
            hint = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
            did = f"; did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"{where}: trainer.{key}: not an argument of lightning.Trainer{did}")
        problem = mismatch(values[key], hints[key], f"trainer.{key}") if key in hints else None
        if problem:
            raise ConfigError(f"{where}: {problem}")


def _algo_class(cfg: DictConfig) -> Any:
    from rlreason.registry import ALGOS

    try:
        return ALGOS.get(cfg.algo.name)
    except RegistryError:
        return None


def check_component(reg: Any, comp: dict[str, Any], where: str) -> None:
    """Check a `{name, **params}` mapping against a registry without building it."""
    try:
        obj = reg.get(comp["name"], where=f"{where}.name")
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    params = {p.name for p in reg.params(comp["name"])}
    import inspect

    accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(obj).parameters.values())
    for k in comp:
        if k != "name" and k not in params and not accepts_any:
            raise ConfigError(
                f"{where}.{k}: unknown parameter of {reg.name[:-1]} '{comp['name']}' "
                f"(valid: {', '.join(sorted(params)) or 'none'})"
            )
    _check_param_types(obj, comp, where)
    for hook in getattr(obj, "config_checks", lambda c: [])(comp) or []:
        key, message = hook
        raise ConfigError(f"{where}.{key}: {message}")


def _check_param_types(obj: Any, comp: dict[str, Any], where: str) -> None:
    """Each given parameter must fit its annotation (`rlreason.typecheck`), so `task.seed=1.5` or
    `reward.gamma=abc` is named with the type expected rather than failing inside the constructor.
    A component whose annotations cannot be resolved (e.g. a plugin's) is not type-checked."""
    import typing

    from rlreason.typecheck import mismatch

    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: leave the checks to the constructor
        return
    for k, v in comp.items():
        problem = mismatch(v, hints[k], k) if k != "name" and k in hints else None
        if problem:
            raise ConfigError(f"{where}.{problem}")


def _ensure_components_imported() -> None:
    import rlreason.components  # noqa: F401  (registers built-in components)


# Keys added after run directories were first recorded: written only when they differ from the
# default, so the config.yaml of a run with them off, its `init.resume=auto` match and the stage
# cache key (`config_hash`) stay exactly what they were before the keys existed.
OMIT_WHEN_DEFAULT = {("rollout", "sampler"): "none", ("rollout", "sampler_share"): 0.5}


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML, with `init.from` spelled as in files."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    for (section, key), default in OMIT_WHEN_DEFAULT.items():
        if isinstance(data.get(section), dict) and data[section].get(key) == default:
            data[section].pop(key)
    if isinstance(data.get("init"), dict) and "from_" in data["init"]:
        data["init"]["from"] = data["init"].pop("from_")
    return yaml.safe_dump(data, sort_keys=False)


def to_dict(cfg: DictConfig | ListConfig | Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else cfg


def schema_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(ExperimentConfig)]
