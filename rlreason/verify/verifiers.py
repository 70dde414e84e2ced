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

FLOAT_ROUNDING = 6  # math-verify 0.9's default `float_rounding` in `verify`


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s).rstrip(".").strip("$")


class Verifier:
    """Base: `verifier(pred, gold)` compares two *extracted* answers; `fast` + `symbolic` split the work.

    `fast` runs in the caller's process and must be cheap and total (never raises, no sympy); it
    returns None when it cannot decide. `symbolic` names the function in `symbolic.SLOW` that then
    runs in a killable worker. Batch callers use `VerifierPool`, which does this split for many pairs.
    """

    symbolic: ClassVar[str | None] = None

    def fast(self, pred: str, gold: str) -> bool | None:
        raise NotImplementedError

    def __call__(self, pred: str, gold: str, timeout: float = 5.0) -> bool:
        """Whether the answers are equivalent; at most `timeout` s, False on any failure."""
        verdict = self.fast(pred, gold)
        if verdict is not None or self.symbolic is None:
            return bool(verdict)
        from rlreason.verify import _default_pool  # the shared, long-lived worker pool

        return _default_pool(self.symbolic, timeout).verify([pred], [gold], extract=False)[0]


@VERIFIERS.register("math")
class MathVerifier(Verifier):
    """Exact numeric fast path, then math-verify's LaTeX-to-sympy equivalence (the default)."""

    symbolic = "math"

    def fast(self, pred: str, gold: str) -> bool | None:
        if _squash(pred) == _squash(gold) or prm800k_normalize(pred) == prm800k_normalize(gold) != "":
            return True
        g, p = parse_number(gold), parse_number(pred)
        if g is not None and p is not None:
            if g == p:
                return True
            # math-verify compares numbers rounded to 6 decimals (so 0.666667 == 2/3): defer those
            # near misses to it, so that the fast path never disagrees with the symbolic one
            return None if round(g, FLOAT_ROUNDING) == round(p, FLOAT_ROUNDING) else False
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
