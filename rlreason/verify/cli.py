"""`rlreason verify PREDICTIONS.jsonl`: grade a file of model responses against gold answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlreason.errors import DataError
from rlreason.tasks.sources import JsonlFile, stop_at_first
from rlreason.verify.gold import gold_answer
from rlreason.verify.verifier_pool import VerifierPool, read_answer


def read_predictions(path: Path, response_field: str, gold_field: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    for where, row in JsonlFile(path, "PREDICTIONS").rows(stop_at_first):
        for field in (response_field, gold_field):
            if field not in row:
                raise DataError(f"{where}: missing field '{field}' (set --response-field / --gold-field)")
        if not isinstance(row[response_field], str):
            raise DataError(f"{where}: field '{response_field}' must be a string")
        rows.append(row)
    return rows


def verify_file(args: Any) -> int:
    path = Path(args.predictions)
    rows = read_predictions(path, args.response_field, args.gold_field)
    responses = [r[args.response_field] for r in rows]
    golds = [gold_answer(r[args.gold_field]) for r in rows]  # read like a response: units, sentences
    answers = [read_answer(r) for r in responses]  # once: graded below and written out
    with VerifierPool(args.verifier, timeout=args.timeout, workers=args.workers) as pool:
        verdicts = pool.verify_answers(answers, golds)
        timeouts = pool.timeouts
    out = Path(args.out) if args.out else path.with_suffix(".graded.jsonl")
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row, pred, gold, ok in zip(rows, answers, golds, verdicts):
            f.write(json.dumps({**row, "extracted": pred, "gold_normalized": gold, "correct": ok}) + "\n")
    tmp.replace(out)
    n_answered = sum(a is not None for a in answers)
    n, correct = len(rows), sum(verdicts)
    acc = correct / n if n else 0.0
    print(
        f"accuracy {100 * acc:.1f}%  ({correct}/{n} correct, {n_answered - correct} wrong, "
        f"{n - n_answered} without an answer, {timeouts} timed out)"
    )
    print(f"per-item results: {out}")
    return 0
