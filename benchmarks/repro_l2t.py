"""Reproduce L2T's finding on the lab: the information-gain reward cuts tokens at equal accuracy.

GRPO with the binary reward (`experiments/lab/grpo.yaml`) vs L2T-PPO with `info_gain`
(`experiments/lab/l2t.yaml`, the paper's group score) and the same with `group_score: sum` (which
removes the implicit 1/length reward the lab ablation found; see rlreason/algos/l2t_ppo.py), same SFT
initialisation and budget, 3 seeds. Reports accuracy, mean
response tokens and the share of held-out responses that contain a redundant (repeated) episode.
Target (the paper's claim): >= 20 % fewer tokens at accuracy no worse than GRPO - 1 point, and fewer
redundant episodes.

    .venv/bin/python benchmarks/repro_l2t.py [--seeds 0 1 2] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _repro import init_results, mean_std, run_variant, write

# name -> (config, extra overrides, run tag)
VARIANTS = {
    "GRPO (binary)": ("experiments/lab/grpo.yaml", [], "repro-l2t"),
    "L2T-PPO (info_gain)": ("experiments/lab/l2t.yaml", [], "repro-l2t"),
    "L2T-PPO sum (info_gain)": ("experiments/lab/l2t.yaml", ["algo.group_score=sum"], "repro-l2t-sum"),
}


def redundant_share(run_dir: str) -> float:
    """Share of held-out think responses with a repeated reasoning line (a re-check episode)."""
    n = hits = 0
    for line in (Path(run_dir) / "eval_samples.jsonl").read_text().splitlines():
        resp = json.loads(line)["response"]
        if "<think>" not in resp:
            continue
        steps = [s for s in resp.split("</think>")[0].split("\n")[1:] if s.strip()]
        n += 1
        hits += len(steps) != len(set(steps))
    return hits / max(1, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    overrides = [f"optim.steps={args.steps}", "eval.every_n_steps=0"]
    runs = {
        v: [run_variant(c, s, tag, [*overrides, *extra]) for s in args.seeds] for v, (c, extra, tag) in VARIANTS.items()
    }
    sft = init_results(VARIANTS["GRPO (binary)"][0])["lab-arith"]
    table = {}
    print(f"{'policy':24} {'accuracy':>14} {'tokens':>14} {'redundant':>14}")
    print("-" * 70)
    print(f"{'SFT init':24} {100 * sft['accuracy']:>7.1f}        {sft['mean_response_tokens']:>7.1f}")
    for name, rs in runs.items():
        acc = mean_std([100 * r["results"]["lab-arith"]["accuracy"] for r in rs])
        tok = mean_std([r["results"]["lab-arith"]["mean_response_tokens"] for r in rs])
        red = mean_std([100 * redundant_share(r["run_dir"]) for r in rs])
        table[name] = {"accuracy": acc, "tokens": tok, "redundant_pct": red}
        print(
            f"{name:24} {acc[0]:>7.1f} ± {acc[1]:<4.1f} {tok[0]:>7.1f} ± {tok[1]:<4.1f} {red[0]:>7.1f} ± {red[1]:<4.1f}"
        )
    g = table["GRPO (binary)"]
    claims = {}
    for variant in ("L2T-PPO (info_gain)", "L2T-PPO sum (info_gain)"):
        l2t = table[variant]
        claims[variant] = {
            "tokens_at_least_20pct_lower": l2t["tokens"][0] <= 0.8 * g["tokens"][0],
            "accuracy_no_worse_than_grpo_minus_1pt": l2t["accuracy"][0] >= g["accuracy"][0] - 1.0,
            "fewer_redundant_episodes": l2t["redundant_pct"][0] < g["redundant_pct"][0],
        }
        for k, v in claims[variant].items():
            print(f"{'MET ' if v else 'MISS'} {variant}: {k}")
    write("repro_l2t", {"seeds": args.seeds, "steps": args.steps, "table": table, "claims": claims, "sft": sft})


if __name__ == "__main__":
    main()
