"""Does a config value fit a Python type annotation? For keys handed to code we do not own.

`trainer.*` goes to `lightning.Trainer(**kwargs)`, which checks most values only when it is built,
after an `init.from` stage may have trained for an hour. Its signature is annotated, so each value
read from YAML or the command line can be checked against the annotation at load time.

Values from a config are plain data (None, bool, int, float, str, list, dict), so an annotation
naming a class (`Strategy`, `Logger`, ...) can never be met by one; such alternatives are left out
of the "expected" text. An annotation this module does not understand accepts the value: it may
miss a bad value but never refuses a good one.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from pathlib import Path
from typing import Any

_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_NOTHING = "a value of a type a config cannot write"
_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _args(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def fits(value: Any, annotation: Any) -> bool:
    """True when `value` (plain config data) is acceptable for `annotation`."""
    if annotation is Any or annotation is typing.Any:
        return True
    if _is_union(annotation):
        return any(fits(value, a) for a in _args(annotation))
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in _args(annotation))
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is Path:
        return isinstance(value, str)
    seq = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
    if origin in seq or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in _args(annotation) if a is not Ellipsis]
        if origin is tuple and len(inner) > 1:  # tuple[X, Y]: one annotation per position
            return len(value) == len(inner) and all(fits(v, a) for v, a in zip(value, inner))
        return not inner or all(fits(v, inner[0]) for v in value)
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        if not isinstance(value, dict):
            return False
        kv = _args(annotation)
        return not kv or all(fits(k, kv[0]) and fits(v, kv[1]) for k, v in value.items())
    if isinstance(annotation, type):
        return isinstance(value, annotation)  # a class: only an instance fits, never plain data
    return True  # not understood: accept


def mismatch(value: Any, annotation: Any, key: str) -> str | None:
    """None when `value` fits; else "<key>: expected ..., got ...", naming the innermost item at
    fault (`terms[0]`, `weights.easy`) when the container itself is right."""
    if fits(value, annotation):
        return None
    if isinstance(value, (list, tuple, dict)):
        kinds = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
        want = kinds if isinstance(value, (list, tuple)) else (dict, collections.abc.Mapping)
        alts = [a for a in _flatten(annotation) if typing.get_origin(a) in want]
        if len(alts) == 1 and _args(alts[0]) and describe(alts[0]) != _NOTHING:
            args = [a for a in _args(alts[0]) if a is not Ellipsis]
            if isinstance(value, dict) and len(args) == 2:
                for k, v in value.items():
                    if not fits(v, args[1]):
                        return mismatch(v, args[1], f"{key}.{k}")
            elif isinstance(value, (list, tuple)) and len(args) == 1:
                for i, v in enumerate(value):
                    if not fits(v, args[0]):
                        return mismatch(v, args[0], f"{key}[{i}]")
    return f"{key}: expected {describe(annotation)}, got {value!r}"


def _flatten(annotation: Any) -> list[Any]:
    return [x for a in _args(annotation) for x in _flatten(a)] if _is_union(annotation) else [annotation]


def describe(annotation: Any) -> str:
    """What a config may write for `annotation`, e.g. "an integer or null", "'a' or 'b'"."""
    flat = _flatten(annotation)
    literals = [v for a in flat if typing.get_origin(a) is typing.Literal for v in _args(a)]
    others = [a for a in flat if typing.get_origin(a) is not typing.Literal]
    if float in others:
        others = [a for a in others if a is not int]  # "a number" covers integers
    if str in others:
        others = [a for a in others if a is not Path]
    parts = list(dict.fromkeys(p for a in others if (p := _describe_one(a))))
    if literals:
        parts.insert(0, ", ".join(repr(v) for v in literals))
    return " or ".join(parts) if parts else _NOTHING


def _describe_one(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if annotation in _NAMES:
        return _NAMES[annotation]
    if annotation is Path:
        return "a path string"
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        inner = [a for a in _args(annotation) if a is not Ellipsis]
        if len(inner) == 1 and inner[0] in _PLURALS:
            return f"a list of {_PLURALS[inner[0]]}"
        return "a list" if not inner or any(describe(a) != _NOTHING for a in inner) else ""
    if origin in (dict, collections.abc.Mapping):
        kv = _args(annotation)
        return f"a mapping of {_PLURALS[kv[1]]}" if len(kv) == 2 and kv[1] in _PLURALS else "a mapping"
    return ""  # a class (Strategy, Logger, timedelta, ...): no config value can be one
