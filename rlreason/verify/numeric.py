"""The fast path: exact comparison of plain numbers, no sympy, under an explicit number format.

Handles integers, decimals, fractions (``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``), mixed numbers
(``2\\frac{1}{2}``), signs, leading zeros (AIME's ``025``), trailing ``.0`` (AMC's ``27.0``), and the
decorations models add around numbers (``$``, ``\\$``, ``\\%``, ``\\text{ dollars}``). Numbers are
compared as exact rationals. Returns None when a string is not a plain number, so the caller falls
back to symbolic comparison.

Separators are read by the task's `number_format`, never guessed (a wrong guess is a false "correct":
``2,5`` read as 25, or ``1 000`` read as 0, as math-verify's LaTeX parser reads it):

- ``"en"`` (default): ``.`` is the decimal point; ``,`` / ``{,}`` separate thousands (groups of 3).
- ``"space_thousands"``: as ``en``, and a space, no-break / thin space, ``\\,``, ``\\ `` or ``~``
  also separates thousands (``1 000``, ``1\\,000``).
- ``"decimal_comma"``: ``,`` / ``{,}`` is the decimal mark; ``.`` or a space separates thousands
  (``2,5`` = 2.5, ``1.234,5`` = 1234.5, ``1,234`` = 1.234, ``1.234`` = 1234); a ``.`` that cannot
  separate thousands is a decimal point (``1.5``, ``0.111``).

A thousands grouping starts with a non-zero group of 1-3 digits followed by groups of exactly 3.

A string written with separators its format does not allow (``2,5`` under ``en``) is *number-shaped
but malformed*: `looks_numeric` says so, and the verifier counts it wrong against a numeric gold
rather than letting a LaTeX parser read it as a set or a product.
"""

from __future__ import annotations

import re
from fractions import Fraction

NUMBER_FORMATS = ("en", "space_thousands", "decimal_comma")

_MAX_DIGITS = 200
_GAP = "\u2423"  # a space between two digits, kept as a visible separator until the format rules on it
# decorations removed anywhere (none of them can join two digits)
_DECOR = re.compile(
    r"\\text\{[^{}]*\}|\\mathrm\{[^{}]*\}|\\mbox\{[^{}]*\}|\\\$|\\%|[$%]|\\left|\\right|°|\^\{?\\circ\}?"
)
# what may separate two digit groups: spaces of every kind and LaTeX's spacing commands
_SPACE = re.compile(r"(?<=\d)(?:\\[,;:! ]|~|[\s\u00a0\u2009\u202f])+(?=\d)")
_LATEX_SPACE = re.compile(r"\\[,;:! ]|~")
_FRAC = re.compile(r"^\\[dtc]?frac\{?([+-]?\d+)\}?\{?(\d+)\}?$|^\\[dtc]?frac(\d)(\d)$")
_MIXED = re.compile(r"^([+-]?)(\d+)\s*\\[dtc]?frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d))$")
_MIXED_SLASH = re.compile(r"^([+-]?)(\d+)\s+(\d+)/(\d+)$")  # "1 1/2": one and a half, in plain text
_LEAD = r"[1-9]\d{0,2}"  # the first group of a grouped number (``0,111`` is no thousands grouping)
_INT = {
    "en": _LEAD + r"(?:,\d{3})+|\d+",
    "space_thousands": _LEAD + r"(?:,\d{3})+|" + _LEAD + r"(?:" + _GAP + r"\d{3})+|\d+",
    "decimal_comma": _LEAD + r"(?:\.\d{3})+|" + _LEAD + r"(?:" + _GAP + r"\d{3})+|\d+",
}
_POINT = {"en": ".", "space_thousands": ".", "decimal_comma": ","}
_PLAIN = {
    fmt: re.compile(rf"[+-]?(?:(?:{_INT[fmt]})(?:\{_POINT[fmt]}\d+)?|\{_POINT[fmt]}\d+)") for fmt in NUMBER_FORMATS
}
_SHAPE = re.compile(r"[+-]?[\d.,/" + _GAP + r"]*\d[\d.,/" + _GAP + r"]*")


def check_format(number_format: str) -> str:
    """`number_format` if it is a known format, else a ValueError naming the known ones."""
    if number_format not in NUMBER_FORMATS:
        raise ValueError(f"number_format '{number_format}': expected one of {', '.join(NUMBER_FORMATS)}")
    return number_format


def _separators(text: str) -> str:
    """Decorations removed, ``{,}`` read as ``,``, spaces between digits kept as one `_GAP` each; a
    space next to a separator (``32, 349``: a list) leaves a `_GAP` there so no format accepts it."""
    s = text.replace("{,}", ",").replace("{.}", ".")
    s = re.sub(r"(?<=[,.])\s+(?=\d)|(?<=\d)\s+(?=[,.]\d)", _GAP + _GAP, s)
    s = _DECOR.sub("", s)
    s = _SPACE.sub(_GAP, s)
    s = _LATEX_SPACE.sub("", s)
    return re.sub(r"\s+", "", s).strip("{}")


_DOT_DECIMAL = re.compile(r"[+-]?\d*\.\d+")


def _plain_number(s: str, number_format: str) -> Fraction | None:
    if not s or len(s) > _MAX_DIGITS:
        return None
    if not _PLAIN[number_format].fullmatch(s):
        # under decimal_comma a point that cannot be a thousands separator (``1.5``, ``0.111``,
        # ``1.2345``: not one group of three after a non-zero lead) is a decimal point
        if number_format == "decimal_comma" and _DOT_DECIMAL.fullmatch(s):
            return Fraction(s)
        return None
    point = _POINT[number_format]
    digits = s.replace(_GAP, "")
    digits = digits.replace(".", "").replace(",", ".") if point == "," else digits.replace(",", "")
    return Fraction(digits)


def parse_number(text: str, number_format: str = "en") -> Fraction | None:
    """`text` as an exact rational if it is a plain number written in `number_format`, else None."""
    if not isinstance(text, str) or len(text) > 400:
        return None
    s = text.strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]
    if s.endswith("\\") and not s.endswith("\\\\"):
        s = s[:-1].rstrip()  # a lone trailing backslash (``185\\``) is a line-break typo, not LaTeX
    compact = s.replace(" ", "")
    negative = compact.startswith("-\\")
    frac = _FRAC.match(compact[1:] if negative else compact)
    if frac:
        num, den = (frac.group(1), frac.group(2)) if frac.group(1) is not None else (frac.group(3), frac.group(4))
        if int(den) == 0:
            return None
        return -Fraction(int(num), int(den)) if negative else Fraction(int(num), int(den))
    mixed = _MIXED.match(s) or _MIXED_SLASH.match(s)
    if mixed:  # 2\frac{1}{2}, 2\frac12 and 2 1/2 are two and a half, as MATH writes mixed numbers
        sign, whole, *parts = mixed.groups()
        num, den = [p for p in parts if p is not None]
        if int(den) == 0 or int(num) >= int(den):
            return None
        value = int(whole) + Fraction(int(num), int(den))
        return -value if sign == "-" else value
    s = _separators(s)
    if s.startswith("-{") or s.startswith("+{"):
        s = s[0] + s[2:].rstrip("}")
    if "/" in s:
        parts = s.split("/")
        if len(parts) != 2:
            return None
        a, b = _plain_number(parts[0], number_format), _plain_number(parts[1], number_format)
        if a is None or b is None or b == 0:
            return None
        return a / b
    return _plain_number(s, number_format)


_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:\\text\{\s*)?([ap])?(?:\.?\s*m\.?)?\s*\}?", re.IGNORECASE)


def parse_time(text: str) -> int | None:
    """A time of day (``20:34``, ``20:34:00``, ``08:34 \\text{P.M.}``, ``8:34 pm``) as seconds after
    midnight, else None. Minutes and seconds have two digits, so a ratio such as ``7:3`` is no time."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    m = _TIME.fullmatch(text.strip().strip("$").strip())
    if m is None:
        return None
    hours, minutes, seconds, half = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), m.group(4)
    if minutes > 59 or seconds > 59 or hours > (12 if half else 24) or (half and hours == 0):
        return None
    if half:
        hours = hours % 12 + (12 if half.lower() == "p" else 0)
    return (hours % 24) * 3600 + minutes * 60 + seconds


def looks_numeric(text: str) -> bool:
    """Whether `text` is written like a single number (digits and separators only), malformed or not.

    ``2,5``, ``1 000``, ``1\\,000`` and ``1.2.3`` look numeric; a list (``1, 2``: a comma then a space),
    an expression (``2^3``, ``x+1``) or words do not.
    """
    if not isinstance(text, str) or len(text) > 400 or re.search(r",\s", text):
        return False
    return bool(_SHAPE.fullmatch(_separators(text.strip().rstrip("."))))


def plain_string(value: Fraction) -> str:
    """`value` written the way every format reads the same: an integer, an exact decimal, or ``a/b``."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    sign, v = ("-" if value < 0 else ""), abs(value)
    whole, frac = divmod(v, 1)
    digits = ""
    while frac:
        frac *= 10
        q, frac = divmod(frac, 1)
        digits += str(int(q))
    return f"{sign}{int(whole)}.{digits}"
