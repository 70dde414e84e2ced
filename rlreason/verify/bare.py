"""Responses that hold nothing but an answer (a predictions file's answer column), read whole.

`bare_answer(text)` is the text itself (stripped, a final period dropped) when it is short, on few
lines, and holds no prose, no LaTeX delimiters, no box, no "answer" phrase and no markup tag: an
expression (``(x-2)(x+2)``, ``\\frac34i``), an equation (``y = 2x + 3``), a list, set, interval, tuple
or matrix (``[0.5, 1]``, ``\\begin{pmatrix}...``), a number in base (``4210_7``), a choice letter,
or a single word (``even``). A number followed by unit words is that number (``10 square units``,
``10 cm^2``, ``10weeks``; not ``10cm``, whose two letters could be variables). Anything else is None
and the prose rules of `rlreason.verify.extract` apply.

Not an answer either (then the prose rules apply): text that starts with an operator or other
punctuation (``=175``, ``*9``) or ends with an operator, brackets that do not balance (``[5``), quote
marks, and text with a letter followed by a digit
outside a LaTeX command (``C0``, ``H2O``, ``XK7Q2``: a code, not a product that happens to equal 0).

Prose: a run of four or more letters outside a LaTeX command or ``\\text{...}`` that is not a function
name (``sin``, ``sqrt``, ``gcd``...), a short English word (``or``, ``and``, ``is``...), or words glued
together (``1orW(x)``): ``3 or 4``, ``It is 4``, ``The code is XK7Q2`` are prose; ``2xy + 3``, ``\\sin x``,
``7, -2, \\text{ and } -5`` are not.
"""

from __future__ import annotations

import re

from rlreason.verify.numeric import parse_number

MAX_BARE_CHARS = 300
MAX_BARE_LINES = 4
# LaTeX delimiters, a box, GSM8K's marker, an "answer" phrase, a markup tag (also a broken one), a paragraph break
_NOT_BARE = re.compile(
    r"\\boxed|\\fbox|(?<!\\)\$|\\\(|\\\[|####|answer|<[^\s<>][^\s<>]{0,10}>|<\||\n\s*\n", re.IGNORECASE
)
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname|begin|end)\s*\{[^{}]*\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_RUN = re.compile(r"[A-Za-z]+")
_FUNCTIONS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "lg", "exp", "sqrt", "pi", "mod", "bmod", "gcd", "lcm", "max", "min", "det", "inf", "infty",
}  # fmt: skip
_ENGLISH = {
    "an", "and", "or", "the", "is", "are", "be", "so", "it", "its", "we", "of", "to", "in", "on", "at",
    "by", "as", "if", "no", "not", "but", "for", "was", "get", "got", "has", "had", "you", "me", "my",
    "th", "st", "nd", "rd", "yes", "all", "any", "let", "say", "may", "can", "per",
}  # fmt: skip
_SINGLE_WORD = re.compile(r"[A-Za-z]+")
_START = re.compile(r"[\w\\(\[{+\-.|]")  # an answer starts with a letter, digit, command, bracket or sign
_END_OPERATOR = re.compile(r"[=+\-*/^,<>]\s*$")
_CODE = re.compile(r"[A-Za-z][0-9]|\d'\d|[?\"]")  # a letter then a digit outside a LaTeX command: XK7Q2, H2O
# a number then 1-3 unit words, each optionally squared or cubed (``10 cm^2``, ``10 square units``)
_UNITS = re.compile(r"(\S+?)((?:\s+[A-Za-z]+\.?(?:\^\{?[23]\}?)?){1,3})")
_GLUED_UNIT = re.compile(r"([+-]?\d+(?:\.\d+)?)([A-Za-z]{4,})")  # 10weeks (4+ letters: not 10cm, 2xy, 3rd)
_MOD = re.compile(r"(\d+)\s*\\(?:bmod|mod)\s*\{?\s*(\d+)\s*\}?")
_PLAIN_EQUATION = re.compile(r"([^=]+)=([^=]+)")
MATH_WORDS = {"pi", "e", "i", "sqrt", "sin", "cos", "tan", "log", "ln", "exp", "mod", "times", "x", "y", "n"}


def _prose(text: str) -> bool:
    s = _COMMAND.sub(" ", _TEXT_GROUP.sub(" ", text))
    for run in _RUN.findall(s):
        low = run.lower()
        if low in _ENGLISH or (len(run) >= 4 and low not in _FUNCTIONS) or re.fullmatch(r"[a-z]{2,}[A-Z].*", run):
            return True  # a word, or words glued together ("1orW")
    return False


def strip_units(answer: str, number_format: str = "en") -> str:
    """``42 apples`` / ``10 cm^2`` / ``10weeks`` -> the number; anything else unchanged (``2 pi`` is not a
    unit, nor a one-letter word such as ``2 x``)."""
    s = answer.strip()
    m = _GLUED_UNIT.fullmatch(s)
    if m and m.group(2).lower() not in _FUNCTIONS and parse_number(m.group(1), number_format) is not None:
        return m.group(1)
    m = _UNITS.fullmatch(s)
    if m is None or parse_number(m.group(1), number_format) is None:
        return answer
    words = re.sub(r"\^\{?[23]\}?", "", m.group(2)).lower().replace(".", "").split()
    if any(len(w) < 2 or w in MATH_WORDS or w in ("or", "and") for w in words):
        return answer
    return m.group(1)


def resolve_mod(answer: str) -> str:
    """``17 \\bmod 5 = 2`` -> ``2`` (the residue, when the statement is true); ``17 \\bmod 5`` -> ``2``.
    A false statement (``17 \\bmod 5 = 3``) is left as written, which no gold equals."""
    if "mod" not in answer:
        return answer
    replaced = _MOD.sub(lambda m: str(int(m.group(1)) % int(m.group(2))) if int(m.group(2)) else m.group(), answer)
    eq = _PLAIN_EQUATION.fullmatch(replaced)
    if eq is not None:
        left, right = parse_number(eq.group(1)), parse_number(eq.group(2))
        if left is not None and left == right:
            return eq.group(2).strip()
        return answer
    return replaced if parse_number(replaced) is not None else answer


def _balanced(line: str) -> bool:
    return sum(line.count(c) for c in "([{") == sum(line.count(c) for c in ")]}")


def bare_answer(text: str, number_format: str = "en") -> str | None:
    """`text` whole when it is nothing but an answer (see the module docstring), else None."""
    s = text.strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    if not s or len(s) > MAX_BARE_CHARS or s.count("\n") >= MAX_BARE_LINES or _NOT_BARE.search(s):
        return None
    if not _START.match(s) or _END_OPERATOR.search(s) or _CODE.search(_COMMAND.sub(" ", s)):
        return None  # "=175", "*9", "5-": a fragment or a typo; "C0", "XK7Q2", "1'8": digits in a code
    if sum(s.count(c) for c in "([{") != sum(s.count(c) for c in ")]}"):
        return None  # "[5": a bracket never closed (an interval may mix them: "[1, 2)")
    if "\n" in s and "\\begin" not in s and all(_balanced(line) for line in s.splitlines()):
        return None  # "1\n1": lines that each stand alone are several answers, not one (the prose rules read the last)
    if _SINGLE_WORD.fullmatch(s):
        return s if s.lower() not in _ENGLISH or len(s) == 1 else None
    unitless = strip_units(s, number_format)
    if unitless != s:
        return unitless
    if _prose(s):
        return None
    return resolve_mod(s)
