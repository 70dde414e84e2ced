"""Registered verifiers (`VERIFIERS`): `math` (default), `prm800k`, `exact`.

A verifier compares an *extracted* answer with a gold answer in two stages: `fast(pred, gold)`
decides in-process what it can without sympy (plain numbers, identical strings) and returns None
otherwise; `symbolic` names the comparison that then runs in a killable worker process.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import ClassVar

from rlreason.registry import VERIFIERS
from rlreason.verify.gold import gold_answer
from rlreason.verify.numeric import looks_numeric, parse_number, parse_time
from rlreason.verify.options import DEFAULT, GradingOptions
from rlreason.verify.pool import library_symbolic_pool
from rlreason.verify.symbolic import prm800k_normalize
from rlreason.verify.tolerance import within

FLOAT_ROUNDING = 6  # math-verify 0.9's default `float_rounding` in `verify`


def _squash(s: str) -> str:
    """Spacing, surrounding ``$`` and a final period ignored; a space between two digits is kept
    (``1 000`` is not ``1000`` unless the number format says so)."""
    s = re.sub(r"(?<=\d)\s+(?=\d)", "\u2423", s.strip())
    return re.sub(r"\s+", "", s).rstrip(".").strip("$")


# a multiple-choice answer: a bare letter (``C``, ``(C)``, ``\\text{(C)}``) or a labelled option ("C. x = 42")
_CHOICE = re.compile(r"(?:\\text(?:bf)?\{)?\(?([A-E])\)?\}?")
_LABELLED = re.compile(r"\(?([A-E])[.:)]\s+\S.*", re.DOTALL)


def _choice(s: str) -> tuple[str, bool] | None:
    """(letter, labelled) for a multiple-choice answer, else None."""
    s = s.strip().strip("$").strip()
    m = _CHOICE.fullmatch(s)
    if m:
        return m.group(1), False
    m = _LABELLED.fullmatch(s)
    return (m.group(1), True) if m else None


def gold_number(gold: str, number_format: str = "en") -> Fraction | None:
    """A gold answer as a number: in the task's format, else in the canonical ``en`` one (gold answers
    are trusted data, often stored canonically, e.g. ``2.5`` for a decimal-comma task)."""
    value = parse_number(gold, number_format)
    return value if value is not None or number_format == "en" else parse_number(gold, "en")


_PERCENT = re.compile(r"\s*(?:\\%|%)\s*$")


def _percent_verdict(pred: str, gold: str, options: GradingOptions) -> bool | None:
    """Plain numbers with a percent sign under the task's `percent` mode; None to leave to math-verify
    (mode ``either``, which is its own rule, or an answer that is not a plain number)."""
    if options.percent == "either":
        return None
    values = []
    for s in (pred, gold):
        bare = _PERCENT.sub("", s)
        v = parse_number(bare, options.number_format)
        if v is None:
            return None
        values.append(v / 100 if options.percent == "value" and bare != s else v)
    p, g = values
    return p == g or (options.tolerance > 0 and within(p, g, options.tolerance))


class Verifier:
    """Base: `verifier(pred, gold)` compares two *extracted* answers; `fast` + `symbolic` split the work.

    `fast` runs in the caller's process and must be cheap and total (never raises, no sympy); it
    returns None when it cannot decide. `symbolic` names the function in `symbolic.SLOW` that then
    runs in a killable worker (given the task's relative tolerance). Batch callers use `VerifierPool`,
    which does this split for many pairs. `options`: the task's `GradingOptions`.
    """

    symbolic: ClassVar[str | None] = None

    def fast(self, pred: str, gold: str, options: GradingOptions = DEFAULT) -> bool | None:
        raise NotImplementedError

    def __call__(self, pred: str, gold: str, timeout: float = 5.0) -> bool:
        """Whether the answers are equivalent; at most `timeout` s, False on any failure.

        One pair, as `VerifierPool.verify(..., extract=False)` grades it (the gold read like an answer,
        the fast check, then the symbolic comparison) in the process-wide library pool of
        rlreason/verify/pool.py."""
        if not isinstance(pred, str):
            return False
        try:
            g = gold_answer(gold)
            verdict = self.fast(pred, g)
        except Exception:  # malformed input never stops the caller
            return False
        if verdict is not None or self.symbolic is None:
            return bool(verdict)
        return library_symbolic_pool(timeout).compare([(self.symbolic, pred, g, 0.0)])[0]


@VERIFIERS.register("math")
class MathVerifier(Verifier):
    """Exact numeric fast path, then math-verify's LaTeX-to-sympy equivalence (the default).

    The fast path decides only what math-verify would decide the same way: identical strings, and
    plain numbers on *both* sides (exact rationals; near misses within math-verify's 6-decimal
    rounding are left to it), percentages excepted. A number-shaped answer its format does not allow (``2,5`` under
    ``en``) against a plain-number gold is wrong here: math-verify would read it as the set {2, 5}
    or, for ``1\\,000``, as the product 1*000 = 0. Everything else goes to math-verify.
    """

    symbolic = "math"

    def fast(self, pred: str, gold: str, options: GradingOptions = DEFAULT) -> bool | None:
        if options.choices:  # both sides are letters already (`extract_choice`), or no answer was found
            return _squash(pred).upper() == _squash(gold).upper() != ""
        if _squash(pred) == _squash(gold) != "":
            return True
        number_format = options.number_format
        tp, tg = parse_time(pred), parse_time(gold)
        if tp is not None and tg is not None:
            return tp == tg  # 20:34 == 20:34:00 == 08:34 P.M.
        if "%" in pred or "%" in gold:
            return _percent_verdict(pred, gold, options)  # mode "either" is math-verify's rule: it decides
        g, p = gold_number(gold, number_format), parse_number(pred, number_format)
        if g is not None and p is not None:
            if g == p or (options.tolerance > 0 and within(p, g, options.tolerance)):
                return True
            # math-verify compares numbers rounded to 6 decimals (so 0.666667 == 2/3): defer those
            # near misses to it, so that the fast path never disagrees with the symbolic one
            return None if round(g, FLOAT_ROUNDING) == round(p, FLOAT_ROUNDING) else False
        if (g is not None and looks_numeric(pred)) or (p is not None and looks_numeric(gold)):
            return False  # a malformed number against a plain number: no symbolic reading is safe
        pc, gc = _choice(pred), _choice(gold)
        if pc is not None and gc is not None and (pc[1] or gc[1]):
            return pc[0] == gc[0]  # "C" against the option "C. x = 42": the letters decide
        return None


@VERIFIERS.register("prm800k")
class PRM800KVerifier(Verifier):
    """prm800k-style grader (as Thinkless reports): normalised strings, then sympy difference == 0."""

    symbolic = "prm800k"

    def fast(self, pred: str, gold: str, options: GradingOptions = DEFAULT) -> bool | None:
        p, g = prm800k_normalize(pred), prm800k_normalize(gold)
        if p == g and p:
            return True
        gn, pn = parse_number(g, options.number_format), parse_number(p, options.number_format)
        if gn is not None and pn is not None:
            return gn == pn or (options.tolerance > 0 and within(pn, gn, options.tolerance))
        return None


@VERIFIERS.register("exact")
class ExactVerifier(Verifier):
    """Normalised string equality (whitespace, surrounding $ and a final period ignored)."""

    def fast(self, pred: str, gold: str, options: GradingOptions = DEFAULT) -> bool | None:
        return _squash(pred) == _squash(gold)
