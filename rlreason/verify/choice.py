"""The chosen letter of a multiple-choice answer (`extract_choice`), for tasks with `choices` set.

In the answer region (`rlreason.verify.extract.answer_region`), first rule that applies:

1. the last ``\\boxed{...}`` holding one letter (``\\boxed{C}``, ``\\boxed{(C)}``, ``\\boxed{\\text{C}}``);
2. the last "answer is C" / "answer: C" / "option is (C)" / "choice is C" ("the answer is definitely
   (D)" too);
3. the whole response is a letter: ``C``, ``(C)``, ``c``, ``**C**``, ``C.``;
4. a bold letter (``**B**``), else the letters in parentheses (``(A)``) of the last line: one letter
   is the answer, two different ones (``(A) or maybe (B)``) are a hedge and no answer;
5. a line that starts with a labelled option (``C. x = 42``, ``(C) 42``) gives its letter.

Only the task's letters count; a letter outside them is no answer. Lower case is read only where the
letter stands alone (rule 3): in prose ``a`` is an article.
"""

from __future__ import annotations

import re

from rlreason.verify.extract import answer_region, boxed_answers

_TOKEN = r"\(?\*{0,2}([A-Z])\*{0,2}\)?"
_LONE = re.compile(r"\s*(?:\\text(?:bf)?\{)?\s*\(?\*{0,2}([A-Za-z])\*{0,2}\)?\s*\}?\s*\.?\s*")
_PHRASE = re.compile(
    r"\b(?:answer|option|choice)\s*(?:is\b|:)?\s*(?:(?:definitely|clearly|probably|therefore)\s+)?"
    + _TOKEN
    + r"(?![A-Za-z])",
    re.IGNORECASE,
)
_BOLD = re.compile(r"\*\*\(?([A-Z])\)?\*\*")
_PAREN = re.compile(r"(?<![A-Za-z])\(([A-Z])\)")
_LABELLED = re.compile(r"^\s*\(?([A-Z])[.)]\s", re.MULTILINE)


def extract_choice(response: str, letters: str) -> str | None:
    """The letter chosen in `response` among `letters` (e.g. ``"ABCDE"``), or None (see the module docstring)."""
    if not isinstance(response, str) or not letters:
        return None
    text = answer_region(response[-20_000:])
    if not text.strip():
        return None
    boxed = boxed_answers(text)
    if boxed:
        return _letter(_LONE.fullmatch(boxed[-1]), letters)
    phrases = list(_PHRASE.finditer(text))
    if phrases:
        return _letter(phrases[-1], letters, upper_only=True)
    lone = _LONE.fullmatch(text)
    if lone:
        return _letter(lone, letters)
    last_line = text.strip().splitlines()[-1]
    bold = _BOLD.findall(last_line)
    found = bold or _PAREN.findall(last_line)
    if found:
        return found[0] if len(set(found)) == 1 and found[0] in letters else None
    labelled = _LABELLED.findall(text)
    return labelled[-1] if labelled and labelled[-1] in letters else None


def _letter(m: re.Match[str] | None, letters: str, upper_only: bool = False) -> str | None:
    if m is None or (upper_only and not m.group(1).isupper()):
        return None
    letter = m.group(1).upper()
    return letter if letter in letters else None
