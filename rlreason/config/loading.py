"""Reading an experiment: YAML files with `base:` inheritance, `key=value` overrides, merging onto
the schema (`rlreason.config.schema`), resolving paths, and writing the resolved config back as YAML.

A file may start from another (`base: other.yaml`, relative to the file or absolute); command-line
arguments `key=value` override any key (dotted keys, lists `[a,b]`, OmegaConf interpolation
`${...}`). Every problem is raised as `ConfigError` with one line naming the file and the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlreason.config.init_stage import check_init
from rlreason.config.schema import COMPONENT_SECTIONS, ExperimentConfig
from rlreason.config.validation import Components, validate
from rlreason.errors import ConfigError


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
    internal: the stage files being loaded above this one (see `rlreason.config.init_stage`).
    """
    return load_experiment(path, overrides, _stage_chain=_stage_chain)[0]


def load_experiment(
    path: str | Path | None = None, overrides: list[str] | None = None, *, _stage_chain: tuple[Path, ...] = ()
) -> tuple[DictConfig, Components]:
    """`load_config`, with the components its validation built (what `rlreason run` trains with)."""
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
    components = validate(cfg, where=where)
    given = parse_overrides(overrides) if overrides else OmegaConf.create({})
    _absolute_paths(cfg, Path(path) if path is not None else None, given)
    chain = (*_stage_chain, Path(path)) if path is not None and not _stage_chain else _stage_chain
    check_init(cfg, where, explicit_model, chain, load_config)
    return cfg, components


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


# Keys added after run directories were first recorded: written only when they differ from the
# default, so the config.yaml of a run with them off, its `init.resume=auto` match and the stage
# cache key (`config_hash`) stay exactly what they were before the keys existed.
OMIT_WHEN_DEFAULT = {
    ("rollout", "sampler"): "none",
    ("rollout", "sampler_share"): 0.5,
    ("rollout", "vllm"): {},
    ("rollout", "is_correction"): "none",
    ("rollout", "is_cap"): 2.0,
    ("rollout", "recompute_old_logprobs"): False,
}


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


def flat_hparams(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key: scalar}; lists and None become strings (HParams takes
    int / float / str / bool only)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flat_hparams(v, f"{prefix}{k}."))
        return out
    key = prefix.rstrip(".")
    if isinstance(data, (bool, int, float, str)):
        return {key: data}
    return {key: "null" if data is None else str(data)}
