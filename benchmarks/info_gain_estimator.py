"""The information-gain estimator: (a) accuracy of the JVP penalty and of cheaper parameter subsets,
(b) its cost in a training step.

(a) On a batch of lab rollouts from the SFT policy moved away from its snapshot by a few GRPO-like
    random steps: the JVP penalty equals the explicit per-episode gradient dot product (autograd
    backward per episode) to 1e-5 relative; and for each subset / projection the Spearman rank
    correlation of its per-episode penalty with the full-parameter penalty.
(b) Training step time with `info_gain` vs `binary` (same run settings, same model, L2T-PPO vs GRPO
    on the same rollouts budget), target overhead <= 30 %.

Prints tables and writes benchmarks/results/info_gain_estimator.json.

    .venv/bin/python benchmarks/info_gain_estimator.py [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.config import load_config
from rlreason.policy.episodes import segment_batch
from rlreason.policy.load import load_policy
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.rewards.info_gain import InfoGain, directional_logprobs, subset_names
from rlreason.tasks.lab_arith import LabArith
from rlreason.train.collect import collect_rollout
from rlreason.train.run import cache_dir, resolve_init, run_experiment

RESULTS = Path(__file__).parent / "results"


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def accuracy_part(init: str, n_prompts: int) -> dict:
    cfg = load_config("experiments/lab/l2t.yaml")
    cfg.model.name_or_path = init
    model, tok, control = load_policy(cfg.model, cache_dir=cache_dir())
    model.double()
    problems = [p for p in LabArith().problems("train") if p.difficulty != "easy"][:n_prompts]
    backend = HFRolloutBackend([tok.eos_token_id], tok.pad_token_id)
    batch = collect_rollout(
        model,
        tok,
        backend,
        problems,
        [tok(p.prompt)["input_ids"] for p in problems],
        SamplingParams(max_new_tokens=48),
        group_size=4,
        seed=0,
        step=0,
        control=control,
    )
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # Delta_theta: a small random move, as a few optimiser steps would make
        for p in model.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    eps = segment_batch(batch.response_ids, batch.response_mask, tok, "lab", control.canonicalize)
    spans = [(i, a, b) for i, e in enumerate(eps) for a, b in e.spans]

    def penalties(subset: str) -> tuple[torch.Tensor, float]:
        reward = InfoGain(params=subset, rank=16, batch_size=16)
        tangent, _ = reward.tangent(model, initial)
        t = time.perf_counter()
        d = directional_logprobs(model, batch, tangent, 16)
        dt = time.perf_counter() - t
        return torch.stack([d[i, a:b].sum() ** 2 for i, a, b in spans]), dt

    full, t_full = penalties("all")
    # explicit check on the full-parameter penalty: one backward per episode
    reward = InfoGain(params="all")
    tangent, _ = reward.tangent(model, initial)
    names = subset_names(model, "all")
    params = dict(model.named_parameters())
    ids = torch.cat([batch.prompt_ids, batch.response_ids], 1)
    mask = torch.cat([batch.prompt_mask, batch.response_mask], 1)
    explicit = []
    t0 = time.perf_counter()
    for i, a, b in spans:
        valid = mask[i].bool()  # one unpadded sequence: no fully masked attention rows
        seq = ids[i][valid].unsqueeze(0)
        n_resp = int(batch.response_mask[i].sum())
        logits = model(input_ids=seq).logits[0]
        resp_tokens = batch.response_ids[i, :n_resp]
        lp = torch.log_softmax(logits[-n_resp - 1 : -1].double(), -1).gather(-1, resp_tokens[:, None]).squeeze(-1)
        grads = torch.autograd.grad(lp[a:b].sum(), [params[n] for n in names])
        explicit.append(sum((g * tangent[n]).sum() for g, n in zip(grads, names)) ** 2)
    t_explicit = time.perf_counter() - t0
    explicit_t = torch.stack(explicit).detach()
    nonzero = explicit_t.abs() > 1e-30  # a zero penalty (no movement along g_k) must also be zero by JVP
    rel = float(((full - explicit_t).abs()[nonzero] / explicit_t.abs()[nonzero]).max())
    assert not bool((full[~nonzero].abs() > 1e-20).any())
    rows = []
    for subset in ("last_block", "lm_head", "random_projection"):
        pen, dt = penalties(subset)
        rows.append({"subset": subset, "spearman_vs_all": spearman(pen, full), "seconds": dt})
    return {
        "episodes": len(spans),
        "max_rel_error_jvp_vs_explicit": rel,
        "jvp_all_seconds": t_full,
        "explicit_backward_seconds": t_explicit,
        "subsets": rows,
    }


def cost_part(init: str, steps: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in {
            "binary + grpo": ["reward={name: binary}", "algo={name: grpo, loss_type: grpo}"],
            "info_gain + l2t_ppo": [],
        }.items():
            cfg = load_config(
                "experiments/lab/l2t.yaml",
                [
                    f"init.from={init}",
                    f"optim.steps={steps}",
                    "eval.n=3",
                    "eval.every_n_steps=0",
                    "logging.samples_every_n_steps=0",
                    "logging.progress_bar=false",
                    f"logging.dir={tmp}/{len(out)}",
                    "logging.histograms=false",
                    *overrides,
                ],
            )
            run_dir = run_experiment(cfg)
            acc = EventAccumulator(str(run_dir))
            acc.Reload()
            times = [e.value for e in acc.Scalars("perf/step_time")][1:]
            out[name] = sum(times) / len(times)
    return {"step_seconds": out, "overhead": out["info_gain + l2t_ppo"] / out["binary + grpo"] - 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=8)
    args = ap.parse_args()
    init = resolve_init(load_config("experiments/lab/l2t.yaml"))
    acc = accuracy_part(init, args.prompts)
    cost = cost_part(init, args.steps)
    print(
        f"(a) {acc['episodes']} episodes: JVP vs explicit backward, max relative error "
        f"{acc['max_rel_error_jvp_vs_explicit']:.2e} (target <= 1e-5); JVP {acc['jvp_all_seconds']:.2f}s vs "
        f"per-episode backward {acc['explicit_backward_seconds']:.2f}s"
    )
    print(f"{'subset':20} {'Spearman vs all':>16} {'seconds':>8}")
    for r in acc["subsets"]:
        print(f"{r['subset']:20} {r['spearman_vs_all']:>16.3f} {r['seconds']:>8.2f}")
    print("(b) training step time, same run settings:")
    for k, v in cost["step_seconds"].items():
        print(f"    {k:22} {v:.2f} s")
    print(f"    info_gain overhead: {100 * cost['overhead']:.0f} % (target <= 30 %)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "info_gain_estimator.json").write_text(json.dumps({"accuracy": acc, "cost": cost}, indent=2))


if __name__ == "__main__":
    main()
