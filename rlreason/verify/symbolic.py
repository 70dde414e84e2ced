"""Symbolic comparisons. These may be slow or hang on pathological input, so they only ever run
inside a killable worker process (`rlreason.verify.pool`), never in the caller's process.

Model output reaches sympy only through LaTeX parsers that build expressions from a grammar
(math-verify's LaTeX extraction, latex2sympy2); never through ``eval``, ``sympify`` or
``parse_expr`` on raw strings. Inputs are length- and depth-capped first.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rlreason.verify.tolerance import close

MAX_ANSWER_CHARS = 1000
MAX_BRACE_DEPTH = 40
MAX_TOWER = 2  # a^{b^{c}} is allowed (e.g. 2^{2^n}); one more level is refused before parsing
_HUGE_POWER = re.compile(r"\^\s*\{?\s*\d{4,}")


def exponent_tower(s: str) -> int:
    """Height of the tallest power tower in `s` (``x`` 0, ``x^2`` 1, ``2^{2^n}`` and ``2^2^2`` 2, ...)."""
    tallest, stack = 0, [0]  # stack: tower height inside each open brace
    pending = 0  # height of the exponent the next atom or group belongs to (0: not an exponent)
    after = 0  # height of the exponent just finished, on which a chained ^ would stack
    for c in s:
        if c == "^":
            pending = max(stack[-1], after) + 1
            tallest, after = max(tallest, pending), 0
        elif c == "{":
            stack.append(pending or stack[-1])
            pending = 0
        elif c == "}":
            h = stack.pop() if len(stack) > 1 else 0
            after = h if h > stack[-1] else 0
        elif not c.isspace():
            after, pending = pending, 0
    return tallest


def too_complex(s: str) -> bool:
    """Reject inputs no real answer looks like before any parser sees them."""
    if len(s) > MAX_ANSWER_CHARS:
        return True
    depth = 0
    for c in s:
        depth += c == "{"
        depth -= c == "}"
        if depth > MAX_BRACE_DEPTH:
            return True
    tower = exponent_tower(s)
    if tower >= 2 and _HUGE_POWER.search(s):
        return True  # 2^{1/2^{1000}}: a huge power inside an exponent, which sympy cannot settle in time
    return "__" in s or "lambda" in s or "import" in s or tower > MAX_TOWER


@functools.lru_cache(maxsize=8192)
def _mv_parse(answer: str) -> Any:
    """math-verify parse of one answer; gold answers repeat across a group's samples, so cache."""
    from math_verify import LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    return parse(f"$\\boxed{{{answer}}}$", extraction_config=config, parsing_timeout=None)


def math_verify_equal(pred: str, gold: str, tolerance: float = 0.0) -> bool:
    """math-verify's LaTeX-to-sympy equivalence (its own timeouts off: the worker is killed instead);
    with a relative `tolerance`, numbers within it count as equal (`rlreason.verify.tolerance`)."""
    from math_verify import verify

    if too_complex(pred) or too_complex(gold):
        return False
    g, p = _mv_parse(gold), _mv_parse(pred)
    if not g or not p:
        return False
    if verify(g, p, timeout_seconds=None):
        return True
    if tolerance > 0:
        return close(g[0], p[0], tolerance)
    return False


# -- prm800k-style grader -------------------------------------------------------------------------

# a unit after a number or a closing brace (`10\text{ cm}`); a bare `\text{Monday}` is the answer itself
_UNITS = re.compile(r"(?<=[\d}.])\s*\\(?:text|mbox)\{\s*[a-zA-Z ]+\}\s*$")
_REMOVE = [
    "\\left",
    "\\right",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\$",  # before "$", or "\\$18" would leave a stray backslash
    "$",
    "\\%",
    "%",
    "^\\circ",
    "^{\\circ}",
    "\\displaystyle",
    "\\mathrm",
    "\\textbf",
]


def prm800k_normalize(expr: str) -> str:
    """String normalisation in the spirit of prm800k's ``grade_answer`` (written here from its spec)."""
    s = expr.strip()
    s = _UNITS.sub("", s)
    m = re.fullmatch(r"\\text\{(.*)\}", s)
    if m:
        s = m.group(1)
    for token in _REMOVE:
        s = s.replace(token, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = re.sub(r"(\d),(?=\d{3}(\D|$))", r"\1", s)  # thousands separators
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"^0+(?=\d)", "", s)
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    if s.startswith("."):
        s = "0" + s
    s = re.sub(r"^[a-zA-Z]\s*=", "", s)  # "x=5" -> "5"
    return s.lower() if re.fullmatch(r"[a-zA-Z]+", s) else s


def prm800k_equal(pred: str, gold: str, tolerance: float = 0.0) -> bool:
    """Normalised strings equal, else sympy: simplify(gold - pred) == 0 on grammar-parsed LaTeX (exact:
    `tolerance` is decided by its fast path, on plain numbers)."""
    if too_complex(pred) or too_complex(gold):
        return False
    p, g = prm800k_normalize(pred), prm800k_normalize(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    if _is_tuple(p) or _is_tuple(g):
        ps, gs = _split_tuple(p), _split_tuple(g)
        return (
            len(ps) == len(gs) and p[0] == g[0] and p[-1] == g[-1] and all(prm800k_equal(a, b) for a, b in zip(ps, gs))
        )
    if re.search(r"\^\s*\{?\s*\d{3,}", p):  # huge powers: prm800k refuses these too
        return False
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        diff = sympy.simplify(latex2sympy(g) - latex2sympy(p))
        return bool(diff == 0)
    except Exception:
        return False


def _is_tuple(s: str) -> bool:
    return len(s) > 2 and s[0] in "([" and s[-1] in ")]" and "," in s


def _split_tuple(s: str) -> list[str]:
    return [x for x in s[1:-1].split(",")]


SLOW = {"math": math_verify_equal, "prm800k": prm800k_equal}
