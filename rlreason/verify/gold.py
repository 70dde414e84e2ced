"""Gold answers made comparable: as the shipped benchmarks store them (`normalize_gold`), then read by
the same extraction as responses (`gold_answer`), so that a pair is compared value to value."""

from __future__ import annotations

import functools
import re

from rlreason.verify.choice import extract_choice
from rlreason.verify.extract import as_set, boxed_answers, extract_answer, gsm8k_gold
from rlreason.verify.options import DEFAULT, GradingOptions

# a labelled option ("C. x = 42"): the verifier compares its letter with a letter answer
_LABELLED = re.compile(r"\(?[A-Z][.:)]\s+\S.*", re.DOTALL)


def normalize_gold(gold: object) -> str:
    """Gold answers as stored by the shipped benchmarks -> comparable strings.

    GSM8K's full solution (``... #### 1,234``) -> ``1234``; AMC's float ``27.0`` -> ``27``; AIME's
    ``"025"`` stays a string and compares equal to ``25`` numerically; a MATH solution's
    ``\\boxed{...}`` (several chained boxes: a set) and a gold written as one ``$...$`` region are
    unwrapped.
    """
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    text = str(gold).strip()
    if "####" in text:
        return gsm8k_gold(text)
    if "\\boxed" in text or "\\fbox" in text:
        return as_set(boxed_answers(text)) or text
    if len(text) > 2 and text[0] == text[-1] == "$" and "$" not in text[1:-1].replace("\\$", ""):
        return text[1:-1].strip()
    return text


def gold_answer(gold: object, options: GradingOptions = DEFAULT) -> str:
    """The answer a gold states, read like a response: ``10 weeks`` -> ``10``, "The number is 4." -> ``4``,
    "answer is 10000" -> ``10000``, ``17 \\bmod 5 = 2`` -> ``2``; in a multiple-choice task the letter of
    "The answer is (B)." A gold in which nothing is found stays as `normalize_gold` gives it, and so does
    a labelled option (``C. x = 42``)."""
    return _read_gold(normalize_gold(gold), options)


@functools.lru_cache(maxsize=1 << 16)
def _read_gold(text: str, options: GradingOptions) -> str:
    if options.choices:
        return extract_choice(text, options.choices) or text
    if _LABELLED.fullmatch(text):
        return text
    return extract_answer(text, options.number_format) or text
