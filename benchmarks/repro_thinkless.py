"""Reproduce Thinkless's finding on the lab: DeGRPO learns *when* to think; vanilla GRPO collapses.

SFT initialisation vs vanilla GRPO (`experiments/lab/thinkless_grpo.yaml`) vs DeGRPO
(`experiments/lab/thinkless.yaml`), same `thinkless` reward and budget, 3 seeds; GRPO with the
binary reward (`experiments/lab/grpo.yaml`, the main job) is the token reference. Reports accuracy,
mean response tokens and think ratio per difficulty (held-out, greedy), checks the issue's targets,
and plots the sampled think ratio per difficulty over training, mean over seeds (the U-shaped curve)
to benchmarks/results/repro_thinkless.png.

    .venv/bin/python benchmarks/repro_thinkless.py [--seeds 0 1 2] [--steps N] [--variants DeGRPO ...]
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _repro import RESULTS, init_results, mean_curve, mean_std, run_variant, write

# name -> (config, run tag)
VARIANTS = {
    "GRPO + binary": ("experiments/lab/grpo.yaml", "repro-thinkless"),
    "GRPO + thinkless": ("experiments/lab/thinkless_grpo.yaml", "repro-thinkless"),
    "DeGRPO + thinkless": ("experiments/lab/thinkless.yaml", "repro-thinkless"),
}
LEVELS = ("easy", "medium", "hard")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="override optim.steps of the thinkless variants")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    start = time.time()
    runs = {}
    for name in args.variants:
        config, tag = VARIANTS[name]
        overrides = ["eval.every_n_steps=0"]
        if args.steps and "thinkless" in config:
            overrides.append(f"optim.steps={args.steps}")
            tag = f"{tag}-{args.steps}"
        runs[name] = []
        for seed in args.seeds:
            print(f"[repro_thinkless] {name} seed {seed} ({time.time() - start:.0f} s)", flush=True)
            runs[name].append(run_variant(config, seed, tag, overrides))
    init = init_results(VARIANTS["DeGRPO + thinkless"][0])
    sft = init["lab-arith"]
    think_only = init.get("lab-arith[think]", {}).get("accuracy")

    rows = [("SFT init", [sft])] + [(v, [r["results"]["lab-arith"] for r in rs]) for v, rs in runs.items()]
    header = f"{'policy':20} {'accuracy':>13} {'tokens':>11} {'think':>12} " + " ".join(
        f"{'think@' + lv:>12}" for lv in LEVELS
    )
    lines, table = [header, "-" * len(header)], {}
    for name, res in rows:
        acc = mean_std([100 * r["accuracy"] for r in res])
        tok = mean_std([r["mean_response_tokens"] for r in res])
        think = mean_std([100 * r["think_ratio"] for r in res])
        per = {lv: mean_std([100 * r["per_difficulty"][lv]["think_ratio"] for r in res]) for lv in LEVELS}
        acc_lv = {lv: mean_std([100 * r["per_difficulty"][lv]["accuracy"] for r in res]) for lv in LEVELS}
        table[name] = {
            "accuracy": acc,
            "tokens": tok,
            "think_ratio": think,
            "think_by_level": per,
            "accuracy_by_level": acc_lv,
            "per_seed_think_ratio": [r["think_ratio"] for r in res],
        }
        lines.append(
            f"{name:20} {acc[0]:>6.1f} ± {acc[1]:<4.1f} {tok[0]:>5.1f} ± {tok[1]:<3.1f} "
            f"{think[0]:>5.1f} ± {think[1]:<4.1f} " + " ".join(f"{per[lv][0]:>11.1f}%" for lv in LEVELS)
        )
    print("\n".join(lines))
    if think_only is not None:
        print(f"think-only reference (SFT forced <think>): {100 * think_only:.1f} %")

    claims = {}
    if "DeGRPO + thinkless" in table:
        de = table["DeGRPO + thinkless"]
        think, acc, tokens = de["think_by_level"], de["accuracy"][0], de["tokens"][0]
        claims["degrpo_hard_think_ge_70pct"] = think["hard"][0] >= 70
        claims["degrpo_easy_medium_think_le_20pct"] = think["easy"][0] <= 20 and think["medium"][0] <= 20
        claims["degrpo_acc_ge_think_only_minus_2pt"] = think_only is not None and acc >= 100 * think_only - 2
        if "GRPO + binary" in table:
            claims["degrpo_tokens_le_60pct_of_grpo_binary"] = tokens <= 0.6 * table["GRPO + binary"]["tokens"][0]
    if "GRPO + thinkless" in table:
        ratios = table["GRPO + thinkless"]["per_seed_think_ratio"]
        claims["grpo_collapses_to_one_mode_in_2_of_3"] = sum(not 0.05 <= t <= 0.95 for t in ratios) >= 2
    for k, v in claims.items():
        print(f"{'MET ' if v else 'MISS'} {k}")

    plotted = [v for v in ("DeGRPO + thinkless", "GRPO + thinkless") if v in runs]
    fig, axes = plt.subplots(1, len(plotted), figsize=(6 * len(plotted), 4), squeeze=False)
    for ax, name in zip(axes[0], plotted):
        for level, color in zip(LEVELS, ("tab:green", "tab:orange", "tab:red")):
            xs, ys = mean_curve([r["curves"].get(f"mode/think_ratio/{level}", []) for r in runs[name]])
            ax.plot(xs, ys, color=color, label=level)
        ax.set_title(f"{name}: sampled think ratio (mean of {len(args.seeds)} seeds)")
        ax.set_xlabel("RL step")
        ax.set_ylim(0, 1)
        ax.legend(title="difficulty")
    axes[0][0].set_ylabel("think ratio (training samples)")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "repro_thinkless.png", dpi=120)
    print(f"[repro_thinkless] done in {time.time() - start:.0f} s")
    write(
        "repro_thinkless",
        {
            "seeds": args.seeds,
            "steps": args.steps,
            "table": table,
            "claims": claims,
            "think_only_accuracy": think_only,
            "sft": sft,
            "wall_s": time.time() - start,
        },
    )


if __name__ == "__main__":
    main()
