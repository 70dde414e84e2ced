"""Why the Thinkless lab claims hold or fail, read from the runs of `repro_thinkless.py` and one probe.

(a) Hard-problem think answers: per step, how many there are, how often they are right in training
    (`mode/acc_think/hard`, ~50 samples a step: a finer gauge than the 100 held-out hard problems)
    and the advantage they train with, for DeGRPO, vanilla GRPO and GRPO + binary; and `--probe`:
    the gradient of the DeGRPO loss split into its control-token and response terms, for the hard
    think samples and for the short samples, on fresh batches from a policy (norms, cosines, and
    the share that survives gradient clipping).
(b) Vanilla GRPO's collapse: the first 50 steps of the think ratio and of the mode-wise advantage
    and length per seed; the control token's push under a per-sample mean is advantage / length.
(c) Format failures: held-out answers without a control token, and where their first token's
    probability sits (`--probe` gives P(<short>), P(<think>) and the best other first token on the
    easy held-out prompts under the warm-up and a trained policy).

    .venv/bin/python benchmarks/thinkless_why.py [--seeds ...] [--probe RUN_DIR ...] [--batches 4] [--recipes ...]

Writes benchmarks/results/thinkless_why.json ((a)-(c)) and, with --probe, thinkless_why_probe.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from _repro import SEEDS, write
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

RUNS = Path(__file__).resolve().parent.parent / "runs"
VARIANTS = {  # name -> run directory pattern (repro_thinkless.py's tags)
    "DeGRPO + thinkless": "lab-thinkless/repro-thinkless-seed{seed}",
    "DeGRPO official": "lab-thinkless/repro-thinkless-official-seed{seed}",
    "GRPO + thinkless": "lab-thinkless-grpo/repro-thinkless-seed{seed}",
    "GRPO + binary": "lab-grpo/repro-thinkless-seed{seed}",
}


def curves(run_dir: Path) -> dict[str, dict[int, float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def window(curve: dict[int, float], lo: int, hi: int) -> float:
    vals = [v for s, v in curve.items() if lo <= s < hi]
    return statistics.fmean(vals) if vals else float("nan")


def ms(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def part_a(runs: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """Hard think answers per step: count, training accuracy, advantage, early vs late (mean over seeds)."""
    out: dict[str, Any] = {}
    print("\n(a) hard-problem think answers during RL (per step; mean ± sd over seeds)")
    keys = ("mode/n_think/hard", "mode/acc_think/hard", "mode/adv_think/hard", "mode/len_think/hard")
    head = f"{'variant':20} {'steps':>9} " + " ".join(f"{k.split('/', 1)[1]:>22}" for k in keys)
    print(head + f" {'grad_norm':>16} {'clipped':>8}")
    for name, by_seed in runs.items():
        logged = [max(c["mode/n_think/hard"]) for c in by_seed.values() if "mode/n_think/hard" in c]
        if not logged:
            continue
        last = max(logged) + 1
        for lo, hi in ((0, 20), (max(0, last - 20), last)):
            row = {k: ms([window(c.get(k, {}), lo, hi) for c in by_seed.values()]) for k in keys}
            norms = [window(c.get("optim/grad_norm", {}), lo, hi) for c in by_seed.values()]
            clipped = [
                statistics.fmean([v > 1.0 for s, v in c["optim/grad_norm"].items() if lo <= s < hi])
                for c in by_seed.values()
                if c.get("optim/grad_norm")
            ]
            print(
                f"{name:20} {f'{lo}-{hi - 1}':>9} "
                + " ".join(f"{row[k]:>22}" for k in keys)
                + f" {ms(norms):>16} {ms(clipped):>8}"
            )
            out[f"{name} {lo}-{hi - 1}"] = {**row, "grad_norm": ms(norms), "clipped_share": ms(clipped)}
    return out


def part_b(runs: dict[str, dict[int, dict]]) -> dict[str, Any]:
    """Per seed, the first 50 steps: think ratio, and each mode's advantage / length (its control push)."""
    out: dict[str, Any] = {}
    print("\n(b) the first 50 steps, per seed: think ratio at steps 0/10/20/30/40/49; mean over steps 0-19 of")
    print("    each mode's advantage, and its control-token push under a per-sample mean (sum of A / length)")
    for name in ("GRPO + thinkless", "DeGRPO + thinkless", "DeGRPO official"):
        for seed, c in runs.get(name, {}).items():
            ratio = c.get("mode/think_ratio", {})
            at = [ratio.get(s, float("nan")) for s in (0, 10, 20, 30, 40, 49)]
            adv = {m: window(c.get(f"mode/adv_{m}", {}), 0, 20) for m in ("think", "short")}
            length = {m: window(c.get(f"mode/len_{m}", {}), 0, 20) for m in ("think", "short")}
            n = {
                "think": window(c.get("mode/n_think", {}), 0, 20),
                "short": window(c.get("mode/n_short", {}), 0, 20),
            }
            push = {m: n[m] * adv[m] / length[m] for m in adv}  # sum over a step's samples of A_i / |o_i|
            hard = {  # the same on hard prompts: what keeps <think> there
                m: window(c.get(f"mode/n_{m}/hard", {}), 0, 20)
                * window(c.get(f"mode/adv_{m}/hard", {}), 0, 20)
                / window(c.get(f"mode/len_{m}/hard", {}), 0, 20)
                for m in ("think", "short")
            }
            hard_ratio = c.get("mode/think_ratio/hard", {})
            hard_at = [hard_ratio.get(st, float("nan")) for st in (0, 25, 49)]
            final = statistics.fmean(list(ratio.values())[-10:]) if ratio else float("nan")
            print(
                f"  {name:20} seed {seed:>5}: think " + " ".join(f"{v:.2f}" for v in at) + f" -> {final:.2f} (last 10)"
                f" | adv think {adv['think']:+.3f} short {adv['short']:+.3f}"
                f" | push think {push['think']:+.3f} short {push['short']:+.3f}"
                f" | hard: think {' '.join(f'{v:.2f}' for v in hard_at)}, push think {hard['think']:+.3f}"
                f" short {hard['short']:+.3f}"
            )
            out[f"{name} seed {seed}"] = {
                "think_ratio": at,
                "final": final,
                "adv": adv,
                "len": length,
                "push": push,
                "hard_think_ratio": hard_at,
                "hard_push": hard,
            }
    return out


def part_c(seeds: list[int]) -> dict[str, Any]:
    """Held-out answers without a control token (DeGRPO runs): by difficulty, and what they start with."""
    out: dict[str, Any] = {}
    print("\n(c) held-out answers without a control token")
    for name in ("DeGRPO + thinkless", "DeGRPO official", "GRPO + thinkless"):
        fails, total, starts = {}, {}, {}
        for seed in seeds:
            path = RUNS / VARIANTS[name].format(seed=seed) / "eval_samples.jsonl"
            if not path.is_file():
                continue
            for line in path.read_text().splitlines():
                row = json.loads(line)
                lv = row["difficulty"]
                total[lv] = total.get(lv, 0) + 1
                if row["mode"] is None:
                    fails[lv] = fails.get(lv, 0) + 1
                    head = row["response"][:1]
                    starts[head] = starts.get(head, 0) + 1
        share = {lv: f"{fails.get(lv, 0)}/{n}" for lv, n in sorted(total.items())}
        print(f"  {name:20} {share}  first characters: {dict(sorted(starts.items(), key=lambda kv: -kv[1]))}")
        out[name] = {"fails": share, "first_chars": starts}
    return out


# -- the probe ------------------------------------------------------------------------------------


def build_learner(policy_dir: str, seed: int, recipe: str = "experiments/lab/thinkless.yaml") -> Any:
    """`recipe`'s learner around the policy in `policy_dir` (as `rlreason run` builds it), without KL."""
    from omegaconf import OmegaConf

    from rlreason.config import load_config
    from rlreason.policy.load import format_prompt, load_policy
    from rlreason.registry import ALGOS, REWARDS, TASKS
    from rlreason.train.module import RLModule
    from rlreason.train.run import cache_dir
    from rlreason.verify.task_verifier import RunVerifiers

    path, *overrides = recipe.split(":")  # "experiments/lab/thinkless.yaml:algo.normalization=official"
    overrides = [o for part in overrides for o in part.split(",")]
    cfg = load_config(path, [f"init.from={policy_dir}", f"seed={seed}", "algo.beta=0.0", *overrides])
    model_cfg = cfg.model.copy()
    model_cfg.name_or_path = policy_dir
    policy, tok, control = load_policy(model_cfg, cache_dir=cache_dir(), training=True, quiet=True)
    task = TASKS.build(OmegaConf.to_container(cfg.task))
    verifiers = RunVerifiers()
    module = RLModule(
        cfg,
        policy,
        tok,
        control,
        ALGOS.build(OmegaConf.to_container(cfg.algo)),
        REWARDS.build(OmegaConf.to_container(cfg.reward)),
        verifier=verifiers.for_task(task),
        answer_cue=task.answer_cue,
        format_prompt=lambda text: format_prompt(tok, text, model_cfg),
    )
    return module.learner, task, verifiers, int(cfg.rollout.prompts_per_step)


def probe_gradients(policy_dir: str, recipe: str, batches: int, seed: int) -> dict[str, Any]:
    """`recipe`'s loss gradient (no KL) split by term and sample group, on `batches` fresh rollout batches
    of the same prompts: the loss is linear in the advantages, so zeroing them outside a group of
    tokens gives that group's share of the gradient."""
    from rlreason.distributed import RankReducer
    from rlreason.train.parity import ParityMonitor
    from rlreason.train.step import StepHandles, loss_inputs, loss_mask, minibatch_normalisers, rollout, score, verify

    learner, task, verifiers, prompts_per_step = build_learner(policy_dir, seed, recipe)
    policy = learner.policy
    params = [p for p in policy.parameters() if p.requires_grad]
    problems = task.problems("train")
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, list[float]] = {}
    for b in range(batches):
        h = StepHandles(
            step=10_000 + b,
            device=torch.device("cpu"),
            backward=lambda loss: loss.backward(),
            optimizer=torch.optim.SGD(params, lr=0.0),
            scheduler=None,  # type: ignore[arg-type]
            ranks=RankReducer(1, 0),
            parity=ParityMonitor(),
        )
        pick = torch.randperm(len(problems), generator=gen)[:prompts_per_step].tolist()
        batch, state = rollout(learner, h, [problems[i] for i in pick])
        correct, answered = verify(learner, batch)
        reward = score(learner, h, batch, state, correct, answered)
        adv = learner.algo.advantages(batch, reward, None)
        mask = loss_mask(batch, learner.algo, adv.keep)
        rows = torch.arange(batch.num_samples)
        norms = minibatch_normalisers(learner, h, batch, mask, rows, adv.keep, float(mask.sum()))
        modes = batch.control_mode or [None] * batch.num_samples
        hard = torch.tensor([m.get("difficulty") == "hard" for m in batch.meta])
        think = torch.tensor([md == "think" for md in modes])
        short = torch.tensor([md == "short" for md in modes])
        control = torch.zeros_like(mask)
        has = batch.control_pos >= 0
        control[has.nonzero().squeeze(-1), batch.control_pos[has]] = 1.0
        groups = {
            "all": torch.ones_like(mask),
            "hard think: control": control * (hard & think)[:, None],
            "hard think: response": (1 - control) * (hard & think)[:, None],
            "short: control": control * short[:, None],
            "short: response": (1 - control) * short[:, None],
            "think: control": control * think[:, None],
        }
        grads = {}
        for key, part in groups.items():
            policy.zero_grad(set_to_none=True)
            only = type(adv)(tokens=adv.tokens * part, metrics={}, keep=adv.keep)
            inp = loss_inputs(learner, h, batch, None, None, only, None, mask, rows, norms, True, None)
            loss, _ = learner.algo.loss(inp)
            loss.backward()
            grads[key] = torch.cat([p.grad.flatten() for p in params if p.grad is not None]).clone()
        total = grads["all"].norm()
        for key, g in grads.items():
            sums.setdefault(f"norm/{key}", []).append(float(g.norm()))
        cos = torch.nn.functional.cosine_similarity
        pairs = [
            ("hard think: response", "short: response"),
            ("hard think: response", "hard think: control"),
            ("hard think: response", "all"),
        ]
        for a, c in pairs:
            sums.setdefault(f"cos/{a} ~ {c}", []).append(float(cos(grads[a], grads[c], dim=0)))
        limit = learner.settings.max_grad_norm
        clip = min(1.0, limit / max(float(total), 1e-12)) if limit > 0 else 1.0
        sums.setdefault("clip factor", []).append(clip)
        sums.setdefault("hard think: response, after clipping", []).append(
            clip * float(grads["hard think: response"].norm())
        )
        sums.setdefault("hard think samples", []).append(float((hard & think).sum()))
        sums.setdefault("short samples", []).append(float(short.sum()))
    verifiers.close()
    return {k: statistics.fmean(v) for k, v in sums.items()}


def probe_first_token(policy_dir: str) -> dict[str, float]:
    """On the easy held-out prompts: mean P(<short>), P(<think>), P(best other first token), and how
    often that other token is the argmax (a greedy format failure)."""
    learner, task, verifiers, _ = build_learner(policy_dir, 0)
    verifiers.close()
    policy, control = learner.policy, learner.control
    easy = [p for p in task.problems("test") if p.difficulty == "easy"]
    p_short, p_think, p_other, argmax_other = [], [], [], 0
    with torch.no_grad():
        for p in easy:
            ids = torch.tensor([learner.prompts(p)])
            probs = policy(ids).logits[0, -1].float().softmax(-1)
            ps, pt = float(probs[control.short_id]), float(probs[control.think_id])
            rest = probs.clone()
            rest[[control.short_id, control.think_id]] = 0
            p_short.append(ps)
            p_think.append(pt)
            p_other.append(float(rest.max()))
            argmax_other += float(rest.max()) > max(ps, pt)
    return {
        "P(<short>)": statistics.fmean(p_short),
        "P(<think>)": statistics.fmean(p_think),
        "P(best other)": statistics.fmean(p_other),
        "argmax is another token": argmax_other / len(easy),
        "easy prompts": len(easy),
    }


def probe_pool_vs_heldout(policy_dir: str, n: int = 200) -> dict[str, float]:
    """Greedy accuracy with the mode forced (hard: `<think>`, medium: `<short>`) on the problems RL
    trained on (its pool: each hard item is drawn ~4-5 times in 200 steps) and on held-out ones: a
    gain on the first alone is memorised, not learnt."""
    from rlreason.policy.sample_records import EvalSettings, generate_records

    learner, task, verifiers, _ = build_learner(policy_dir, 0)
    settings = EvalSettings(max_new_tokens=48, batch_size=64)
    out = {}
    for level, mode in (("hard", "think"), ("medium", "short")):
        pool = list({p.prompt: p for p in task.problems("train") if p.difficulty == level}.values())[:n]
        held = [p for p in task.problems("test") if p.difficulty == level][:n]
        for split, problems in (("RL pool", pool), ("held out", held)):
            ids = [learner.prompts(p) for p in problems]
            records = generate_records(
                learner.policy, learner.tokenizer, learner.control, problems, ids, learner.verifier, settings,
                force_mode=mode,
            )  # fmt: skip
            key = f"{level}, <{mode}> forced, greedy: {split} ({len(problems)})"
            out[key] = statistics.fmean(r["correct"] for r in records)
    verifiers.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--probe", nargs="*", default=[], help="policy dirs (or run dirs) to probe")
    ap.add_argument("--batches", type=int, default=4, help="rollout batches per gradient probe (0: none)")
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=["experiments/lab/thinkless.yaml", "experiments/lab/thinkless_grpo.yaml", "experiments/lab/grpo.yaml"],
        help="whose loss the gradient probe splits (a recipe, optionally ':key=value,key=value' overrides)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs: dict[str, dict[int, dict]] = {}
    for name, pattern in VARIANTS.items():
        for seed in args.seeds:
            d = RUNS / pattern.format(seed=seed)
            if (d / "results.json").is_file():
                runs.setdefault(name, {})[seed] = curves(d)
    report: dict[str, Any] = {"seeds": args.seeds, "a": part_a(runs), "b": part_b(runs), "c": part_c(args.seeds)}
    for target in args.probe:
        policy = str(Path(target) / "policy") if (Path(target) / "policy").is_dir() else target
        print(f"\nprobe {policy}")
        entry: dict[str, Any] = {"first_token": probe_first_token(policy), "pool": probe_pool_vs_heldout(policy)}
        for k, v in {**entry["first_token"], **entry["pool"]}.items():
            print(f"  {k:55} {v:.4f}")
        for recipe in args.recipes if args.batches else []:
            entry[recipe] = probe_gradients(policy, recipe, args.batches, seed=0)
            print(f"  gradient of {recipe}'s loss, mean over {args.batches} batches")
            for k, v in entry[recipe].items():
                print(f"    {k:53} {v:.4f}")
        report.setdefault("probe", {})[policy] = entry
    if args.probe:  # the probes are written on their own: a later run of parts (a)-(c) keeps them
        probes = {"batches": args.batches, "recipes": args.recipes, **report.pop("probe")}
        print(f"wrote {write('thinkless_why_probe', probes)}")
    print(f"wrote {write('thinkless_why', report)}")


if __name__ == "__main__":
    main()
