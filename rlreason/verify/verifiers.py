"""Registered verifiers (`VERIFIERS`): `math` (default), `prm800k`, `exact`.

A verifier compares an *extracted* answer with a gold answer in two stages: `fast(pred, gold)`
decides in-process what it can without sympy (plain numbers, identical strings) and returns None
otherwise; `symbolic` names the comparison that then runs in a killable worker process.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rlreason.registry import VERIFIERS
from rlreason.verify.numeric import parse_number
from rlreason.verify.symbolic import prm800k_normalize


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s).rstrip(".").strip("$")


class Verifier:
    symbolic: ClassVar[str | None] = None

    def fast(self, pred: str, gold: str) -> bool | None:
        raise NotImplementedError


@VERIFIERS.register("math")
class MathVerifier(Verifier):
    """Exact numeric fast path, then math-verify's LaTeX-to-sympy equivalence (the default)."""

    symbolic = "math"

    def fast(self, pred: str, gold: str) -> bool | None:
        if _squash(pred) == _squash(gold) or prm800k_normalize(pred) == prm800k_normalize(gold) != "":
            return True
        g, p = parse_number(gold), parse_number(pred)
        if g is not None and p is not None:
            return g == p
        if g is not None and re.fullmatch(r"[\d\s.,+\-/]*", pred):
            return False  # a malformed number against a numeric gold: no symbolic rescue possible
        return None


@VERIFIERS.register("prm800k")
class PRM800KVerifier(Verifier):
    """prm800k-style grader (as Thinkless reports): normalised strings, then sympy difference == 0."""

    symbolic = "prm800k"

    def fast(self, pred: str, gold: str) -> bool | None:
        p, g = prm800k_normalize(pred), prm800k_normalize(gold)
        if p == g and p:
            return True
        gn, pn = parse_number(g), parse_number(p)
        if gn is not None and pn is not None:
            return gn == pn
        return None


@VERIFIERS.register("exact")
class ExactVerifier(Verifier):
    """Normalised string equality (whitespace, surrounding $ and a final period ignored)."""

    def fast(self, pred: str, gold: str) -> bool | None:
        return _squash(pred) == _squash(gold)
