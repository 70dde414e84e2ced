"""Reproduce Thinkless's finding on the lab: DeGRPO learns *when* to think; vanilla GRPO collapses.

SFT initialisation vs vanilla GRPO (`experiments/lab/thinkless_grpo.yaml`) vs DeGRPO
(`experiments/lab/thinkless.yaml`), same reward (`thinkless`), same budget, 3 seeds. Reports think
ratio per difficulty, accuracy and mean response tokens, checks the paper's claims, and plots the
think ratio over training steps (the U-shaped curve) to benchmarks/results/repro_thinkless.png.

    .venv/bin/python benchmarks/repro_thinkless.py [--seeds 0 1 2] [--steps 60]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _repro import RESULTS, init_results, mean_std, run_variant, write

VARIANTS = {"GRPO": "experiments/lab/thinkless_grpo.yaml", "DeGRPO": "experiments/lab/thinkless.yaml"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    overrides = [f"optim.steps={args.steps}", "eval.every_n_steps=0"]
    runs = {v: [run_variant(c, s, "repro-thinkless", overrides) for s in args.seeds] for v, c in VARIANTS.items()}
    sft = init_results(VARIANTS["DeGRPO"])["lab-arith"]
    # the best think-only policy: the SFT model forced to think (its RL-free upper reference)
    think_only = init_results(VARIANTS["DeGRPO"]).get("lab-arith[think]", {}).get("accuracy")

    rows = [("SFT init", [sft])] + [(v, [r["results"]["lab-arith"] for r in rs]) for v, rs in runs.items()]
    levels = list(sft.get("per_difficulty", {}))
    header = f"{'policy':10} {'accuracy':>14} {'tokens':>12} {'think':>14} " + " ".join(
        f"{'think@' + lv:>12}" for lv in levels
    )
    lines = [header, "-" * len(header)]
    table = {}
    for name, res in rows:
        acc = mean_std([100 * r["accuracy"] for r in res])
        tok = mean_std([r["mean_response_tokens"] for r in res])
        think = mean_std([100 * r["think_ratio"] for r in res])
        per = {lv: mean_std([100 * r["per_difficulty"][lv]["think_ratio"] for r in res]) for lv in levels}
        table[name] = {"accuracy": acc, "tokens": tok, "think_ratio": think, "think_by_level": per}
        lines.append(
            f"{name:10} {acc[0]:>7.1f} ± {acc[1]:<4.1f} {tok[0]:>6.1f} ± {tok[1]:<3.1f} "
            f"{think[0]:>7.1f} ± {think[1]:<4.1f} " + " ".join(f"{per[lv][0]:>11.1f}%" for lv in levels)
        )
    print("\n".join(lines))

    easy0 = sft["per_difficulty"]["easy"]["think_ratio"]
    de = [r["results"]["lab-arith"] for r in runs["DeGRPO"]]
    easy_de = sum(r["per_difficulty"]["easy"]["think_ratio"] for r in de) / len(de)
    hard_de = sum(r["per_difficulty"]["hard"]["think_ratio"] for r in de) / len(de)
    acc_de = sum(r["accuracy"] for r in de) / len(de)
    collapsed = sum(not 0.05 <= r["results"]["lab-arith"]["think_ratio"] <= 0.95 for r in runs["GRPO"])
    claims = {
        "degrpo_easy_think_drop_ge_50pct": easy_de <= 0.5 * easy0,
        "degrpo_hard_think_high (>= 0.5)": hard_de >= 0.5,
        "degrpo_acc_within_2pt_of_think_only": think_only is not None and acc_de >= think_only - 0.02,
        "grpo_collapses_in_2_of_3": collapsed >= 2,
    }
    for k, v in claims.items():
        print(f"{'MET ' if v else 'MISS'} {k}")

    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, rs), color in zip(runs.items(), ("tab:red", "tab:blue")):
        for i, r in enumerate(rs):
            pts = r["curves"].get("mode/think_ratio", [])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, alpha=0.7, label=name if i == 0 else None)
    ax.set_xlabel("RL step")
    ax.set_ylabel("think ratio (training samples)")
    ax.set_title("Thinkless on the lab: think ratio during RL")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "repro_thinkless.png", dpi=120)
    write(
        "repro_thinkless",
        {
            "seeds": args.seeds,
            "steps": args.steps,
            "table": table,
            "claims": claims,
            "think_only_accuracy": think_only,
            "sft": sft,
        },
    )


if __name__ == "__main__":
    main()
