"""Experiment configuration: a typed, documented schema, YAML files with inheritance, command-line
overrides and load-time validation.

An experiment is a YAML file with the top-level keys of `ExperimentConfig`. Component sections
(`task`, `reward`, `algo`) are `{name: ..., **params}` mappings checked against the registries, so
an unknown component or parameter fails at load time, not an hour into a run. Every problem is
raised as `ConfigError` with one line naming the file and the key.

- `schema`: the sections and keys, each with its type, default and doc (`rlreason list config`);
- `loading`: reading files, `base:` inheritance, overrides, merging, paths, `to_yaml`;
- `validation`: the checks run by `load_config` before anything else happens.
"""

from rlreason.config.loading import (
    OMIT_WHEN_DEFAULT,
    flat_hparams,
    load_config,
    load_experiment,
    parse_overrides,
    project_root,
    to_yaml,
)
from rlreason.config.schema import (
    COMPONENT_SECTIONS,
    LOGGERS,
    EvalConfig,
    ExperimentConfig,
    InitConfig,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    RolloutConfig,
    checkpoint_interval,
    field_docs,
    loggers_of,
)
from rlreason.config.validation import TRAINER_RESERVED, Components, validate

__all__ = [
    "COMPONENT_SECTIONS",
    "LOGGERS",
    "OMIT_WHEN_DEFAULT",
    "TRAINER_RESERVED",
    "Components",
    "EvalConfig",
    "ExperimentConfig",
    "InitConfig",
    "LoggingConfig",
    "ModelConfig",
    "OptimConfig",
    "RolloutConfig",
    "checkpoint_interval",
    "field_docs",
    "flat_hparams",
    "load_config",
    "load_experiment",
    "loggers_of",
    "parse_overrides",
    "project_root",
    "to_yaml",
    "validate",
]
