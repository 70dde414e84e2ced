"""Evaluation: accuracy, response tokens, think ratio, per difficulty; `results.json`.

The records come from `rlreason.policy.sample_records.generate_records` (greedy or k samples per
problem; pass@1 is averaged over the samples). Response tokens are counted with the policy's own
tokenizer, response only, EOS included. `force_mode` ("short" / "think") appends that control token
to the prompt, which is how the lab's per-mode calibration is measured.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from rlreason.json_files import write_json, write_jsonl


def summarize(records: list[dict[str, Any]], *, with_modes: bool) -> dict[str, Any]:
    """accuracy (pass@1 averaged over samples), mean_response_tokens, think_ratio, n, per_difficulty."""

    def block(rs: list[dict[str, Any]]) -> dict[str, Any]:
        by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rs:
            by_item[r["uid"]].append(r)
        acc = sum(sum(x["correct"] for x in v) / len(v) for v in by_item.values()) / max(1, len(by_item))
        out: dict[str, Any] = {
            "accuracy": acc,
            "mean_response_tokens": sum(r["tokens"] for r in rs) / max(1, len(rs)),
            "n": len(by_item),
            "samples": len(rs),
            "truncated_frac": sum(r["truncated"] for r in rs) / max(1, len(rs)),
        }
        if with_modes:
            think = [r for r in rs if r["mode"] == "think"]
            short = [r for r in rs if r["mode"] == "short"]
            out["think_ratio"] = len(think) / max(1, len(rs))
            out["format_fail"] = (len(rs) - len(think) - len(short)) / max(1, len(rs))
            out["acc_think"] = sum(r["correct"] for r in think) / len(think) if think else math.nan
            out["acc_short"] = sum(r["correct"] for r in short) / len(short) if short else math.nan
        return out

    summary = block(records)
    levels = sorted({r["difficulty"] for r in records if r["difficulty"] is not None}, key=str)
    if levels:
        summary["per_difficulty"] = {lv: block([r for r in records if r["difficulty"] == lv]) for lv in levels}
    return summary


def write_report(results_path: Path, results: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """`results.json` (or the given name) and `eval_samples.jsonl` beside it."""
    write_json(results_path, results)
    write_jsonl(results_path.with_name("eval_samples.jsonl"), records)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of results.json's per-task summaries (and per difficulty)."""
    rows = [("task", "n", "accuracy", "tokens", "think_ratio")]
    for task, s in results.items():
        if not isinstance(s, dict) or "accuracy" not in s:
            continue
        rows.append(_row(task, s))
        for lv, sub in (s.get("per_difficulty") or {}).items():
            rows.append(_row(f"  {lv}", sub))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(name: str, s: dict[str, Any]) -> tuple[str, ...]:
    tr = s.get("think_ratio")
    return (
        name,
        str(s["n"]),
        f"{100 * s['accuracy']:.1f}%",
        f"{s['mean_response_tokens']:.1f}",
        "-" if tr is None else f"{100 * tr:.1f}%",
    )
