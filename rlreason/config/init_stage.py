"""Load-time checks of `init.from`: its stage config is valid, and `model.*` agrees with it.

When `init.from` is set, the run loads the weights and tokenizer it names and never reads
`model.name_or_path` (nor `model.lab`, the tiny model's architecture). A config that sets both to
different models describes a run that will not happen, so:

- `init.from` is a stage YAML (run first, e.g. the lab's SFT warm-up) or an earlier rlreason run (its
  directory or its `policy/`): we know which model that stage trains, and a `model.name_or_path` /
  `model.lab` written in this config that differs from it is an error (exit 2, one line). Keys left
  at their defaults are not compared: they were not a statement about the model.
- `init.from` is any other model (a hub name or a Hugging Face directory): what it was fine-tuned
  from is unknown, so a `model.name_or_path` that differs only draws a one-line warning saying
  which of the two is loaded (the paper recipes name the base model there, for the record).

The stage YAML is loaded (and so validated) here, before anything runs: a bad value in the stage
fails now, not after the stages before it have trained.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from rlreason.config.schema import ModelConfig
from rlreason.errors import ConfigError

MODEL_KEYS = ("name_or_path", "lab")
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """One `rlreason: warning:` line on stderr, at most once per message and process."""
    if message not in _warned:
        _warned.add(message)
        print(f"rlreason: warning: {message}", file=sys.stderr, flush=True)


def _run_model(path: Path) -> dict[str, Any] | None:
    """The `model` section of the rlreason run that `path` (a run directory or its policy/) belongs to."""
    for run_dir in (path, path.parent) if path.name == "policy" else (path,):
        cfg_file = run_dir / "config.yaml"
        if cfg_file.is_file() and (run_dir / "policy").is_dir():
            try:
                data = yaml.safe_load(cfg_file.read_text())
            except (OSError, yaml.YAMLError):
                return None
            model = data.get("model") if isinstance(data, dict) else None
            return model if isinstance(model, dict) else None
    return None


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


def _model_defaults() -> dict[str, Any]:
    """The schema's defaults of the compared `model.*` keys."""
    schema = OmegaConf.structured(ModelConfig)
    return {k: _plain(schema[k]) for k in MODEL_KEYS}


def check_init(
    cfg: DictConfig,
    where: str,
    explicit: set[str],
    chain: tuple[Path, ...],
    load_stage: Callable[..., DictConfig],
) -> None:
    """Validate the `init.from` stage (recursively) and compare `model.*` with the model it starts from.

    `explicit`: the `model.*` keys this config writes itself (files or command line); `chain`: the
    stage files already being loaded, to refuse a stage that starts from itself; `load_stage`: the
    config loader (`load_config`), passed in because loading a config is what calls this check."""
    src = cfg.init.from_
    if not src:
        return
    path = Path(src)
    if path.suffix in (".yaml", ".yml"):
        if path.resolve() in {p.resolve() for p in chain}:
            cycle = " -> ".join(str(p) for p in (*chain, path))
            raise ConfigError(f"{where}: init.from: circular stages ({cycle})")
        if not path.is_file():
            raise ConfigError(f"{where}: init.from: stage config not found: {path}")
        try:
            stage = load_stage(path, _stage_chain=(*chain, path))
        except ConfigError as exc:
            raise ConfigError(f"{where}: init.from: {exc}") from None
        theirs: dict[str, Any] | None = {k: _plain(stage.model[k]) for k in MODEL_KEYS}
        origin = f"stage {path}"
    else:
        theirs = _run_model(path)
        origin = f"the run {path}"
    if theirs is None:
        loaded = cfg.model.name_or_path
        if "name_or_path" in explicit and loaded != src and not (path.is_absolute() and not path.exists()):
            warn_once(
                f"init.from: the run starts from '{src}'; model.name_or_path '{loaded}' is not loaded "
                "(its model.* settings still apply)"
            )
        return
    defaults = _model_defaults()
    for key in MODEL_KEYS:
        ours = _plain(cfg.model[key])
        # a saved, fully resolved config.yaml writes every key: a default value there is no choice
        if ours == defaults.get(key):
            continue
        if key in explicit and key in theirs and ours != theirs[key]:
            raise ConfigError(
                f"{where}: model.{key}: {ours!r} is not the model this run starts from: init.from is {origin}, "
                f"which trains {theirs[key]!r}; make them equal, drop model.{key}, or set init.from=null"
            )
