"""Where an RL step's time goes, per phase, next to the arithmetic it has to do.

Runs the lab GRPO (experiments/lab/grpo.yaml), DeGRPO (thinkless.yaml) and L2T (l2t.yaml) recipes
for a few steps from the SFT policy and reads the per-phase `perf/<phase>_time` scalars every step
logs (rlreason/train/metrics.py), `perf/step_time` (the whole `training_step`) and the events' wall
clock: the time between two step ends minus the second step's `perf/step_time` is what happens
outside `training_step` (the Lightning loop, callbacks, logging). The first step is dropped (warm-up).

Each phase gets an **arithmetic floor**: its FLOPs from the model's matmul parameter count N and the
tokens it processes T (forward 2 N T, forward + backward 6 N T, plus the attention term 4 L d ctx per
token), divided by this machine's fp32 matmul throughput, measured with GEMMs at the model's own shapes
(the decode shape [rows, d] x [d, ffn] for the rollout, the training shape [rows * seq, d] x [d, ffn]
for the other passes), and at the best of those, a 1024-row chunk and a large square GEMM (on this
machine the small shapes that stay in L2 are the fastest). The optimiser's floor is memory traffic
(AdamW reads and writes parameters, gradients and two moments) over the measured copy bandwidth.
measured / floor says how far a phase is from the arithmetic: near 1 it is compute-bound, far above it
is Python and framework overhead (per decoding step, for the rollout).

Prints a table per recipe and thread count and writes benchmarks/results/step_profile.json.

    .venv/bin/python benchmarks/step_profile.py [--sft runs/lab-sft/<v>/policy] [--sft-l2t <dir>] \
        [--steps 5] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import rlreason.components  # noqa: F401
from rlreason.config import load_config

RESULTS = Path(__file__).parent / "results"
RECIPES = {
    "grpo": "experiments/lab/grpo.yaml",
    "degrpo": "experiments/lab/thinkless.yaml",
    "l2t": "experiments/lab/l2t.yaml",
    "l2t_fast": "experiments/lab/l2t_fast.yaml",  # the opt-in fast paths (not in the default run)
}
PHASES = ("rollout", "verify", "reference", "reward", "values", "advantages", "forward_backward", "optimizer")


# -- this machine's throughput ----------------------------------------------------------------------


def gemm_flops_per_s(m: int, k: int, n: int, seconds: float = 0.3) -> float:
    """Measured fp32 FLOP/s of an [m, k] x [k, n] matmul: the fastest of repeats for `seconds` (a floor
    should be optimistic, and on a shared machine the fastest repeat is the least disturbed)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.matmul(a, b, out=out)  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t = time.perf_counter()
        torch.matmul(a, b, out=out)
        times.append(time.perf_counter() - t)
    return 2 * m * k * n / min(times)


def copy_bytes_per_s(numel: int = 16 * 2**20) -> float:
    """Measured memory bandwidth: bytes read + written by a large fp32 copy."""
    src, dst = torch.randn(numel), torch.empty(numel)
    dst.copy_(src)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t)
    return 2 * 4 * numel / min(times)


def machine(d: int, ffn: int, rows: int, seq: int) -> dict[str, float]:
    """GEMM throughput at the model's shapes, at a 1024-row chunk and at a large square GEMM; `best_gemm_flops`
    (the fastest of them) gives the tightest floor, what any chunking of the passes could reach."""
    hw = {
        "decode_gemm_flops": gemm_flops_per_s(rows, d, ffn),  # one decoding step of the rollout batch
        "train_gemm_flops": gemm_flops_per_s(rows * seq, d, ffn),  # a pass over the whole batch
        "chunk_gemm_flops": gemm_flops_per_s(1024, d, ffn),
        "large_gemm_flops": gemm_flops_per_s(2048, 2048, 2048),
        "copy_bytes_per_s": copy_bytes_per_s(),
    }
    hw["best_gemm_flops"] = max(v for k, v in hw.items() if k.endswith("gemm_flops"))
    return hw


def decode_step_seconds(policy_dir: str, rows: int, prompt: list[int], new_tokens: int = 32) -> float:
    """Seconds per decoding step of rlreason's rollout backend for `rows` copies of `prompt`, EOS off:
    with one row the arithmetic is negligible, so this is the per-step Python / framework cost."""
    from transformers import AutoModelForCausalLM

    from rlreason.policy.rollout import HFRolloutBackend, SamplingParams

    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    backend = HFRolloutBackend([model.config.eos_token_id], model.config.pad_token_id)
    params = SamplingParams(max_new_tokens=new_tokens, temperature=1.0, stop_on_eos=False)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        backend.generate(model, [prompt] * rows, params, list(range(rows)))
        best = min(best, time.perf_counter() - t)
    return best / new_tokens


def rollout_op_shares(policy_dir: str, rows: int, prompt: list[int], top: int = 8) -> dict[str, float]:
    """Share of self CPU time per aten op in one rollout of `rows` rows (EOS off): GEMMs (mm, addmm) vs
    the KV cache's concatenations (cat), attention and the elementwise rest."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    from rlreason.policy.rollout import HFRolloutBackend, SamplingParams

    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    backend = HFRolloutBackend([model.config.eos_token_id], model.config.pad_token_id)
    params = SamplingParams(max_new_tokens=32, temperature=1.0, stop_on_eos=False)
    backend.generate(model, [prompt] * rows, params, list(range(rows)))  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        backend.generate(model, [prompt] * rows, params, list(range(rows)))
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in ops)
    ranked = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {e.key.removeprefix("aten::"): e.self_cpu_time_total / total for e in ranked}


# -- the model's arithmetic -------------------------------------------------------------------------


def model_shape(policy_dir: str) -> dict[str, int]:
    """N (parameters in matmuls, the tied LM head counted: it is a matmul per token), all parameters,
    layers, width and FFN width of the policy."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    c = model.config
    return {
        "matmul_params": linear,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": c.num_hidden_layers,
        "d": c.hidden_size,
        "ffn": c.intermediate_size,
    }


def pass_flops(shape: dict[str, int], tokens: float, seq: float) -> float:
    """Forward FLOPs of `tokens` tokens at mean context `seq`: 2 N per token plus attention
    (QK^T and AV: 2 x 2 d ctx per layer, ctx ~ seq / 2 on average under the causal mask)."""
    return tokens * (2 * shape["matmul_params"] + 4 * shape["layers"] * shape["d"] * seq / 2)


def phase_flops(shape: dict[str, int], work: dict[str, float], algo: dict[str, Any]) -> dict[str, Any]:
    """Per phase: (FLOPs, the throughput key they run at), or None where a phase does no model arithmetic.
    The optimiser's entry is bytes of memory traffic instead."""
    n, p, r = work["rows"], work["prompt_len"], work["response_len"]
    fwd = pass_flops(shape, n * (p + r), p + r)
    train = "train_gemm_flops"
    return {
        # prefill of the prompts, then one token per row per decoding step with the KV cache
        "rollout": [(pass_flops(shape, n * p, p), train), (pass_flops(shape, n * r, p + r), "decode_gemm_flops")],
        "verify": None,
        "reference": [(fwd, train)] if algo["beta"] > 0 else None,
        # info_gain: forced-answer scoring and the JVP's primal pass, about a forward each (tangents only
        # through the last block); binary / thinkless do no model arithmetic
        "reward": [(2 * fwd, train)] if algo["reward"] == "info_gain" else None,
        "values": [(fwd, train)] if algo["values"] else None,
        "advantages": None,
        "forward_backward": [(3 * fwd, train)],
        # AdamW: read param, grad, m, v; write param, m, v (fp32)
        "optimizer": [(7 * 4 * shape["params"], "copy_bytes_per_s")],
    }


def floor_s(parts: list[tuple[float, str]] | None, hw: dict[str, float], best: bool = False) -> float | None:
    """Seconds of a phase's arithmetic at the measured throughput of its shapes (or at the best measured)."""
    if parts is None:
        return None
    return sum(x / (hw["best_gemm_flops"] if best and key != "copy_bytes_per_s" else hw[key]) for x, key in parts)


# -- a profiled run ---------------------------------------------------------------------------------


def run_recipe(recipe: str, init: str, steps: int, out: Path) -> Path:
    from rlreason.train.run import run_experiment

    cfg = load_config(
        recipe,
        [
            f"init.from={init}",
            f"optim.steps={steps}",
            "eval.n=3",
            "eval.every_n_steps=0",
            "eval.per_mode=false",
            "logging.samples_every_n_steps=0",
            "logging.progress_bar=false",
            "logging.histograms=false",
            "logging.checkpoint_every_n_steps=0",
            f"logging.dir={out}",
        ],
    )
    return run_experiment(cfg)


def read_profile(run_dir: Path) -> dict[str, Any]:
    """Mean seconds per step of every logged phase, the step, the time outside it, and the step's work,
    over the steps after the first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def values(tag: str) -> list[float]:
        return [e.value for e in acc.Scalars(tag)][1:]

    step_events = acc.Scalars("perf/step_time")
    walls = [e.wall_time for e in step_events]
    outside = [b - a - e.value for a, b, e in zip(walls[1:-1], walls[2:], step_events[2:], strict=True)]
    phases = {p: statistics.mean(values(f"perf/{p}_time")) for p in PHASES if f"perf/{p}_time" in tags}
    step = statistics.mean(values("perf/step_time"))
    return {
        "phases": phases,
        "in_step_glue": step - sum(phases.values()),
        "step": step,
        "outside_step": statistics.mean(outside),
        "wall_per_step": step + statistics.mean(outside),
        "response_len": statistics.mean(values("train/response_len_mean")),
        "decode_steps": statistics.mean(values("train/response_len_max")),  # the rollout loops to the longest
        "logged_phase_keys": sorted(t for t in tags if t.startswith("perf/") and t.endswith("_time")),
    }


def prompt_len(recipe: str, tokenizer: Any) -> tuple[int, float]:
    """Rows per rollout and mean prompt tokens of the recipe's problems."""
    from omegaconf import OmegaConf

    from rlreason.registry import TASKS

    cfg = load_config(recipe)
    problems = TASKS.build(OmegaConf.to_container(cfg.task), where="task").problems("train")[:256]
    mean = statistics.mean(len(tokenizer(p.prompt)["input_ids"]) for p in problems)
    return cfg.rollout.group_size * cfg.rollout.prompts_per_step, mean


def algo_traits(recipe: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from rlreason.registry import ALGOS

    cfg = load_config(recipe)
    algo = ALGOS.build(OmegaConf.to_container(cfg.algo), where="algo")
    return {"beta": algo.beta, "values": bool(algo.needs_values), "reward": cfg.reward.name}


def profile(name: str, recipe: str, init: str, steps: int, tmp: Path, shape: dict, hw: dict) -> dict[str, Any]:
    from transformers import AutoTokenizer

    prof = read_profile(run_recipe(recipe, init, steps, tmp / name))
    rows, plen = prompt_len(recipe, AutoTokenizer.from_pretrained(init))
    work = {"rows": rows, "prompt_len": plen, "response_len": prof["response_len"]}
    arithmetic = phase_flops(shape, work, algo_traits(recipe))
    wall = prof["wall_per_step"]
    table = {}
    for phase, s in prof["phases"].items():
        f, f_best = floor_s(arithmetic.get(phase), hw), floor_s(arithmetic.get(phase), hw, best=True)
        table[phase] = {
            "s": s,
            "share": s / wall,
            "floor_s": f,
            "ratio": s / f if f else None,
            "floor_at_best_s": f_best,
            "ratio_to_best": s / f_best if f_best else None,
        }
    table["in_step_glue"] = {"s": prof["in_step_glue"], "share": prof["in_step_glue"] / wall}
    table["outside_step"] = {"s": prof["outside_step"], "share": prof["outside_step"] / wall}
    decode = prof["decode_steps"]
    per_decode = prof["phases"].get("rollout", 0.0) / max(decode, 1.0)
    decode_arith = floor_s(arithmetic["rollout"], hw) / max(decode, 1.0)
    padded = (plen + decode) / (plen + prof["response_len"])  # the passes run on [rows, prompt + longest]
    return {
        "recipe": recipe,
        "init": init,
        "steps_measured": steps - 1,
        "work": work | {"decode_steps": decode, "padding_factor": padded},
        "step_s": prof["step"],
        "wall_per_step_s": wall,
        "phases": table,
        "rollout_per_decoding_step": {
            "s": per_decode,
            "arithmetic_s": decode_arith,
            "ratio": per_decode / decode_arith,
        },
        "logged_phase_keys": prof["logged_phase_keys"],
    }


def print_profile(name: str, threads: int, p: dict[str, Any]) -> None:
    print(
        f"\n{name} ({p['recipe']}), {threads} thread(s): {p['wall_per_step_s']:.3f} s per step wall, "
        f"{p['work']['rows']} rows, prompt {p['work']['prompt_len']:.1f} + response "
        f"{p['work']['response_len']:.1f} tokens, {p['work']['decode_steps']:.0f} decoding steps, batch passes "
        f"padded {p['work']['padding_factor']:.1f}x"
    )
    print(f"{'phase':18} {'s/step':>8} {'share':>7} {'floor s':>9} {'x floor':>8} {'x best floor':>12}")
    for phase, row in p["phases"].items():
        f, ratio, best = row.get("floor_s"), row.get("ratio"), row.get("ratio_to_best")
        fs = f"{f:9.4f}" if f else f"{'-':>9}"
        rs = f"{ratio:8.0f}" if ratio else f"{'-':>8}"
        bs = f"{best:12.0f}" if best else f"{'-':>12}"
        print(f"{phase:18} {row['s']:8.3f} {row['share']:7.1%} {fs} {rs} {bs}")
    d = p["rollout_per_decoding_step"]
    print(
        f"rollout per decoding step: {d['s'] * 1e3:.2f} ms measured vs {d['arithmetic_s'] * 1e3:.3f} ms of "
        f"arithmetic ({d['ratio']:.0f}x)"
    )


def load_problem_prompt() -> str:
    """One lab-arith training prompt (for the decoding-step microbenchmark)."""
    from omegaconf import OmegaConf

    from rlreason.registry import TASKS

    cfg = load_config(RECIPES["grpo"])
    return TASKS.build(OmegaConf.to_container(cfg.task), where="task").problems("train")[0].prompt


def default_inits(sft: str | None, sft_l2t: str | None) -> tuple[str, str, str]:
    """The lab SFT policy (run if missing), and L2T's own SFT stage if it has been trained, else the lab
    SFT policy; the third value says which."""
    from rlreason.train.run import config_hash, resolve_init

    sft = sft or resolve_init(load_config(RECIPES["grpo"]))
    if sft_l2t:
        return sft, sft_l2t, "given"
    stage = load_config("experiments/lab/sft_l2t.yaml", [f"logging.dir={load_config(RECIPES['l2t']).logging.dir}"])
    trained = Path(stage.logging.dir) / stage.name / f"auto-{config_hash(stage)}" / "policy"
    if (trained / "config.json").is_file():
        return sft, str(trained), "trained sft_l2t stage"
    return sft, sft, "no trained sft_l2t stage: the lab SFT policy instead"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft", default=None, help="SFT policy for GRPO and DeGRPO (default: the lab SFT stage)")
    ap.add_argument("--sft-l2t", default=None, help="SFT policy for L2T (default: its trained stage, else --sft)")
    ap.add_argument("--steps", type=int, default=5, help="steps per recipe (the first is dropped)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--recipes", nargs="+", default=["grpo", "degrpo", "l2t"], choices=list(RECIPES))
    a = ap.parse_args()
    sft, sft_l2t, l2t_note = default_inits(a.sft, a.sft_l2t)
    shape = model_shape(sft)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sft)
    rows, plen = prompt_len(RECIPES["grpo"], tok)
    before = os.getloadavg()
    result: dict[str, Any] = {
        "model": shape,
        "l2t_init": l2t_note,
        "load_before": " ".join(f"{x:.2f}" for x in before) + f" ({os.cpu_count()} cores)",
        "by_threads": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for threads in a.threads:
            torch.set_num_threads(threads)
            hw = machine(shape["d"], shape["ffn"], rows, int(plen + 30))
            prompt = tok(load_problem_prompt())["input_ids"]
            overhead = {
                "decode_step_1_row_s": decode_step_seconds(sft, 1, prompt),
                f"decode_step_{rows}_rows_s": decode_step_seconds(sft, rows, prompt),
            }
            ops = rollout_op_shares(sft, rows, prompt)
            block: dict[str, Any] = {"machine": hw, "decode_overhead": overhead, "rollout_ops": ops, "recipes": {}}
            for name in a.recipes:
                init = sft_l2t if name.startswith("l2t") else sft
                block["recipes"][name] = profile(
                    name, RECIPES[name], init, a.steps, Path(tmp) / str(threads), shape, hw
                )
                print_profile(name, threads, block["recipes"][name])
            result["by_threads"][str(threads)] = block
            print(
                f"machine, {threads} thread(s): decode GEMM {hw['decode_gemm_flops'] / 1e9:.1f}, training GEMM "
                f"{hw['train_gemm_flops'] / 1e9:.1f}, 1024-row chunk {hw['chunk_gemm_flops'] / 1e9:.1f}, 2048^3 "
                f"{hw['large_gemm_flops'] / 1e9:.1f} GFLOP/s; copy "
                f"{hw['copy_bytes_per_s'] / 1e9:.1f} GB/s; a decoding step of the rollout backend "
                f"(EOS off): {overhead['decode_step_1_row_s'] * 1e3:.2f} ms with 1 row, "
                f"{overhead[f'decode_step_{rows}_rows_s'] * 1e3:.2f} ms with {rows}; its ops: "
                + ", ".join(f"{op} {share:.0%}" for op, share in ops.items())
            )
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores)"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "step_profile.json"
    old = json.loads(out.read_text()) if out.is_file() else {}
    for threads, block in old.get("by_threads", {}).items():  # keep the recipes and thread counts not re-run
        if threads in result["by_threads"]:
            kept = {k: v for k, v in block["recipes"].items() if k not in result["by_threads"][threads]["recipes"]}
            result["by_threads"][threads]["recipes"] = {**kept, **result["by_threads"][threads]["recipes"]}
        else:
            result["by_threads"][threads] = block
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
