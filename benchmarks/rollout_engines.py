"""Rollout engines side by side: `vllm` vs `hf` vs transformers `model.generate`, same prompts, same run.

Two models: the lab policy (`--lab`, a run's `policy/` directory; default the freshly built random
lab-tiny with its control tokens) and a random Qwen2 of the Qwen2.5-0.5B shape (hidden 896, 24 layers,
14 heads / 2 KV heads, MLP 4864, tied embeddings) with the real 151,936-token vocabulary, each in
float32 and bfloat16. Two settings: `equal_tokens` (EOS off everywhere, `min_new_tokens` for
`generate`, so every response has exactly `--new` tokens) and `natural_eos` (all stop at EOS; lengths
may differ and are reported). Repeats are interleaved (engine order rotated every repeat); the table
shows medians, tokens/s counts the generated response tokens. For vLLM also: the engine's start-up
(import and build, once) and one weight sync (`reload_weights` + `reset_prefix_cache`), and the
float32 parity max |log pi_vllm - log pi_trainer| of the sampled tokens.

Prints a table and writes benchmarks/results/rollout_engines.json. One thread (`OMP_NUM_THREADS=1`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rollout_engines.py [--n 32] [--new 32] [--repeats 3] \
        [--models lab,qwen05] [--dtypes float32,bfloat16] [--engines vllm,hf,generate] [--rl-steps N]

The sync target (one sync < 2 % of a rollout) is measured at the issue's size:
`--models qwen05 --n 256 --new 64 --dtypes bfloat16 --engines vllm --settings equal_tokens`.
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
from _repro import BENCH_VLLM, bench_logging

from rlreason.policy.padding import left_pad
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams, build_backend
from rlreason.policy.vllm_engine import current_engine, shutdown_engine

RESULTS = Path(__file__).parent / "results"
QWEN05 = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


def lab_model(path: str | None) -> tuple[torch.nn.Module, int, int, list[list[int]]]:
    """(model, eos id, pad id, prompts) of the lab policy: lab-arith test prompts, byte tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlreason.policy.control_tokens import setup_control_tokens
    from rlreason.policy.lab_tiny import build_lab_tiny
    from rlreason.tasks.lab_arith import LabArith

    if path is None:
        path = str(build_lab_tiny(Path(tempfile.mkdtemp(prefix="bench-lab-")) / "lab"))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    setup_control_tokens(model, tok)
    problems = LabArith(n_test_per_level=50).problems("test")
    prompts = [tok(p.prompt, add_special_tokens=False)["input_ids"] for p in problems]
    return model, tok.eos_token_id, tok.pad_token_id, prompts


def qwen05_model() -> tuple[torch.nn.Module, int, int, list[list[int]]]:
    """A random Qwen2.5-0.5B-shaped model; prompts are 24-40 random ids of the real vocabulary."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN05, eos_token_id=151643, pad_token_id=151643)).float()
    gen = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(0, 151000, (int(torch.randint(24, 41, (1,), generator=gen)),), generator=gen).tolist()
        for _ in range(512)
    ]
    return model, 151643, 151643, prompts


def run_generate(model: torch.nn.Module, prompts: list[list[int]], params: SamplingParams, eos: int, pad: int) -> int:
    ids, mask = left_pad(prompts, pad)
    extra = {"min_new_tokens": params.max_new_tokens} if not params.stop_on_eos else {}
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=params.temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=eos,
            pad_token_id=pad,
            **extra,
        )
    resp = out[:, ids.shape[1] :]
    ended = (resp == eos).int().cumsum(-1)
    keep = (ended == 0) | ((ended == 1) & (resp == eos))  # up to and including the first EOS
    return int(keep.sum())


def parity(model: torch.nn.Module, prompts: list[list[int]], gen: Any, pad: int, temperature: float) -> float:
    from rlreason.train.forward import response_logprobs

    ids, mask = left_pad(prompts, pad)
    with torch.no_grad():
        out = response_logprobs(model, ids, mask, gen.response_ids, gen.response_mask, temperature=temperature)
    return float(((out.logprobs - gen.logprobs).abs() * gen.response_mask).max())


def bench(name: str, model: torch.nn.Module, eos: int, pad: int, prompts: list[list[int]], args: Any) -> list[dict]:
    rows = []
    prompts = prompts[: args.n]
    seeds = list(range(len(prompts)))
    for dtype in args.dtypes.split(","):
        m = model.to(getattr(torch, dtype)).eval()
        shutdown_engine()
        t0 = time.perf_counter()
        engine = {"kv_cache_memory_bytes": args.kv_mib << 20, "max_model_len": 256, "dtype": dtype}
        vl = build_backend("vllm", [eos], pad, engine=engine, model_dtype=dtype)
        vl.generate(m, prompts[:2], SamplingParams(max_new_tokens=2), [0, 1])  # build + warm-up
        start = time.perf_counter() - t0
        syncs = []
        for i in range(3):
            t1 = time.perf_counter()
            vl.sync(m, i + 1)
            syncs.append(time.perf_counter() - t1)
        hf = HFRolloutBackend([eos], pad)
        for setting in args.settings.split(","):
            params = SamplingParams(max_new_tokens=args.new, temperature=1.0, stop_on_eos=setting == "natural_eos")

            def once(k: str, p: SamplingParams = params) -> int:
                if k == "vllm":
                    return int(vl.generate(m, prompts, p, seeds).response_mask.sum())  # noqa: B023
                if k == "hf":
                    return int(hf.generate(m, prompts, p, seeds).response_mask.sum())  # noqa: B023
                return run_generate(m, prompts, p, eos, pad)  # noqa: B023

            engines = args.engines.split(",")
            times: dict[str, list[float]] = {k: [] for k in engines}
            tokens: dict[str, int] = {}
            order = list(engines)
            for r in range(args.repeats):
                for k in order[r % len(order) :] + order[: r % len(order)]:
                    t = time.perf_counter()
                    tokens[k] = once(k)
                    times[k].append(time.perf_counter() - t)
            gap = None
            if dtype == "float32" and "vllm" in engines:
                gap = parity(m, prompts, vl.generate(m, prompts, params, seeds), pad, 1.0)
            sync = statistics.median(syncs)
            vllm_extra = {"engine_start_s": start, "sync_s": sync, "parity_max": gap}
            if "vllm" in engines:
                vllm_extra["sync_share_of_rollout"] = sync / statistics.median(times["vllm"])
            for k in engines:
                med = statistics.median(times[k])
                rows.append(
                    {
                        "model": name,
                        "dtype": dtype,
                        "setting": setting,
                        "engine": k,
                        "seconds": med,
                        "tokens": tokens[k],
                        "tokens_per_s": tokens[k] / med,
                        "repeats": times[k],
                        **(vllm_extra if k == "vllm" else {}),
                    }
                )
            print(
                _table([r for r in rows if r["dtype"] == dtype and r["setting"] == setting and r["model"] == name]),
                flush=True,
            )
        assert current_engine() is not None
    shutdown_engine()
    model.float()
    return rows


def _table(rows: list[dict]) -> str:
    head = (
        f"{'model':8} {'dtype':8} {'setting':12} {'engine':9} {'s (med)':>8} {'tokens':>7} {'tok/s':>8} "
        f"{'x generate':>10} {'sync s':>7} {'sync %':>6} {'start s':>7} {'parity':>8}"
    )
    base = {(r["model"], r["dtype"], r["setting"]): r["seconds"] for r in rows if r["engine"] == "generate"}
    lines = [head]
    for r in rows:
        key = (r["model"], r["dtype"], r["setting"])
        speed = f"{base[key] / r['seconds']:.2f}" if key in base else ""
        sync = f"{r['sync_s']:.3f}" if "sync_s" in r else ""
        share = f"{100 * r['sync_share_of_rollout']:.1f}" if "sync_share_of_rollout" in r else ""
        start = f"{r['engine_start_s']:.1f}" if "engine_start_s" in r else ""
        gap = f"{r['parity_max']:.1e}" if r.get("parity_max") is not None else ""
        lines.append(
            f"{r['model']:8} {r['dtype']:8} {r['setting']:12} {r['engine']:9} {r['seconds']:8.2f} {r['tokens']:7d} "
            f"{r['tokens_per_s']:8.1f} {speed:>10} {sync:>7} {share:>6} {start:>7} {gap:>8}"
        )
    return "\n".join(lines)


def rl_steps(backend: str, steps: int, out: Path) -> dict[str, float]:
    """`steps` GRPO steps of the lab recipe from a random lab-tiny at equal tokens (EOS off), through
    `rlreason run`'s own loop: medians after two warm-up steps of the step and its phases."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlreason.config import load_config
    from rlreason.train.run import run_experiment

    overrides = [
        "init.from=null",
        f"rollout.backend={backend}",
        *([BENCH_VLLM] if backend == "vllm" else []),
        "rollout.stop_on_eos=false",
        "rollout.max_new_tokens=32",
        f"optim.steps={steps}",
        *bench_logging(out),
    ]
    run_dir = run_experiment(load_config("experiments/lab/grpo.yaml", overrides))
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    row = {"backend": backend, "steps": steps}
    for phase in ("step", "rollout", "weight_sync", "forward_backward", "optimizer"):
        tag = f"perf/{phase}_time"
        if tag in acc.Tags()["scalars"]:
            row[f"{phase}_s"] = statistics.median(e.value for e in acc.Scalars(tag)[2:])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", default=None, help="the lab policy directory (default: a fresh random lab-tiny)")
    ap.add_argument("--n", type=int, default=32, help="sequences per rollout")
    ap.add_argument("--new", type=int, default=32, help="max new tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kv-mib", type=int, default=64)
    ap.add_argument("--models", default="lab,qwen05")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--engines", default="vllm,hf,generate", help="a subset of vllm,hf,generate")
    ap.add_argument("--settings", default="equal_tokens,natural_eos")
    ap.add_argument("--rl-steps", type=int, default=0, help="also time N lab GRPO steps with each backend (0: off)")
    ap.add_argument("--out", default=str(RESULTS / "rollout_engines.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[dict] = []
    load_before = os.getloadavg()
    for name in [m for m in args.models.split(",") if m]:
        model, eos, pad, prompts = lab_model(args.lab) if name == "lab" else qwen05_model()
        rows += bench(name, model, eos, pad, prompts, args)
    print("\n" + _table(rows))
    steps = []
    if args.rl_steps:
        shutdown_engine()
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):  # interleaved, order alternating
                for backend in ("hf", "vllm") if r % 2 == 0 else ("vllm", "hf"):
                    steps.append({"repeat": r, **rl_steps(backend, args.rl_steps, Path(tmp) / f"{backend}-{r}")})
                    shutdown_engine()
        print(f"\nlab GRPO step (random lab-tiny, {args.rl_steps} steps, median after 2 warm-up steps)")
        for row in steps:
            print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "models": args.models,
        "dtypes": args.dtypes,
        "engines": args.engines,
        "n": args.n,
        "new": args.new,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "rl_step": steps}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
