"""Semantic checks of a merged config, all before any model load, run directory or stage.

The schema (`rlreason.config.schema`) already refuses unknown keys and wrong types; this pass builds
each component section through its registry (`Registry.build`, which runs `Registry.check`, the one
check of a `{name, **params}` spec, then the constructor's own checks: cheap, no data is read), and
checks value ranges, allowed words and registered names (read from the schema and the registries),
cross-field constraints and `trainer` keys. Each problem is one `ConfigError` line naming the file.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

import rlreason.components  # noqa: F401  (registers the built-in components)
from rlreason.algos.base import Algorithm
from rlreason.config.init_stage import warn_once
from rlreason.config.schema import COMPONENT_SECTIONS, field_meta, field_metas
from rlreason.errors import ConfigError, RegistryError, RLReasonError
from rlreason.policy.lora import lora_problem
from rlreason.registry import ALGOS, CHOICE_REGISTRIES, REGISTRIES, ROLLOUT_BACKENDS, TASKS, VERIFIERS
from rlreason.rewards.base import Reward
from rlreason.tasks.base import Task
from rlreason.typecheck import mismatch


@dataclass
class Components:
    """The component sections of a config, built (and so checked) by `validate`; a run uses these."""

    task: Task
    algo: Algorithm
    reward: Reward | None  # None when the algorithm has no rollout (SFT)
    suite: list[Task]  # eval.suite, in order


def validate(cfg: DictConfig, *, where: str = "config") -> Components:
    """Check a merged, resolved config; `where` names the file (and the command line) in messages.

    Components are built here, once, so an unknown component or parameter fails at load time, not an
    hour into a run, and the run uses what was built; so do value ranges and cross-field constraints
    such as a group-relative algorithm with `rollout.group_size: 1` (every advantage would be zero).
    """
    algo_cls = _algo_class(cfg)
    needs_rollout = algo_cls is None or algo_cls.needs_rollout
    built = _check_components(cfg, where, needs_rollout)
    _check_ranges(cfg, where)
    _check_cross_fields(cfg, where, algo_cls, needs_rollout, built["task"])
    _check_trainer(cfg, where)
    _check_sharding(cfg, where, built.get("reward"))
    suite = [built[f"eval.suite[{i}]"] for i in range(len(cfg.eval.suite))]
    return Components(built["task"], built["algo"], built.get("reward"), suite)


def build_section(reg: Any, comp: Any, where: str, key: str) -> Any:
    """Build a component section through its registry; its error becomes `<file>: <key>...: ...`."""
    if isinstance(comp, (DictConfig, ListConfig)):
        comp = OmegaConf.to_container(comp)
    try:
        return reg.build(comp, where=key)
    except RLReasonError as exc:  # names its key (e.g. reward.terms[0].weight), or a data file's line
        raise ConfigError(f"{where}: {exc}") from None


def _check_components(cfg: DictConfig, where: str, needs_rollout: bool) -> dict[str, Any]:
    """Build `task`, `reward` (when the algorithm has a rollout), `algo` and each `eval.suite` task;
    returns them by key."""
    sections = [(key, cfg.get(key), REGISTRIES[field_meta(key)["registry"]]) for key in COMPONENT_SECTIONS]
    sections += [(f"eval.suite[{i}]", item, TASKS) for i, item in enumerate(cfg.eval.suite)]
    built: dict[str, Any] = {}
    for key, section, reg in sections:
        if key == "reward" and not needs_rollout:
            continue
        built[key] = build_section(reg, section, where, key)
        if reg is TASKS:
            verifier = getattr(built[key], "verifier", "math")
            if verifier not in VERIFIERS:
                raise ConfigError(
                    f"{where}: {key}.name: task '{section['name']}' grades with verifier '{verifier}', which is not "
                    f"registered (valid: {', '.join(VERIFIERS.names())})"
                )
    return built


def _check_sharding(cfg: DictConfig, where: str, reward: Any) -> None:
    """`strategy: fsdp` with a reward that reads the parameters whole (info_gain's theta - theta_ref and
    its JVP over named parameters) would compute the penalty on shards: refused. Lightning runs FSDP
    on GPUs only, so this path cannot be tested on CPU; DDP is the tested multi-process strategy."""
    strategy = str(cfg.trainer.get("strategy", "")).lower() if "strategy" in cfg.trainer else ""
    if "fsdp" in strategy and reward is not None and reward.needs_initial_params:  # a sum decides per term
        raise ConfigError(
            f"{where}: trainer.strategy: '{cfg.trainer.strategy}' shards the parameters, but reward "
            f"'{cfg.reward.name}' needs them whole (theta - theta_ref and its JVP); use strategy: ddp"
        )


def allowed(key: str) -> tuple[str, ...]:
    """The values a word-valued key may take: its registry's names, or the words its field declares."""
    meta = field_meta(key)
    return tuple(CHOICE_REGISTRIES[meta["registry"]].names()) if meta["registry"] else meta["choices"]


def _check_ranges(cfg: DictConfig, where: str) -> None:
    """Every key's own constraint, declared with its field (`schema.doc(check=...)`), and the words or
    registered names a word-valued key may take; the first failing key is reported."""
    for key, meta in field_metas():
        value = OmegaConf.select(cfg, key)
        if key == "logging.logger":  # one name or a list of them
            ok, expected = _loggers_ok(value), f"one of {' | '.join(allowed(key))}, or a non-empty list of them"
        elif meta["choices"] or (meta["registry"] and key not in COMPONENT_SECTIONS):
            words = allowed(key)
            ok, expected = value in words, " | ".join(words)
        elif meta["check"] is not None:
            test, expected = meta["check"]
            ok = bool(test(value))
        else:
            continue
        if not ok:
            raise ConfigError(f"{where}: {key}: expected {expected}, got {value!r}")
    problem = lora_problem(OmegaConf.to_container(cfg.model.lora)) if cfg.model.lora else None
    if problem:
        raise ConfigError(f"{where}: model.lora.{problem[0]}: {problem[1]}")
    backend = ROLLOUT_BACKENDS.get(cfg.rollout.backend)  # its name is checked above
    engine, trainer = OmegaConf.to_container(cfg.rollout.vllm), OmegaConf.to_container(cfg.trainer)
    problem = backend.settings_problem(engine, trainer)  # type: ignore[arg-type]
    if problem:
        raise ConfigError(f"{where}: rollout.{problem[0]}: {problem[1]}")
    if engine and not backend.reads_engine_settings:  # a vLLM recipe run with `rollout.backend=hf`
        warn_once(f"rollout.vllm ({', '.join(engine)}): not used by rollout.backend {cfg.rollout.backend!r}")


def _loggers_ok(value: Any) -> bool:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, ListConfig)) else None
    return bool(names) and all(n in allowed("logging.logger") for n in names) and len(set(names)) == len(names)


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
    min_group = algo_cls.min_group_size if algo_cls is not None else 1
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
    import pytorch_lightning as pl  # only when a trainer section is given: it is a slow import

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
    try:
        return ALGOS.get(cfg.algo.name)
    except RegistryError:
        return None
