"""An ablation file and the cells it expands to (see the package docstring for the format).

Cell names are a pure function of the spec (grid order, labels, exclusions), which is what lets the
report rebuild the cell files of a sweep whose runner wrote none (`cell_file.backfill_cell_files`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlreason.errors import ConfigError

METHOD = "method"  # grid key whose values are bundles of config keys (see the package docstring)
SPEC_KEYS = ("base", "name", "grid", "exclude", "overrides")


@dataclass(frozen=True)
class Cell:
    """One run of the grid.

    `name` is its run directory (`key=label` for every grid key, joined by `-`); `group` is the same
    without the seed keys: the report's row, whose seeds it averages; `grid` holds the grid values as
    written (labels kept); `overrides` is what the run gets (grid values without labels, then the
    spec's `overrides`).
    """

    name: str
    group: str
    grid: dict[str, Any]
    overrides: list[str]


def _label(value: Any) -> str:
    """A grid value's part of the cell name: its `label` if given, else name + parameters."""
    if isinstance(value, dict):
        if "label" in value:
            return str(value["label"])
        return str(value.get("name", "x")) + "".join(f",{k}={v}" for k, v in value.items() if k != "name")
    return str(value)


def _without_label(value: Any) -> Any:
    return {k: v for k, v in value.items() if k != "label"} if isinstance(value, dict) else value


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value) if isinstance(value, (dict, list)) else value}"


def _cell_overrides(values: dict[str, Any]) -> list[str]:
    out = []
    for k, v in values.items():
        if k == METHOD:
            out += [_override(mk, mv) for mk, mv in v.items()]
        else:
            out.append(_override(k, v))
    return out


def is_seed_key(key: str) -> bool:
    """Grid keys that only repeat a cell (averaged over by the report), e.g. `seed`."""
    return key.split(".")[-1] == "seed"


def _name(values: dict[str, Any]) -> str:
    return "-".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in values.items()).replace("/", "_").replace(" ", "")


def _matches(values: dict[str, Any], exclude: dict[str, Any]) -> bool:
    def get(key: str) -> Any:
        head, _, rest = key.partition(".")
        v = values.get(key, values.get(head))
        return v.get(rest) if rest and isinstance(v, dict) else v

    return all(get(k) == v for k, v in exclude.items())


def _read_spec(path: Path) -> dict[str, Any]:
    """The ablation file's mapping, checked; `base` made absolute and `name` defaulted."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}: unknown key (valid: {', '.join(SPEC_KEYS)})")
    for key in ("base", "grid"):
        if key not in spec:
            raise ConfigError(f"{path}: {key}: required")
    grid = spec["grid"]
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid: expected a mapping of config keys to non-empty lists")
    for i, method in enumerate(grid.get(METHOD) or []):
        if not isinstance(method, dict) or "label" not in method or len(method) < 2:
            raise ConfigError(f"{path}: grid.method[{i}]: expected a mapping with a label and config keys")
    spec["base"] = str((path.parent / spec["base"]).resolve()) if not Path(spec["base"]).is_absolute() else spec["base"]
    spec.setdefault("name", path.stem)
    return spec


def expand_cells(spec: dict[str, Any]) -> list[Cell]:
    """Every grid combination not excluded, in grid order."""
    grid = spec["grid"]
    keys = list(grid)
    cells = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        if any(_matches(values, ex) for ex in spec.get("exclude") or []):
            continue
        unlabelled = {k: _without_label(v) for k, v in values.items()}  # a label names the cell, nothing else
        cells.append(
            Cell(
                name=_name(values),
                group=_name({k: v for k, v in values.items() if not is_seed_key(k)}),
                grid=values,
                overrides=_cell_overrides(unlabelled) + list(spec.get("overrides") or []),
            )
        )
    return cells


def load_ablation(path: Path) -> tuple[dict[str, Any], list[Cell]]:
    """The ablation spec (as saved next to the sweep's runs) and its cells."""
    spec = _read_spec(path)
    return spec, expand_cells(spec)
