"""Gold answers as the shipped benchmarks store them, made comparable (`normalize_gold`)."""

from __future__ import annotations

from rlreason.verify.extract import as_set, boxed_answers, gsm8k_gold


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
