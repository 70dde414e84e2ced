"""Reproduce L2T's finding on the lab: the information-gain reward cuts tokens at equal accuracy.

All variants start from the same think-only warm-up on traces with 1-3 redundant episodes
(`experiments/lab/sft_l2t.yaml`) and share data, budget, learning rate and token-level loss:

- GRPO + `binary` (`experiments/lab/l2t_grpo.yaml`), the baseline;
- L2T-PPO + `info_gain` with the paper's group score (`experiments/lab/l2t.yaml`, `group_score: mean`);
- L2T-PPO + `info_gain` with `group_score: sum` (no implicit 1/length reward; see rlreason/algos/l2t_ppo.py);
- L2T-PPO + `binary` (paper's group score, no information gain): what the group score does alone.

Reports held-out accuracy, mean response tokens, reasoning lines per think answer and the share of
think answers with a redundant line (a step written twice, or a line that is not one of the
problem's steps), 3 seeds; and, from TensorBoard, the fitting gain / penalty / episode reward per
episode type (useful step vs re-check vs other) at the start and end of training.
Target (the paper's claim): >= 20 % fewer tokens than GRPO at accuracy >= GRPO - 1 point, and
fewer redundant episodes. Every RL seed is one trial: a row per seed, mean and spread, and each claim
as a rate over the seeds (the paired GRPO run of the same seed is the reference); and, for what the
information gain adds beyond L2T-PPO's group score, `info_gain` vs `binary` under L2T-PPO per seed.
Seeds (`_repro.SEEDS`): 0, 1, 2 (tuned on) and 4733, 5021, 834 (drawn from a hash before any run).

    .venv/bin/python benchmarks/repro_l2t.py [--seeds 0 1 2 4733 5021 834] [--steps N] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _repro import RESULTS, SEEDS, UNSEEN, init_results, mean_curve, mean_std, run_variant, write

from rlreason.rewards.episode_types import EPISODE_TYPES, episode_types
from rlreason.tasks.lab_arith import LEVELS

# name -> (config, extra overrides, run tag)
# The L2T-PPO variants run l2t_fast.yaml: l2t.yaml's estimator and update to float32 rounding, in half the time.
VARIANTS = {
    "GRPO + binary": ("experiments/lab/l2t_grpo.yaml", [], "repro-l2t"),
    "L2T-PPO + info_gain": ("experiments/lab/l2t_fast.yaml", [], "repro-l2t"),
    "L2T-PPO sum + info_gain": ("experiments/lab/l2t_fast.yaml", ["algo.group_score=sum"], "repro-l2t-sum"),
    "L2T-PPO + binary": ("experiments/lab/l2t_fast.yaml", ["reward={name: binary}"], "repro-l2t-binary"),
}


def useful_steps(prompt: str, difficulty: str) -> list[str]:
    """The steps a lab problem's answer needs, rebuilt from its prompt (``47*8=``)."""
    a, b = (int(x) for x in re.split(r"[+*]", prompt.rstrip("="))[:2])
    return LEVELS[difficulty][1](a, b)[1]


def response_stats(run_dir: str) -> dict[str, float]:
    """Over held-out think answers: reasoning lines per answer, share with a redundant line, by type."""
    n = redundant = lines = 0
    by_type = dict.fromkeys(EPISODE_TYPES, 0)
    for line in (Path(run_dir) / "eval_samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        types = episode_types(row["response"], useful_steps(row["prompt"], row["difficulty"]))
        if types is None:
            continue
        n += 1
        lines += len(types)
        redundant += any(t != "useful" for t in types)
        for t in types:
            by_type[t] += 1
    return {
        "think_answers": n,
        "lines_per_answer": lines / max(1, n),
        "redundant_share": redundant / max(1, n),
        **{f"{t}_per_answer": c / max(1, n) for t, c in by_type.items()},
    }


def early_late(curve: list[tuple[int, float]], k: int = 5) -> tuple[float, float] | None:
    """Mean of the first and of the last k logged values."""
    if not curve:
        return None
    vals = [v for _, v in curve]
    return statistics.fmean(vals[:k]), statistics.fmean(vals[-k:])


def plot_episode_types(runs: dict[str, list[dict]]) -> None:
    """Fitting gain, penalty and count per episode type over training (mean over seeds), per info_gain variant."""
    variants = [v for v in runs if "info_gain" in v]
    if not variants:
        return
    keys = (("gain", "fitting gain per episode"), ("penalty", "compression penalty per episode"))
    keys += (("episodes_per_sample", "episodes per sample"),)
    fig, axes = plt.subplots(len(variants), 3, figsize=(15, 3.6 * len(variants)), squeeze=False)
    for row, name in zip(axes, variants):
        for ax, (key, title) in zip(row, keys):
            for t, color in zip(EPISODE_TYPES, ("tab:green", "tab:red", "tab:gray")):
                xs, ys = mean_curve([r["curves"].get(f"info_gain/{key}/{t}", []) for r in runs[name]])
                ax.plot(xs, ys, color=color, label=t)
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel("RL step")
            ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "repro_l2t_episode_types.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--steps", type=int, default=None, help="override optim.steps of every variant")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    start = time.time()
    overrides = ["eval.every_n_steps=0"] + ([f"optim.steps={args.steps}"] if args.steps else [])
    runs = {}
    for name in args.variants:
        config, extra, tag = VARIANTS[name]
        tag = f"{tag}-{args.steps}" if args.steps else tag
        runs[name] = []
        for seed in args.seeds:
            print(f"[repro_l2t] {name} seed {seed} ({time.time() - start:.0f} s)", flush=True)
            runs[name].append({"seed": seed, **run_variant(config, seed, tag, [*overrides, *extra])})
    sft = init_results(VARIANTS["GRPO + binary"][0])["lab-arith"]
    table = {}
    print(f"{'policy':26} {'accuracy':>13} {'tokens':>13} {'lines':>6} {'redundant':>13}")
    print("-" * 76)
    print(f"{'SFT init':26} {100 * sft['accuracy']:>6.1f}        {sft['mean_response_tokens']:>6.1f}")
    for name, rs in runs.items():
        acc = mean_std([100 * r["results"]["lab-arith"]["accuracy"] for r in rs])
        tok = mean_std([r["results"]["lab-arith"]["mean_response_tokens"] for r in rs])
        stats = [response_stats(r["run_dir"]) for r in rs]
        red = mean_std([100 * s["redundant_share"] for s in stats])
        per_line = mean_std([s["lines_per_answer"] for s in stats])
        curves = {}
        for key in ("gain", "penalty", "episode_reward", "episodes_per_sample"):
            for t in EPISODE_TYPES:
                pts = [early_late(r["curves"].get(f"info_gain/{key}/{t}", [])) for r in rs]
                pts = [p for p in pts if p is not None]
                if pts:
                    curves[f"{key}/{t}"] = [statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)]
        seconds = [r["results"].get("train_time_s", 0.0) for r in rs]
        table[name] = {
            "train_s_per_run": mean_std(seconds),
            "seeds": {
                r["seed"]: {
                    "accuracy": 100 * r["results"]["lab-arith"]["accuracy"],
                    "tokens": r["results"]["lab-arith"]["mean_response_tokens"],
                    "lines": st["lines_per_answer"],
                    "redundant": 100 * st["redundant_share"],
                }
                for r, st in zip(rs, stats)
            },
            "accuracy": acc,
            "tokens": tok,
            "redundant_pct": red,
            "lines_per_think_answer": per_line,
            "per_seed": stats,
            "info_gain_by_type_first_last": curves,
        }
        print(
            f"{name:26} {acc[0]:>6.1f} ± {acc[1]:<4.1f} {tok[0]:>6.1f} ± {tok[1]:<4.1f} {per_line[0]:>6.2f} "
            f"{red[0]:>6.1f} ± {red[1]:<4.1f}   (training {mean_std(seconds)[0]:.0f} s a run, "
            f"{sum(seconds) / 60:.0f} min)"
        )
    claims: dict[str, dict] = {}

    def rate(key: str, hits: list[tuple[int, bool]]) -> None:
        n_ok, unseen = sum(ok for _, ok in hits), [ok for seed, ok in hits if seed in UNSEEN]
        claims[key] = {"rate": f"{n_ok}/{len(hits)}", "unseen": f"{sum(unseen)}/{len(unseen)}", "per_seed": hits}
        print(f"{key:70} {n_ok}/{len(hits)} seeds (unseen seeds {sum(unseen)}/{len(unseen)})")

    print()
    print(f"{'per seed':26} {'seed':>5} {'accuracy':>9} {'tokens':>7} {'lines':>6} {'redundant':>10}")
    for name, row in table.items():
        for seed, r in row["seeds"].items():
            print(
                f"{name:26} {seed:>5} {r['accuracy']:>9.1f} {r['tokens']:>7.1f} {r['lines']:>6.2f} "
                f"{r['redundant']:>10.1f}"
            )
    g = table.get("GRPO + binary")
    for variant in ("L2T-PPO + info_gain", "L2T-PPO sum + info_gain"):
        if g is None or variant not in table:
            continue
        pairs = [(seed, r, g["seeds"][seed]) for seed, r in table[variant]["seeds"].items() if seed in g["seeds"]]
        rate(f"{variant}: tokens >= 20 % below GRPO", [(s_, r["tokens"] <= 0.8 * b["tokens"]) for s_, r, b in pairs])
        rate(f"{variant}: accuracy >= GRPO - 1", [(s_, r["accuracy"] >= b["accuracy"] - 1) for s_, r, b in pairs])
        rate(f"{variant}: fewer redundant answers", [(s_, r["redundant"] < b["redundant"]) for s_, r, b in pairs])
    ig, pb = table.get("L2T-PPO + info_gain"), table.get("L2T-PPO + binary")
    if ig is not None and pb is not None:  # what the information gain adds beyond the group score
        pairs = [(seed, r, pb["seeds"][seed]) for seed, r in ig["seeds"].items() if seed in pb["seeds"]]
        for key in ("accuracy", "tokens", "redundant"):
            d = mean_std([r[key] - b[key] for _, r, b in pairs])
            print(
                f"  info_gain - binary under L2T-PPO, {key}: {d[0]:+.2f} ± {d[1]:.2f} (mean ± sd, {len(pairs)} seeds)"
            )
        rate("info_gain vs binary (L2T-PPO): fewer tokens", [(s_, r["tokens"] < b["tokens"]) for s_, r, b in pairs])
        rate(
            "info_gain vs binary (L2T-PPO): accuracy >= binary - 1",
            [(s_, r["accuracy"] >= b["accuracy"] - 1) for s_, r, b in pairs],
        )
        rate(
            "info_gain vs binary (L2T-PPO): fewer redundant answers",
            [(s_, r["redundant"] < b["redundant"]) for s_, r, b in pairs],
        )
    for name, row in table.items():
        for key, (first, last) in row["info_gain_by_type_first_last"].items():
            print(f"  {name:26} {key:32} first {first:+.4f}  last {last:+.4f}")
    plot_episode_types(runs)
    print(f"[repro_l2t] done in {time.time() - start:.0f} s")
    write(
        "repro_l2t",
        {
            "seeds": args.seeds,
            "steps": args.steps,
            "table": table,
            "claims": claims,
            "sft": sft,
            "wall_s": time.time() - start,
        },
    )


if __name__ == "__main__":
    main()
