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
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rlreason.config.schema import COMPONENT_SECTIONS, field_meta
from rlreason.errors import ConfigError, RegistryError, RLReasonError


def validate(cfg: DictConfig, *, where: str = "config") -> None:
    """Check a merged, resolved config; `where` names the file (and the command line) in messages.

    Components are checked and built once here, so an unknown component or parameter fails at load
    time, not an hour into a run; so do value ranges and cross-field constraints such as a
    group-relative algorithm with `rollout.group_size: 1` (every advantage would be zero).
    """
    import rlreason.components  # noqa: F401  (registers the built-in components)

    algo_cls = _algo_class(cfg)
    needs_rollout = algo_cls is None or bool(getattr(algo_cls, "needs_rollout", True))
    task = _check_components(cfg, where, needs_rollout)
    _check_ranges(cfg, where)
    _check_cross_fields(cfg, where, algo_cls, needs_rollout, task)
    _check_trainer(cfg, where)
    _check_sharding(cfg, where, needs_rollout)


def build_section(reg: Any, comp: Any, where: str, key: str) -> Any:
    """Build a component section through its registry; its error becomes `<file>: <key>...: ...`."""
    if isinstance(comp, (DictConfig, ListConfig)):
        comp = OmegaConf.to_container(comp)
    try:
        return reg.build(comp, where=key)
    except RLReasonError as exc:  # names its key (e.g. reward.terms[0].weight), or a data file's line
        raise ConfigError(f"{where}: {exc}") from None


def _check_components(cfg: DictConfig, where: str, needs_rollout: bool) -> Any:
    """Build `task`, `reward` (when the algorithm has a rollout), `algo` and each `eval.suite` task.

    Returns the built task (for the split check)."""
    from rlreason.registry import REGISTRIES, TASKS, VERIFIERS

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
    return built["task"]


def _check_sharding(cfg: DictConfig, where: str, needs_rollout: bool) -> None:
    """`strategy: fsdp` with a reward that reads the parameters whole (info_gain's theta - theta_ref and
    its JVP over named parameters) would compute the penalty on shards: refused. Lightning runs FSDP
    on GPUs only, so this path cannot be tested on CPU; DDP is the tested multi-process strategy."""
    strategy = str(cfg.trainer.get("strategy", "")).lower() if "strategy" in cfg.trainer else ""
    if "fsdp" not in strategy or not needs_rollout:
        return
    from rlreason.registry import REWARDS

    reward = build_section(REWARDS, cfg.reward, where, "reward")  # a combination decides per term
    if getattr(reward, "needs_initial_params", False):
        raise ConfigError(
            f"{where}: trainer.strategy: '{cfg.trainer.strategy}' shards the parameters, but reward "
            f"'{cfg.reward.name}' needs them whole (theta - theta_ref and its JVP); use strategy: ddp"
        )


def allowed(key: str) -> tuple[str, ...]:
    """The values a word-valued key may take: its registry's names, or the words its field declares."""
    from rlreason.registry import CHOICE_REGISTRIES

    meta = field_meta(key)
    return tuple(CHOICE_REGISTRIES[meta["registry"]].names()) if meta["registry"] else meta["choices"]


def _one_of(cfg: DictConfig, key: str) -> tuple[str, bool, str]:
    words = allowed(key)
    return key, OmegaConf.select(cfg, key) in words, " | ".join(words)


def _check_ranges(cfg: DictConfig, where: str) -> None:
    """One (key, ok, expected) row per single-field constraint; the first failing row is reported."""
    r, o, e, lg = cfg.rollout, cfg.optim, cfg.eval, cfg.logging
    betas = list(o.betas)
    checks = [
        ("name", bool(str(cfg.name).strip()), "a non-empty run name"),
        ("model.name_or_path", bool(str(cfg.model.name_or_path).strip()), "'lab-tiny', a model directory or hub name"),
        _one_of(cfg, "model.control_tokens"),
        _one_of(cfg, "model.dtype"),
        ("model.logit_chunk_size", cfg.model.logit_chunk_size >= 0, ">= 0 (0 = no chunking)"),
        ("rollout.group_size", r.group_size >= 1, "a positive integer"),
        ("rollout.prompts_per_step", r.prompts_per_step >= 1, "a positive integer"),
        ("rollout.max_new_tokens", r.max_new_tokens >= 1, "a positive integer"),
        ("rollout.temperature", r.temperature > 0, "> 0 for sampling"),
        ("rollout.top_p", 0 < r.top_p <= 1, "in (0, 1]"),
        ("rollout.top_k", r.top_k >= 0, ">= 0 (0 disables)"),
        ("rollout.batch_size", r.batch_size >= 0, ">= 0 (0 = the whole rollout batch)"),
        _one_of(cfg, "rollout.backend"),
        _one_of(cfg, "rollout.sampler"),
        ("rollout.sampler_share", 0 < r.sampler_share < 1, "a share in (0, 1) (P(<short>))"),
        ("optim.steps", o.steps >= 1, "a positive integer"),
        ("optim.lr", o.lr > 0, "> 0"),
        _one_of(cfg, "optim.optimizer"),
        ("optim.weight_decay", o.weight_decay >= 0, ">= 0"),
        ("optim.betas", len(betas) == 2 and all(0 <= b < 1 for b in betas), "two values in [0, 1), e.g. [0.9, 0.999]"),
        ("optim.eps", o.eps > 0, "> 0"),
        _one_of(cfg, "optim.schedule"),
        ("optim.warmup_ratio", 0 <= o.warmup_ratio < 1, "in [0, 1)"),
        ("optim.warmup_steps", o.warmup_steps >= 0, ">= 0"),
        ("optim.minibatches", o.minibatches >= 1, "a positive integer"),
        ("optim.micro_batch_size", o.micro_batch_size >= 0, ">= 0 (0 = the whole minibatch)"),
        ("optim.micro_batch_tokens", o.micro_batch_tokens >= 0, ">= 0 (0 = off)"),
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
        (
            "logging.logger",
            _loggers_ok(lg.logger),
            f"one of {' | '.join(allowed('logging.logger'))}, or a non-empty list of them",
        ),
        ("logging.keep_last_n", lg.keep_last_n >= 0, ">= 0 (0 keeps all)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{where}: {key}: expected {expected}, got {OmegaConf.select(cfg, key)!r}")
    from rlreason.policy.lora import lora_problem

    problem = lora_problem(OmegaConf.to_container(cfg.model.lora)) if cfg.model.lora else None
    if problem:
        raise ConfigError(f"{where}: model.lora.{problem[0]}: {problem[1]}")
    from rlreason.algos.rollout_correction import correction_problem
    from rlreason.policy.vllm_engine import vllm_config_problem

    trainer = OmegaConf.to_container(cfg.trainer)
    problem = vllm_config_problem(r.backend, OmegaConf.to_container(r.vllm), trainer) or correction_problem(  # type: ignore[arg-type]
        r.is_correction, r.is_cap, r.recompute_old_logprobs
    )
    if problem:
        raise ConfigError(f"{where}: rollout.{problem[0]}: {problem[1]}")


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
