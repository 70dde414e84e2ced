"""Verifier throughput: rlreason's batch verifier vs math-verify's parse + verify one pair at a time.

Mix: MATH-500 and GSM8K gold answers, each as a correct boxed response, an equivalent rewriting and a
wrong answer. Throughput: pairs graded in batches of `--batch` (as one training step does), math-verify
one pair at a time. Latency: each pair graded on its own, p50 / p99 over pairs. Every repeat draws fresh
pairs (different seeds; throughput and latency on different pairs) so that no parse cache on either
side is reused; the machine is shared, so the ratio is reported per repeat and as a median. The pool's
workers are started before timing (start-up reported separately): a training run keeps one pool alive.
Accuracy against the intended label is reported for both, so speed is not bought with wrong verdicts.
Prints a table and writes benchmarks/results/verify_speed.json.

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


def run_math_verify(items: list[tuple[str, str, bool]]) -> tuple[list[float], list[bool], float]:
    """math-verify as documented: parse gold and response, verify, one pair at a time in-process."""
    from math_verify import parse, verify

    verify(parse("$x^{2}+\\frac{1}{\\sqrt{2}}$"), parse("$\\frac{\\sqrt{2}}{2}+x^2$"))  # warm, as our workers are
    lat, verdicts, start = [], [], time.perf_counter()
    for resp, gold, _ in items:
        t = time.perf_counter()
        verdicts.append(bool(verify(parse(f"${gold}$"), parse(resp))))
        lat.append(time.perf_counter() - t)
    return lat, verdicts, time.perf_counter() - start


def run_rlreason(pool: VerifierPool, items: list[tuple[str, str, bool]], batch: int) -> tuple[list[bool], float]:
    start = time.perf_counter()
    verdicts: list[bool] = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        verdicts += pool.verify([r for r, _, _ in chunk], [g for _, g, _ in chunk])
    return verdicts, time.perf_counter() - start


def latencies(pool: VerifierPool, items: list[tuple[str, str, bool]]) -> list[float]:
    lat = []
    for resp, gold, _ in items:
        t = time.perf_counter()
        pool.verify([resp], [gold])
        lat.append(time.perf_counter() - t)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="gold answers sampled per repeat (x3 pairs)")
    ap.add_argument("--batch", type=int, default=256, help="responses per pool.verify call (one RL step)")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ours_lat, theirs_lat, ratios = [], [], []
    ours_total = theirs_total = 0.0
    ours_ok = theirs_ok = n_pairs = 0
    with VerifierPool("math", timeout=args.timeout, workers=args.workers) as pool:
        t = time.perf_counter()
        pool.start()
        startup = time.perf_counter() - t
        for r in range(args.repeats):
            items, other = pairs(args.n, seed=2 * r), pairs(args.n, seed=2 * r + 1)
            labels = [ok for _, _, ok in items]
            lat, verdicts, total = run_math_verify(items)
            theirs_lat += lat
            theirs_total += total
            theirs_ok += sum(v == y for v, y in zip(verdicts, labels))
            verdicts, ours = run_rlreason(pool, items, args.batch)
            ours_total += ours
            ours_ok += sum(v == y for v, y in zip(verdicts, labels))
            ours_lat += latencies(pool, other)
            ratios.append(total / ours)
            n_pairs += len(items)
        timeouts = pool.timeouts

    def row(name: str, lat: list[float], total: float, correct: int) -> dict[str, float | str]:
        q = statistics.quantiles(lat, n=100)
        return {
            "method": name,
            "answers_per_s": n_pairs / total,
            "p50_ms": 1000 * q[49],
            "p99_ms": 1000 * q[98],
            "max_ms": 1000 * max(lat),
            "label_accuracy": correct / n_pairs,
        }

    rows = [
        row(f"rlreason VerifierPool ({args.workers} workers)", ours_lat, ours_total, ours_ok),
        row("math-verify parse+verify", theirs_lat, theirs_total, theirs_ok),
    ]
    ratio = statistics.median(ratios)
    print(
        f"{n_pairs} pairs in {args.repeats} repeats (MATH-500 + GSM8K: correct, rewritten, wrong); "
        f"batch {args.batch}; timeout {args.timeout}s"
    )
    print(f"pool start-up ({args.workers} workers, once per run): {startup:.2f}s; timeouts: {timeouts}")
    print(f"{'method':34} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'label acc':>9}")
    for r in rows:
        print(
            f"{r['method']:34} {r['answers_per_s']:>10.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['max_ms']:>8.1f} {r['label_accuracy']:>9.3f}"
        )
    print(
        f"throughput ratio per repeat: {', '.join(f'{x:.1f}x' for x in ratios)}; median {ratio:.1f}x "
        f"(target >= 2x); p99 under timeout: {rows[0]['p99_ms'] < 1000 * args.timeout}"
    )
    out = Path(__file__).parent / "results" / "verify_speed.json"
    out.parent.mkdir(exist_ok=True)
    result = {
        "pairs": n_pairs,
        "repeats": args.repeats,
        "batch": args.batch,
        "timeout_s": args.timeout,
        "workers": args.workers,
        "pool_startup_s": startup,
        "timeouts": timeouts,
        "rows": rows,
        "ratio_per_repeat": ratios,
        "ratio_median": ratio,
    }
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
