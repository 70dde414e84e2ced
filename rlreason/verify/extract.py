"""Finding the answer in a model's response.

Order of preference (DESIGN.md section 7):

1. the answer region: text after the last ``</think>`` if there is one, else after a leading
   ``<short>``; everything below searches only that region;
2. the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces matched);
3. GSM8K's ``#### n``;
4. "the answer is ...";
5. the last number.
"""

from __future__ import annotations

import re

MAX_RESPONSE_CHARS = 200_000  # longer responses are cut (from the start): answers live at the end

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]")
# end of the answer: a sentence end (not a decimal point), or a comma/space before an explanatory clause
_CLAUSE_END = re.compile(r"\.(?=\s|$)|,?\s+(?:since|because|as|so|which|not|but|when|where|if|for)\b", re.IGNORECASE)


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


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` with nested braces, or None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        rest = text[start + len("\\boxed") :].strip()  # "\boxed 5"
        return rest.split()[0].rstrip(".$") if rest and text[start:].startswith("\\boxed ") else None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None  # unbalanced


def answer_after_phrase(rest: str) -> str | None:
    """The answer in the text after "the answer is": a math span if it opens one, else up to the end of
    the sentence or a trailing clause ("42, since ...", "41, not 42"); markdown bold removed.

    Minerva's format "The final answer is $\\frac{3}{4}$. I hope it is correct." gives ``\\frac{3}{4}``.
    """
    s = rest.split("\n")[0].strip().strip("*").strip()
    math = _MATH_SPAN.match(s)
    if math is not None:
        s = next(g for g in math.groups() if g is not None)
    else:
        s = _CLAUSE_END.split(s, maxsplit=1)[0]
    s = s.strip().strip("*").strip().rstrip(".").strip("$ ")
    return s or None


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def extract_answer(response: str) -> str | None:
    """The final answer written in `response`, or None when there is none."""
    if not isinstance(response, str):
        return None
    text = answer_region(response[-MAX_RESPONSE_CHARS:])
    if not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    m = _last_match(_HASHES, text)
    if m is not None:
        return m.group(1).strip().rstrip(".") or None
    m = _last_match(_ANSWER_IS, text)
    if m is not None:
        ans = answer_after_phrase(m.group(1))
        if ans:
            return ans
    nums = _NUMBER.findall(text)
    return nums[-1].rstrip(".,") if nums else None


def gsm8k_gold(solution: str) -> str:
    """GSM8K's gold answer: the text after ``####`` (thousands separators removed)."""
    m = _HASHES.search(solution)
    return (m.group(1) if m else solution).strip().replace(",", "")
