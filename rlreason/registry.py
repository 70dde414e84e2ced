"""One generic registry, one instance per concept (rewards, algorithms, tasks, verifiers, and the
optimisers, learning-rate schedules and rollout backends a config names by a plain string).

Components register with a decorator, are checked and built from a config mapping
(`{"name": ..., **params}`; `Registry.check` is the only place a spec is judged) and are described
for `rlreason list`. Third-party packages add components through the Python
entry-point group ``rlreason.<registry name>`` (e.g. ``rlreason.rewards``); they are loaded the
first time a registry is looked up, so importing rlreason never imports plugins eagerly.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from rlreason.errors import RegistryError, RLReasonError
from rlreason.typecheck import mismatch

T = TypeVar("T")


@dataclass(frozen=True)
class ParamInfo:
    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


class Registry:
    """A name -> component (class or factory) mapping with helpful errors.

    >>> REWARDS = Registry("rewards")
    >>> @REWARDS.register("binary")
    ... class Binary: ...
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.group = f"rlreason.{name}"
        self._items: dict[str, Callable[..., Any]] = {}
        self._plugins_loaded = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering a class or factory under `name` (default: its `__name__`)."""

        def deco(obj: T) -> T:
            self.add(name or obj.__name__, obj)  # type: ignore[attr-defined]
            return obj

        return deco

    def add(self, name: str, obj: Callable[..., Any]) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{self.name}: component name must be a non-empty string, got {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise RegistryError(f"{self.name}: '{name}' is already registered (by {_qualname(self._items[name])})")
        self._items[name] = obj

    # -- lookup -------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the framework
                raise RegistryError(f"{self.name}: entry point '{ep.name}' ({ep.value}) failed to load: {exc}") from exc
            self.add(ep.name, obj)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self.get(name)

    def get(self, name: str, *, where: str = "") -> Callable[..., Any]:
        """The component registered as `name`; an unknown name lists the valid ones."""
        self._load_plugins()
        if name in self._items:
            return self._items[name]
        prefix = f"{where}: " if where else ""
        hint = difflib.get_close_matches(str(name), self._items, n=1, cutoff=0.5)
        did = f"; did you mean '{hint[0]}'?" if hint else ""
        raise RegistryError(
            f"{prefix}unknown {self.kind} '{name}'{did} (valid: {', '.join(sorted(self._items)) or 'none'})"
        )

    # -- checking and building ---------------------------------------------------------------
    def params(self, name: str) -> list[ParamInfo]:
        """Constructor parameters of a component (what a config may set)."""
        obj = self.get(name)
        sig = inspect.signature(obj)
        out = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
                continue
            ann = p.annotation
            ann_s = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
            out.append(ParamInfo(p.name, p.default, "" if ann is inspect.Parameter.empty else str(ann_s)))
        return out

    def check(self, spec: Mapping[str, Any] | str, *, where: str = "", provided: Iterable[str] = ()) -> dict[str, Any]:
        """The one check of a `{"name": ..., **params}` spec (or a bare name), short of building it.

        Every `build` runs it, and config validation builds each component section at load time,
        so a spec is judged the same way wherever it comes from: the name must be registered, each
        parameter must be one the component takes, every required one must be given (or be among
        `provided`, the names `build` passes itself) and each value must fit its annotation
        (`rlreason.typecheck`). Checks that need values together stay in the component's
        constructor, which `build` runs next. Returns the spec as a plain dict, `name` first; a
        problem is a `RegistryError` of one line naming `<where>.<key>` and what was expected.
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping):
            raise RegistryError(
                f"{where or self.name}: expected a mapping with 'name' (one of: {', '.join(self.names())}), "
                f"got {type(spec).__name__}"
            )
        if "name" not in spec:
            raise RegistryError(f"{_key(where, 'name')}: missing (one of: {', '.join(self.names())})")
        spec = {"name": spec["name"], **{k: v for k, v in spec.items() if k != "name"}}
        name = spec["name"]
        obj = self.get(name, where=_key(where, "name") if where else "")
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(obj).parameters.values())
        params = self.params(name)
        known = [p.name for p in params]
        bad = [k for k in spec if k != "name" and k not in known and not accepts_any]
        if bad:
            hint = difflib.get_close_matches(bad[0], known, n=1, cutoff=0.6)
            did = f"; did you mean '{hint[0]}'?" if hint else ""
            valid = ", ".join(sorted(known)) or "none"
            raise RegistryError(
                f"{_key(where, bad[0])}: unknown parameter of {self.kind} '{name}'{did} (valid: {valid})"
            )
        missing = [p.name for p in params if p.required and p.name not in spec and p.name not in set(provided)]
        if missing:
            raise RegistryError(f"{_key(where, missing[0])}: required by {self.kind} '{name}'")
        problem = _type_problem(obj, spec)
        if problem:
            raise RegistryError(_key(where, problem))
        return spec

    def build(self, cfg: Mapping[str, Any] | str, *, where: str = "", **extra: Any) -> Any:
        """Instantiate from `{"name": ..., **params}` (or a bare name), once `check` has passed.

        `extra` are framework-provided arguments passed only when the component accepts them. A
        constructor reports a bad parameter by raising `ValueError("<param>: <what was expected>")`,
        or lets through the `RegistryError` of a nested `build(..., where="<param>")`; either is
        re-raised as `RegistryError("<where>.<param>: ...")`, so a component inside another is named
        by its full path (`reward.terms[1].name`). Other user errors (`RLReasonError`, e.g. a data
        file's `file:line`) pass unchanged; any other `TypeError` / `ValueError` is "cannot build".
        """
        spec = self.check(cfg, where=where, provided=extra)
        name = spec.pop("name")
        obj = self._items[name]
        sig = inspect.signature(obj)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        for k, v in extra.items():
            if k in sig.parameters or accepts_any:
                spec.setdefault(k, v)
        try:
            return obj(**spec)
        except (TypeError, ValueError, RLReasonError) as exc:
            keyed = self._keyed(exc, name, spec, where)
            if keyed is not None:
                raise RegistryError(keyed) from exc
            if isinstance(exc, RLReasonError):
                raise
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError(f"{where or self.name}: cannot build {self.kind} '{name}': {msg}") from exc

    def _keyed(self, exc: Exception, name: str, params: Mapping[str, Any], where: str) -> str | None:
        """`<where>.<param>: message` when the error's message starts with one of the component's
        parameters (`pool: expected ...`, `terms[1].name: unknown reward ...`), else None."""
        msg = str(exc).splitlines()[0] if str(exc) else ""
        m = re.match(r"([A-Za-z_][\w.\[\]]*): ", msg)
        known = set(params) | {p.name for p in self.params(name)}  # a missing one is named too
        if m and m.group(1).split(".")[0].split("[")[0] in known:
            return _key(where, msg)
        return None

    @property
    def kind(self) -> str:
        """What one component of this registry is called in messages: "reward", "algo"."""
        return self.name[:-1] if self.name.endswith("s") else self.name

    def describe(self) -> list[tuple[str, str, list[ParamInfo]]]:
        """(name, one-line doc, params) for every component, sorted by name."""
        rows = []
        for name in self.names():
            obj = self._items[name]
            doc = (inspect.getdoc(obj) or "").strip().splitlines()
            rows.append((name, doc[0] if doc else "", self.params(name)))
        return rows


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _key(where: str, key: str) -> str:
    """`where.key` (`reward.terms[0]` + `weight`), or `key` alone when there is no `where`."""
    return f"{where}.{key}" if where else key


def _type_problem(obj: Any, spec: Mapping[str, Any]) -> str | None:
    """The first given parameter that does not fit its annotation, as "<param>: expected ..., got ...",
    so `task.seed=1.5` or `reward.gamma=abc` is named with the type expected rather than failing
    inside the constructor. A component whose annotations cannot be resolved (e.g. a plugin's) is
    not type-checked; values are compared as plain data (an OmegaConf node as its container)."""
    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: leave the checks to the constructor
        return None
    for k, v in spec.items():
        problem = mismatch(_plain(v), hints[k], k) if k != "name" and k in hints else None
        if problem:
            return problem
    return None


def _plain(value: Any) -> Any:
    """An OmegaConf node as plain data (what a YAML value is); anything else as it is."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


REWARDS = Registry("rewards")
ALGOS = Registry("algos")
TASKS = Registry("tasks")
VERIFIERS = Registry("verifiers")

REGISTRIES: dict[str, Registry] = {r.name: r for r in (REWARDS, ALGOS, TASKS, VERIFIERS)}
"""The component registries: a config section `{name: ..., **params}` is built from one of them."""

OPTIMIZERS = Registry("optimizers")
"""`optim.optimizer`: factories `(param_groups, optim_cfg) -> torch.optim.Optimizer` (rlreason/train/optim.py),
each with `state_bytes_per_param`, the fp32 state it keeps (for the checkpoint size estimate)."""
SCHEDULES = Registry("schedules")
"""`optim.schedule`: the learning-rate multiplier after warm-up, `(progress in [0, 1]) -> float`."""
ROLLOUT_BACKENDS = Registry("rollout_backends")
"""`rollout.backend`: classes `(eos_ids, pad_id, batch_size, keep_decode_state)` with `generate`
(rlreason/policy/rollout.py)."""

CHOICE_REGISTRIES: dict[str, Registry] = {r.name: r for r in (OPTIMIZERS, SCHEDULES, ROLLOUT_BACKENDS)}
"""Registries a config picks from with a plain string key; their entries take framework arguments,
not config parameters, so `rlreason list` shows their names and docs only."""
