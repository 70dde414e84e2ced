"""Verifier throughput: rlreason's batch verifier vs math-verify's parse + verify one pair at a time.

Mix: MATH-500 and GSM8K gold answers, each as a correct boxed response, an equivalent rewriting and a
wrong answer. Prints a table and writes benchmarks/results/verify_speed.json.

    .venv/bin/python benchmarks/verify_speed.py [--n 300]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from fractions import Fraction
from pathlib import Path

import rlreason.components  # noqa: F401
from rlreason.registry import TASKS
from rlreason.verify import VerifierPool, parse_number


def pairs(n: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    rng = random.Random(seed)
    golds = [p.gold for p in TASKS.build("math500").problems("test")] + [
        p.gold for p in TASKS.build("gsm8k").problems("test")
    ]
    out = []
    for gold in rng.sample(golds, n):
        v = parse_number(gold)
        out.append((f"So the answer is $\\boxed{{{gold}}}$.", gold, True))
        if v is not None and v.denominator != 1:
            out.append((f"The answer is \\boxed{{{float(v)}}}", gold, abs(float(v) - v) < Fraction(1, 10**9)))
        elif v is not None:
            out.append((f"The answer is \\boxed{{{int(v):,}}}", gold, True))
        else:
            out.append((f"The answer is \\boxed{{ {gold} }}", gold, True))
        out.append((f"\\boxed{{{v + 1 if v is not None else gold + '+1'}}}", gold, False))
    return out


def run_math_verify(items: list[tuple[str, str, bool]]) -> list[float]:
    from math_verify import parse, verify

    lat = []
    for resp, gold, _ in items:
        t = time.perf_counter()
        verify(parse(f"${gold}$"), parse(resp))
        lat.append(time.perf_counter() - t)
    return lat


def run_rlreason(items: list[tuple[str, str, bool]], pool: VerifierPool, batch: int) -> tuple[list[float], float]:
    lat, start = [], time.perf_counter()
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        t = time.perf_counter()
        pool.verify([r for r, _, _ in chunk], [g for _, g, _ in chunk])
        lat.extend([(time.perf_counter() - t) / len(chunk)] * len(chunk))
    return lat, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="gold answers sampled (x3 pairs)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    items = pairs(args.n)
    with VerifierPool("math", timeout=args.timeout) as pool:
        pool.verify([r"\boxed{x^2}"], ["x^2+0"])  # start the workers outside the timing
        ours, ours_total = run_rlreason(items, pool, args.batch)
    t = time.perf_counter()
    theirs = run_math_verify(items)
    theirs_total = time.perf_counter() - t

    def row(name: str, lat: list[float], total: float) -> dict[str, float | str]:
        q = statistics.quantiles(lat, n=100)
        return {"method": name, "answers_per_s": len(lat) / total, "p50_ms": 1000 * q[49], "p99_ms": 1000 * q[98]}

    rows = [
        row("rlreason VerifierPool (batch)", ours, ours_total),
        row("math-verify parse+verify", theirs, theirs_total),
    ]
    ratio = rows[0]["answers_per_s"] / rows[1]["answers_per_s"]
    print(f"{len(items)} pairs (MATH-500 + GSM8K: correct, rewritten, wrong); timeout {args.timeout}s")
    print(f"{'method':32} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['method']:32} {r['answers_per_s']:>10.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    print(
        f"throughput ratio: {ratio:.1f}x (target >= 2x); p99 under timeout: {rows[0]['p99_ms'] < 1000 * args.timeout}"
    )
    out = Path(__file__).parent / "results" / "verify_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"pairs": len(items), "timeout_s": args.timeout, "rows": rows, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
