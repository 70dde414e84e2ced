"""Evaluation: accuracy, response tokens, think ratio, per difficulty; `results.json`.

Greedy decoding (temperature 0) or k samples per problem at a temperature (pass@1 averaged over
the samples). Response tokens are counted with the policy's own tokenizer, response only, EOS
included. `force_mode` ("short" / "think") appends that control token to the prompt, which is how
the lab's per-mode calibration is measured.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlreason.policy.responses import decode_responses, find_control
from rlreason.policy.rollout import SamplingParams
from rlreason.policy.sampling import sample_seed
from rlreason.policy.vllm_engine import rollout_backend
from rlreason.tasks.base import Problem


@dataclass
class EvalSettings:
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    batch_size: int = 64
    seed: int = 0
    backend: str = "hf"  # rollout.backend: evaluation samples through the run's engine
    engine: dict[str, Any] | None = None  # rollout.vllm
    model_dtype: str = "float32"


def generate_records(
    policy: torch.nn.Module,
    tokenizer: Any,
    control: Any,
    problems: list[Problem],
    prompt_ids: list[list[int]],
    verifier: Any,
    settings: EvalSettings,
    *,
    force_mode: str | None = None,
) -> list[dict[str, Any]]:
    """One record per (problem, sample): correctness, token count, mode, response text."""
    backend = rollout_backend(
        settings.backend,
        [tokenizer.eos_token_id],
        tokenizer.pad_token_id,
        settings.batch_size,
        settings.engine,
        settings.model_dtype,
    )
    params = SamplingParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
    forced: list[int] = []
    if force_mode is not None:
        tid = getattr(control, f"{force_mode}_id", None) if control is not None else None
        if tid is None:
            raise ValueError(f"force_mode '{force_mode}' needs the model's control tokens")
        forced = [int(tid)]
    prompts, seeds, owners = [], [], []
    for p, ids in zip(problems, prompt_ids):
        for j in range(settings.samples):
            prompts.append(list(ids) + forced)
            seeds.append(sample_seed("eval", settings.seed, p.uid, j))
            owners.append((p, j))
    gen = backend.generate(policy, prompts, params, seeds)
    texts = decode_responses(tokenizer, gen.response_ids, gen.response_mask, control)
    if forced:
        prefix = tokenizer.decode(forced, skip_special_tokens=False)
        if control is not None and hasattr(control, "canonicalize"):
            prefix = control.canonicalize(prefix)
        texts = [prefix + t for t in texts]
        modes: list[str | None] = [force_mode] * len(texts)
    else:
        _, modes = find_control(gen.response_ids, gen.response_mask, control)
    verdicts = verifier(texts, [p.gold for p, _ in owners])
    lengths = (gen.response_mask.sum(-1) + len(forced)).tolist()
    return [
        {
            "uid": p.uid,
            "sample": j,
            "difficulty": p.difficulty,
            "correct": bool(ok),
            "tokens": int(n),
            "mode": mode,
            "truncated": bool(tr),
            "response": text,
            "gold": p.gold,
            "prompt": p.prompt,
        }
        for (p, j), ok, n, mode, tr, text in zip(owners, verdicts, lengths, modes, gen.truncated.tolist(), texts)
    ]


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


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a crash never leaves half a results file.

    NaN / inf (e.g. `acc_think` when no sample thought) become `null`: the file stays valid JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False) + "\n")
    tmp.replace(path)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, written to a temporary file and renamed."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)


def write_report(results_path: Path, results: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """`results.json` (or the given name) and `eval_samples.jsonl` beside it."""
    write_json(results_path, results)
    write_jsonl(results_path.with_name("eval_samples.jsonl"), records)


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _finite(x.tolist())
    return x


def _json_default(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return str(x)


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
