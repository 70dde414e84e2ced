"""Finding the answer in a model's response, without ever deciding on a fragment of it.

Order of preference:

1. the answer region: text after the last ``</think>`` if there is one, else after a leading
   ``<short>``; everything below searches only that region;
2. the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces matched); boxes just before it that are
   joined to it by a separator (``\\boxed{1}, \\boxed{4} and \\boxed{9}``) make one set answer
   ``\\{1, 4, 9\\}``, as math-verify's multi-box rule reads them;
3. GSM8K's ``#### n``;
4. "the answer is ..." / "answer: ...": the first LaTeX region right after it, else the text up to the
   end of its sentence;
5. the last LaTeX region (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``), with regions chained to
   it by ``,`` / ``and`` / ``or`` as one set answer (math-verify's LaTeX extraction), compared whole;
   unless the text after it holds digits: then the one number of its last concluding sentence
   ("Therefore, there are 12 sequences.") or, without one, no answer;
6. only for plain text without any LaTeX region (nor one opened and left malformed): the last word
   that holds a digit, and only if that word *is* a number (``x=5``, ``$18``, ``42.`` are; ``XK7Q2``,
   ``2^10``, ``42nd`` are not, and then there is no answer rather than a digit picked out of a word;
   ``3 or 4`` is a hedge, ``1, 2, 3`` / ``4 and 12`` / ``(3, 4)`` a list, no answer either).

Before all of these, a response that is nothing but an answer (`rlreason.verify.bare`) is read whole:
``(x-2)(x+2)``, ``y = 2x + 3``, ``[0.5, 1]``, ``1, 2, 3``. Every answer found has ``a \\bmod b``
resolved (``17 \\bmod 5 = 2`` -> ``2``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import NamedTuple

from rlreason.verify.bare import bare_answer, resolve_mod, strip_units
from rlreason.verify.numeric import parse_number

MAX_RESPONSE_CHARS = 200_000  # longer responses are cut (from the start): answers live at the end

_ANSWER_IS = re.compile(r"answer\s*(?:is\b\s*:?|:)\s*", re.IGNORECASE)
# Minerva's "Final Answer: The volume of $V$ is 120.": the answer follows the sentence's "is"
_SUBJECT_IS = re.compile(r"(?P<subject>.{0,100}?)\s+(?:is|are|equals)\b\s*:?\s*(?P<rest>.+)", re.IGNORECASE)
_PROSE = re.compile(r"\b[A-Za-z]{2,}+\s++[A-Za-z]{2,}+")
_HASHES = re.compile(r"####\s*([^\n]+)")
# LaTeX delimiters; regions are paired by `latex_regions` in one linear pass (a regex with a lazy
# body would rescan to the end of the text from every unclosed opener: quadratic on hostile input)
_DELIMITER = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_CLOSER = {"$$": "$$", "\\[": "\\]", "$": "$", "\\(": "\\)"}
# a LaTeX region opened but not closed the way math-verify accepts (an inline one across lines, an
# unclosed display one): not plain text either, so no number is picked out of it
_OPENS_LATEX = re.compile(r"(?<!\\)(?:\$\$|\$[ \t]*\n|\\\(|\\\[)")
_CHAIN = re.compile(r"\s*(?:,\s*(?:and|or)?|\band\b|\bor\b)\s*", re.IGNORECASE)
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z@])")  # not \\fboxsep
MAX_CHAINED = 64  # more chained boxes than this is no answer anyone writes; keeps the cost linear
_BOX_SEPARATOR = re.compile(r"\b(?:and|or)\b|,|;")
# end of the answer: a sentence end (not a decimal point), or a comma/space before an explanatory clause
_CLAUSE_END = re.compile(r"\.(?=\s|$)|,?\s+(?:since|because|as|so|which|not|but|when|where|if|for)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CONCLUSION = re.compile(r"(?:therefore|thus|hence|so|finally|in total|in conclusion)\b", re.IGNORECASE)
_WORD_PUNCT = "\"'*()[]“”‘’:;,!?"
_CURRENCY = re.compile(r"^(?:\\\$|\$|€|£|¥)|(?:€|£|¥|\$|[a-zA-Z]{1,2}[²³])$")
_HEDGE = re.compile(r"\d,?\s+(?:or|and/or|and)\s+[-+]?\.?\d", re.IGNORECASE)  # "1 or 2", "4 and 12": no answer
_OPERATORS = {"+", "-", "*", "/", "^", "×", "÷", "·", "−"}
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?![\d])")


def answer_region(response: str) -> str:
    """The part of the response where the final answer is written."""
    if "</think>" in response:
        return response.rsplit("</think>", 1)[1]
    stripped = response.lstrip()
    if stripped.startswith("<short>"):
        return stripped[len("<short>") :]
    if stripped.startswith("<think>"):
        return ""  # thinking never closed: no answer was given
    return response


def _boxes(text: str) -> Iterator[tuple[int, int, str]]:
    """``\\boxed{...}`` / ``\\fbox{...}`` as (start, end, content), last first (as math-verify scans).

    Each box's braces are matched only up to the start of the box after it, and scanning stops at
    the first box that does not close there, so the cost stays linear in the text's length however
    many unclosed boxes it holds.
    """
    limit = len(text)
    for m in reversed(list(_BOX_COMMAND.finditer(text))):
        start = m.start()
        if start >= limit:
            continue  # inside the box after it
        i = command_end = m.end()
        while i < limit and text[i] == " ":
            i += 1
        if i < limit and text[i] == "{":
            depth, j = 0, i
            while j < limit:
                c = text[j]
                depth += (c == "{") - (c == "}")
                if depth == 0:
                    break
                j += 1
            if j >= limit:
                return  # unbalanced within its bound: no box from here on
            yield start, j + 1, text[i + 1 : j].strip()
        elif command_end < i < limit:  # "\\boxed 5": one token
            words = text[i:limit].split()
            token = words[0].rstrip(".$") if words else ""
            if not token:
                return
            yield start, i + len(token), token
        else:
            return
        limit = start


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` with nested braces, or None."""
    return next((content for _, _, content in _boxes(text)), None)


def boxed_answers(text: str) -> list[str]:
    """The last box and the boxes chained to it, left to right, by math-verify's multi-box rule: a gap
    under 10 characters, or under 70 holding a separator (``,`` ``;`` ``and`` ``or``) between boxes of
    different content. So a hedge (``\\boxed{1} or maybe \\boxed{2}``) or a quick self-correction is
    a set answer, which never equals a single gold."""
    chain: list[tuple[int, int, str]] = []  # right to left
    for box in _boxes(text):
        if chain:
            gap = text[box[1] : chain[-1][0]]
            near = len(gap) < 10 or (len(gap) < 70 and box[2] != chain[-1][2] and _BOX_SEPARATOR.search(gap))
            if not near or len(chain) == MAX_CHAINED:
                break
        chain.append(box)
    contents: list[str] = []
    for _, _, c in reversed(chain):
        if c and (not contents or contents[-1] != c):
            contents.append(c)
    return contents


def as_set(items: list[str]) -> str | None:
    """One answer from several: the item itself, or the set ``\\{a, b\\}`` (None when empty)."""
    items = [i for i in items if i]
    if not items:
        return None
    return items[0] if len(items) == 1 else "\\{" + ", ".join(items) + "\\}"


class Region(NamedTuple):
    start: int
    end: int
    text: str  # the content, stripped


def latex_regions(text: str) -> list[Region]:
    """Non-empty ``$$...$$``, ``\\[...\\]``, ``$...$`` and ``\\(...\\)`` regions, left to right, as
    math-verify's extraction delimits them: an opener pairs with the first closer after it; inline
    regions stay on one line; an inline ``$`` right after a digit opens nothing (``5$``); ``\\$`` is
    an escaped dollar. Linear in the length of `text`."""
    tokens = [(m.start(), m.group()) for m in _DELIMITER.finditer(text) if m.group() != "\\$"]
    # every unescaped "$" (also each half of "$$") closes an inline $ region; the others by kind
    dollars = [p + k for p, t in tokens if t[0] == "$" for k in range(len(t))]
    by_kind: dict[str, list[int]] = {"$$": [], "\\]": [], "\\)": []}
    for p, t in tokens:
        if t in by_kind:
            by_kind[t].append(p)
    newlines = [m.start() for m in re.finditer("\n", text)]
    out: list[Region] = []
    cursor = 0
    for pos, tok in tokens:
        if pos < cursor or tok not in _CLOSER or (tok == "$" and pos > 0 and text[pos - 1].isdigit()):
            continue
        body = pos + len(tok)
        closers = dollars if tok == "$" else by_kind[_CLOSER[tok]]
        k = bisect.bisect_left(closers, body + (tok == "$"))  # an inline region holds a character at least
        if k == len(closers):
            continue
        close = closers[k]
        inline = tok in ("$", "\\(")
        if inline and bisect.bisect_left(newlines, body) != bisect.bisect_left(newlines, close):
            continue  # an inline region does not span lines
        content = text[body:close].strip()
        end = close + len(_CLOSER[tok])
        if content:
            out.append(Region(pos, end, content))
            cursor = end
    return out


def _chained(text: str, regions: list[Region]) -> list[Region]:
    """The regions joined to the first one by ``,`` / ``and`` / ``or`` (at most 6 in all)."""
    chain = regions[:1]
    for r in regions[1:6]:
        if not _CHAIN.fullmatch(text[chain[-1].end : r.start]):
            break
        chain.append(r)
    return chain


def last_latex_answer(text: str) -> str | None:
    """The last LaTeX region, with the regions chained to it by ``,`` / ``and`` / ``or`` (up to 6)."""
    regions = latex_regions(text)
    if not regions:
        return None
    chain = [regions[-1]]
    for r in reversed(regions[:-1]):
        if len(chain) == 6 or not _CHAIN.fullmatch(text[r.end : chain[0].start]):
            break
        chain.insert(0, r)
    return as_set([r.text for r in chain])


def answer_after_phrase(rest: str, number_format: str = "en", _depth: int = 0) -> str | None:
    """The answer in the text after "the answer is": the first math region within 50 characters of it
    (chained regions form a set), else up to the end of the sentence or a trailing clause ("42, since
    ...", "41, not 42"); markdown bold and unit words removed. In "The volume of $V$ is 120" the
    answer is what follows "is"; in a sentence of prose ("Jane started 3 hours ago") it is the one
    number of the sentence, and no answer if it holds several (a hedge: "1 or 2").

    Minerva's format "The final answer is $\\frac{3}{4}$. I hope it is correct." gives ``\\frac{3}{4}``.
    """
    line = rest.split("\n")[0]
    regions = latex_regions(line)
    if regions and regions[0].start <= 50:
        chain = _chained(line, regions)
        subject = _SUBJECT_IS.match(line[chain[-1].end :]) if _depth == 0 else None
        if subject is None or subject.group("subject").strip(" ,"):
            return as_set([r.text for r in chain])
        return answer_after_phrase(subject.group("rest"), number_format, _depth + 1)
    boxed = boxed_answers(line)
    if boxed:
        return as_set(boxed)
    s = _CLAUSE_END.split(line.strip().strip("*").strip(), maxsplit=1)[0]
    s = s.strip().strip("*").strip().rstrip(".").strip("$ ")
    subject = _SUBJECT_IS.fullmatch(s) if _depth == 0 else None
    if subject is not None:
        return answer_after_phrase(subject.group("rest"), number_format, _depth + 1)
    s = strip_units(s, number_format)
    if _HEDGE.search(s):
        return None
    if s and parse_number(s, number_format) is None and _PROSE.search(s):
        digit_words = [w for w in s.split() if any(c.isdigit() for c in w)]
        return last_plain_number(s, number_format) if len(digit_words) == 1 else None
    return s or None


def last_plain_number(text: str, number_format: str = "en") -> str | None:
    """The last word holding a digit, if it is a number (after ``=``, without punctuation, currency or
    percent sign); None if that word is anything else, so no digit is ever picked out of a word.

    Digit groups separated by spaces (``1 000``) are one number under ``space_thousands`` /
    ``decimal_comma``; under ``en`` they are ambiguous (``1 000`` or the list 1, 000), so no answer.
    """
    joined = number_format in ("space_thousands", "decimal_comma")
    text = _GROUPED.sub(lambda m: re.sub(r"\s", "", m.group()) if joined else "\x00", text)
    words = re.split(r"[\s<>]+", text.strip())  # markup such as a broken "<shrt>" tag is no part of a word
    for k in range(len(words) - 1, -1, -1):
        word = words[k]
        if not any(c.isdigit() for c in word) and "\x00" not in word:
            continue
        before = words[k - 1] if k else ""
        if k >= 2 and before.lower() in ("or", "and/or", "and") and any(c.isdigit() for c in words[k - 2]):
            return None  # "3 or 4": a hedge between numbers is no answer; "4 and 12" a list
        if before.endswith(",") and parse_number(before.strip(_WORD_PUNCT), number_format) is not None:
            return None  # "1, 2, 3": the last element of a list is not the answer
        if re.search(r"[)\]}]", word.rstrip(".,;:!?")[-1:]) and before.endswith(","):
            return None  # "(3, 4)", "[0.5, 1]": one element of a tuple or interval
        if "\\" in before or before in _OPERATORS:
            return None  # the operand of an operator or a LaTeX command: "3 + 4", "\\frac 59", "111,\\! 100"
        if word.startswith("\\") and re.fullmatch(r"[+-]?\d+", before):
            mixed = f"{before} {word.rstrip('.,')}"  # "137 \\frac{1}{2}": the fraction of a mixed number
            return mixed if parse_number(mixed, number_format) is not None else None
        w = word.strip(_WORD_PUNCT)
        if re.fullmatch(r"\d+/\d+", w) and re.fullmatch(r"[+-]?\d+", before):
            mixed = f"{before} {w}"  # "1 1/2": a mixed number, not its fraction alone
            return mixed if parse_number(mixed, number_format) is not None else None
        if "\x00" in w or (re.fullmatch(r"\d{3}", w) and re.fullmatch(r"[+-]?\d+", before)):
            return None  # "1 000" the format does not read as one number: 1000, or 1 and 000?
        w = w.rsplit("=", 1)[-1]
        w = _CURRENCY.sub("", w).rstrip("%").rstrip(".")
        if w.endswith("\\%"):
            w = w[:-2]
        return w if parse_number(w, number_format) is not None else None
    return None


def extract_answer(response: str, number_format: str = "en") -> str | None:
    """The final answer written in `response`, or None when there is none (see the module docstring)."""
    if not isinstance(response, str):
        return None
    answer = _extract(response, number_format)
    return resolve_mod(answer) if answer else answer


def _extract(response: str, number_format: str) -> str | None:
    text = answer_region(response[-MAX_RESPONSE_CHARS:])
    if not text.strip():
        return None
    bare = bare_answer(text, number_format)
    if bare is not None:
        return bare
    last = next(_boxes(text), None)
    if last is not None:
        after = text[last[1] :]
        phrase = _last_match(_ANSWER_IS, after)  # "\\boxed{255} ... The final answer is 10,455."
        later = answer_after_phrase(after[phrase.end() :], number_format) if phrase else None
        return later or as_set(boxed_answers(text))
    if "\\boxed" in text or "\\fbox" in text:
        return None  # a box that never closes: no answer, not whatever text precedes it
    m = _last_match(_HASHES, text)
    if m is not None:
        return m.group(1).strip().rstrip(".") or None
    m = _last_match(_ANSWER_IS, text)
    if m is not None:
        ans = answer_after_phrase(text[m.end() :], number_format)
        if ans:
            return ans
    regions = latex_regions(text)
    if regions:
        after = text[regions[-1].end :]
        if any(c.isdigit() for c in after):
            return concluding_number(after, number_format)
        return last_latex_answer(text)
    if _OPENS_LATEX.search(text):
        return None
    return last_plain_number(text, number_format)


def concluding_number(text: str, number_format: str = "en") -> str | None:
    """The answer in plain text after the last LaTeX region, which holds digits: the one number of its
    last concluding sentence ("Therefore, there are 12 sequences."), else None (the region is followed
    by other numbers, "Some other numbers are 1, 2, 3.": which one is the answer is not said)."""
    for sentence in reversed(_SENTENCE_END.split(text)):
        if _CONCLUSION.match(sentence.strip()):
            digit_words = [w for w in sentence.split() if any(c.isdigit() for c in w)]
            return last_plain_number(sentence, number_format) if len(digit_words) == 1 else None
    return None


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def gsm8k_gold(solution: str) -> str:
    """GSM8K's gold answer: the text after ``####`` (thousands separators removed)."""
    m = _HASHES.search(solution)
    return (m.group(1) if m else solution).strip().replace(",", "")
