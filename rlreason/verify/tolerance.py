"""Numeric closeness under a task's relative tolerance, on plain numbers and on parsed answers.

Used only when a task sets ``tolerance`` (default 0: exact). An answer ``a`` is close to a gold ``g``
when ``|a - g| <= tolerance * |g|`` (a gold of 0 is matched exactly). Parsed answers (sympy objects
from math-verify, in the worker process) are compared element by element: tuples and matrices of the
same shape, intervals with the same open / closed ends, equations with the same left side, finite
sets of numbers after sorting; an exact gold such as ``\\sqrt3`` is evaluated (``1.732`` is within
1e-3 of it). Anything else is not close.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

MAX_ELEMENTS = 400


def within(answer: Fraction, gold: Fraction, tolerance: float) -> bool:
    """Exact rationals: ``|answer - gold| <= tolerance * |gold|``."""
    return abs(answer - gold) <= Fraction(tolerance) * abs(gold)


def close(gold: Any, answer: Any, tolerance: float) -> bool:
    """Whether parsed `answer` is within `tolerance` of parsed `gold` (sympy objects; False on anything odd)."""
    try:
        return _close(gold, answer, tolerance)
    except Exception:  # an evaluation sympy cannot do is "not shown close"
        return False


def _close(g: Any, a: Any, tol: float) -> bool:
    import sympy

    if g == a:
        return True
    if isinstance(a, sympy.Eq) and not isinstance(g, sympy.Eq):
        a = a.rhs  # "x = 1.732" against the value sqrt(3)
    if isinstance(g, sympy.Eq) and isinstance(a, sympy.Eq):
        return g.lhs == a.lhs and _close(g.rhs, a.rhs, tol)
    if isinstance(g, sympy.Interval) and isinstance(a, sympy.Interval):
        same_ends = g.left_open == a.left_open and g.right_open == a.right_open
        return same_ends and _close(g.start, a.start, tol) and _close(g.end, a.end, tol)
    if isinstance(g, sympy.MatrixBase) and isinstance(a, sympy.MatrixBase):
        return g.shape == a.shape and len(g) <= MAX_ELEMENTS and all(_close(x, y, tol) for x, y in zip(g, a))
    if isinstance(g, sympy.Tuple | tuple) and isinstance(a, sympy.Tuple | tuple):
        return len(g) == len(a) <= MAX_ELEMENTS and all(_close(x, y, tol) for x, y in zip(g, a))
    if isinstance(g, sympy.FiniteSet) and isinstance(a, sympy.FiniteSet):
        if len(g) != len(a) or len(g) > MAX_ELEMENTS:
            return False
        gs, as_ = sorted(g, key=_real), sorted(a, key=_real)
        return all(_close(x, y, tol) for x, y in zip(gs, as_))
    return _numbers_close(g, a, tol)


def _real(x: Any) -> float:
    return float(x.evalf()) if getattr(x, "is_real", False) else 0.0


def _numbers_close(g: Any, a: Any, tol: float) -> bool:
    import sympy

    if not (isinstance(g, sympy.Expr) and isinstance(a, sympy.Expr) and g.is_number and a.is_number):
        return False
    if g.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or a.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan):
        return False
    gv, av = complex(sympy.N(g, 30)), complex(sympy.N(a, 30))
    return abs(av - gv) <= tol * abs(gv)
