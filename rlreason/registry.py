"""One generic registry, one instance per concept (rewards, algorithms, tasks, verifiers).

Components register with a decorator, are built from a config mapping (`{"name": ..., **params}`)
and are described for `rlreason list`. Third-party packages add components through the Python
entry-point group ``rlreason.<registry name>`` (e.g. ``rlreason.rewards``); they are loaded the
first time a registry is looked up, so importing rlreason never imports plugins eagerly.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from rlreason.errors import RegistryError

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

    def __init__(self, name: str, *, reserved: tuple[str, ...] = ("name",)) -> None:
        self.name = name
        self.group = f"rlreason.{name}"
        self._items: dict[str, Callable[..., Any]] = {}
        self._reserved = reserved
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

    def get(self, name: str, *, where: str = "") -> Callable[..., Any]:
        """The component registered as `name`; an unknown name lists the valid ones."""
        self._load_plugins()
        if name in self._items:
            return self._items[name]
        prefix = f"{where}: " if where else ""
        hint = difflib.get_close_matches(str(name), self._items, n=1, cutoff=0.5)
        did = f"; did you mean '{hint[0]}'?" if hint else ""
        raise RegistryError(
            f"{prefix}unknown {self.name[:-1] if self.name.endswith('s') else self.name} '{name}'{did} "
            f"(valid: {', '.join(sorted(self._items)) or 'none'})"
        )

    # -- building -----------------------------------------------------------------------------
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

    def build(self, cfg: Mapping[str, Any] | str, *, where: str = "", **extra: Any) -> Any:
        """Instantiate from `{"name": ..., **params}` (or a bare name).

        Unknown parameters are rejected by name; `extra` are framework-provided arguments passed only
        when the component accepts them.
        """
        if isinstance(cfg, str):
            cfg = {"name": cfg}
        cfg = dict(cfg)
        if "name" not in cfg:
            raise RegistryError(f"{where or self.name}: missing 'name' (one of: {', '.join(self.names())})")
        name = cfg.pop("name")
        obj = self.get(name, where=f"{where}.name" if where else "")
        sig = inspect.signature(obj)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        known = {p.name for p in sig.parameters.values()}
        bad = [k for k in cfg if k not in known and not accepts_any]
        if bad:
            valid = ", ".join(p.name for p in self.params(name)) or "none"
            hint = difflib.get_close_matches(bad[0], known, n=1, cutoff=0.6)
            did = f"; did you mean '{hint[0]}'?" if hint else ""
            raise RegistryError(
                f"{where + '.' if where else ''}{bad[0]}: unknown parameter of {self.name[:-1]} '{name}'{did} "
                f"(valid: {valid})"
            )
        for k, v in extra.items():
            if k in known or accepts_any:
                cfg.setdefault(k, v)
        missing = [
            p.name
            for p in sig.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in cfg
        ]
        if missing:
            raise RegistryError(f"{where + '.' if where else ''}{missing[0]}: required by {self.name[:-1]} '{name}'")
        try:
            return obj(**cfg)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{where or self.name}: cannot build '{name}': {exc}") from exc

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


REWARDS = Registry("rewards")
ALGOS = Registry("algos")
TASKS = Registry("tasks")
VERIFIERS = Registry("verifiers")

REGISTRIES: dict[str, Registry] = {r.name: r for r in (REWARDS, ALGOS, TASKS, VERIFIERS)}
