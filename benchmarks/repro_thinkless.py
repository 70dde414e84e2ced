"""Reproduce Thinkless's finding on the lab, as rates over seeds: DeGRPO learns *when* to think; vanilla GRPO collapses.

SFT initialisation vs vanilla GRPO (`experiments/lab/thinkless_grpo.yaml`) vs DeGRPO
(`experiments/lab/thinkless.yaml`), same `thinkless` reward and budget; GRPO with the binary reward
(`experiments/lab/grpo.yaml`, the main job) is the token reference. Every RL seed is one trial of
each claim; the report is a row per seed, the mean and spread of every number, and each claim as a
rate ("DeGRPO learns the split in 6/6 seeds"). Seeds (`_repro.SEEDS`): 0, 1, 2 (the ones the recipe
was tuned on) and 4733, 5021, 834, drawn from a hash before any of their runs.

Claims, per seed: DeGRPO learns the split (hard think ratio >= 70 %, easy and medium <= 20 %);
DeGRPO's accuracy >= the warm-up forced to think - 2 points; DeGRPO's tokens <= 60 % of GRPO +
binary's (same seed); vanilla GRPO + thinkless collapses to one mode (think ratio < 5 % or > 95 %).
Also plots the sampled think ratio per difficulty over training, mean over seeds (the U-shaped
curve), to benchmarks/results/repro_thinkless.png. Runs are reused from `runs/` when complete.

    .venv/bin/python benchmarks/repro_thinkless.py [--seeds 0 1 2 4733 5021 834] [--steps N] [--variants ...]
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _repro import RESULTS, SEEDS, TUNED, UNSEEN, init_results, mean_curve, mean_std, run_variant, write

# name -> (config, extra overrides, run tag); the DeGRPO rows name their response normaliser
VARIANTS = {
    "GRPO + binary": ("experiments/lab/grpo.yaml", [], "repro-thinkless"),
    "GRPO + thinkless": ("experiments/lab/thinkless_grpo.yaml", [], "repro-thinkless"),
    "DeGRPO + thinkless": ("experiments/lab/thinkless.yaml", ["algo.normalization=paper"], "repro-thinkless"),
    "DeGRPO official": ("experiments/lab/thinkless.yaml", ["algo.normalization=official"], "repro-thinkless-official"),
}
LEVELS = ("easy", "medium", "hard")


def seed_row(res: dict) -> dict[str, float]:
    """One run's held-out numbers (percent, tokens)."""
    per = res["per_difficulty"]
    row = {"accuracy": 100 * res["accuracy"], "tokens": res["mean_response_tokens"]}
    row["think"] = 100 * res["think_ratio"]
    for lv in LEVELS:
        row[f"think@{lv}"] = 100 * per[lv]["think_ratio"]
    row["acc@hard"] = 100 * per["hard"]["accuracy"]
    think_hard = per["hard"].get("acc_think")
    row["acc@hard(think)"] = 100 * think_hard if think_hard is not None else float("nan")
    row["format_fail@easy"] = 100 * (per["easy"].get("format_fail") or 0.0)
    return row


def claims_of(variant: str, row: dict[str, float], think_only: float | None, binary_tokens: float | None) -> dict:
    """The claims one seed's run of `variant` makes true or false."""
    split = row["think@hard"] >= 70 and row["think@easy"] <= 20 and row["think@medium"] <= 20
    if variant.startswith("DeGRPO"):
        return {
            "learns the split": split,
            "accuracy >= think-only - 2": think_only is not None and row["accuracy"] >= 100 * think_only - 2,
            "tokens <= 60 % of GRPO + binary": binary_tokens is not None and row["tokens"] <= 0.6 * binary_tokens,
        }
    if variant == "GRPO + thinkless":
        return {
            "collapses to one mode": not 5 <= row["think"] <= 95,
            "learns the split": split,
        }
    return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--steps", type=int, default=None, help="override optim.steps of the thinkless variants")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    start = time.time()
    runs = {}
    for name in args.variants:
        config, extra, tag = VARIANTS[name]
        overrides = ["eval.every_n_steps=0", *extra]
        if args.steps and "thinkless" in config:
            overrides.append(f"optim.steps={args.steps}")
            tag = f"{tag}-{args.steps}"
        runs[name] = []
        for seed in args.seeds:
            print(f"[repro_thinkless] {name} seed {seed} ({time.time() - start:.0f} s)", flush=True)
            runs[name].append({"seed": seed, **run_variant(config, seed, tag, overrides)})
    init = init_results(VARIANTS["DeGRPO + thinkless"][0])
    sft = init["lab-arith"]
    think_only = init.get("lab-arith[think]", {}).get("accuracy")

    cols = ["accuracy", "tokens", "think", *(f"think@{lv}" for lv in LEVELS), "acc@hard", "acc@hard(think)"]
    cols.append("format_fail@easy")
    header = f"{'policy':20} {'seed':>5} " + " ".join(f"{c:>15}" for c in cols)
    lines = [header, "-" * len(header)]

    def line(name: str, seed: str, row: dict[str, float]) -> str:
        return f"{name:20} {seed:>5} " + " ".join(f"{row[c]:>15.1f}" for c in cols)

    lines.append(line("SFT init", "-", seed_row(sft)))
    binary = {r["seed"]: seed_row(r["results"]["lab-arith"]) for r in runs.get("GRPO + binary", [])}
    table: dict[str, dict] = {}
    rates: dict[str, dict[str, list]] = {}
    for name, rs in runs.items():
        per_seed = {r["seed"]: seed_row(r["results"]["lab-arith"]) for r in rs}
        for seed, row in per_seed.items():
            lines.append(line(name, str(seed), row))
        summary = {c: mean_std([row[c] for row in per_seed.values()]) for c in cols}
        lines.append(
            f"{name:20} {'mean':>5} " + " ".join(f"{summary[c][0]:>8.1f} ± {summary[c][1]:<4.1f}" for c in cols)
        )
        per_claim: dict[str, list] = {}
        for seed, row in per_seed.items():
            binary_tokens = binary[seed]["tokens"] if seed in binary else None
            for claim, ok in claims_of(name, row, think_only, binary_tokens).items():
                per_claim.setdefault(claim, []).append((seed, bool(ok)))
        rates[name] = per_claim
        seconds = [r["results"].get("train_time_s", 0.0) for r in rs]
        table[name] = {"per_seed": per_seed, "mean_std": summary, "train_s_per_run": mean_std(seconds)}
        lines.append(
            f"{'':20} {'':5} training time per run {mean_std(seconds)[0]:.0f} s, {sum(seconds) / 60:.0f} min in all"
        )
    print("\n".join(lines))
    if think_only is not None:
        print(f"think-only reference (SFT forced <think>): {100 * think_only:.1f} %")
    claims = {}
    for name, per_claim in rates.items():
        for claim, hits in per_claim.items():
            n_ok = sum(ok for _, ok in hits)
            unseen = [ok for seed, ok in hits if seed in UNSEEN]
            key = f"{name}: {claim}"
            claims[key] = {"rate": f"{n_ok}/{len(hits)}", "unseen": f"{sum(unseen)}/{len(unseen)}", "per_seed": hits}
            print(f"{key:55} {n_ok}/{len(hits)} seeds (unseen seeds {sum(unseen)}/{len(unseen)})")

    plotted = [v for v in ("DeGRPO + thinkless", "DeGRPO official", "GRPO + thinkless") if v in runs]
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
            "tuned_seeds": TUNED,
            "unseen_seeds": UNSEEN,
            "table": table,
            "claims": claims,
            "think_only_accuracy": think_only,
            "sft": sft,
            "wall_s": time.time() - start,
        },
    )


if __name__ == "__main__":
    main()
