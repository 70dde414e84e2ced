"""The fast path: exact comparison of plain numbers, no sympy.

Handles integers, decimals, fractions (``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``), signs, thousands
separators (``1,234``), leading zeros (AIME's ``025``), trailing ``.0`` (AMC's ``27.0``), and the
decorations models add around numbers (``$``, ``\\$``, ``\\%``, ``\\text{ dollars}``). Numbers are
compared as exact rationals. Returns None when a string is not a plain number, so the caller falls
back to symbolic comparison.
"""

from __future__ import annotations

import re
from fractions import Fraction

_MAX_DIGITS = 200
_DECOR = re.compile(
    r"\\[,;:! ]|\\text\{[^{}]*\}|\\mathrm\{[^{}]*\}|\\(?:d|t)?frac|[$%]|\\\$|\\%|\\left|\\right|\s|°|\^\{?\\circ\}?"
)
_PLAIN = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?")
_FRAC = re.compile(r"^\\(?:d|t)?frac\{?([+-]?\d+)\}?\{?(\d+)\}?$|^\\(?:d|t)?frac(\d)(\d)$")


def _plain_number(s: str) -> Fraction | None:
    if not s or len(s) > _MAX_DIGITS or not _PLAIN.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    if "," in s and "." not in s and not re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", s):
        return None
    return Fraction(s.replace(",", ""))


def parse_number(text: str) -> Fraction | None:
    """`text` as an exact rational if it is a plain number, else None."""
    if not isinstance(text, str) or len(text) > 400:
        return None
    s = text.strip().rstrip(".")
    frac = _FRAC.match(s.replace(" ", ""))
    if frac:
        num, den = (frac.group(1), frac.group(2)) if frac.group(1) is not None else (frac.group(3), frac.group(4))
        return Fraction(int(num), int(den)) if int(den) != 0 else None
    s = _DECOR.sub("", s)
    s = s.strip("{}").rstrip(".")
    if s.startswith("-{") or s.startswith("+{"):
        s = s[0] + s[2:].rstrip("}")
    if "/" in s:
        parts = s.split("/")
        if len(parts) != 2:
            return None
        a, b = _plain_number(parts[0]), _plain_number(parts[1])
        if a is None or b is None or b == 0:
            return None
        return a / b
    return _plain_number(s)
