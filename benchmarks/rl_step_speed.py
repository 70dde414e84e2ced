"""GRPO training throughput: rlreason vs TRL's GRPOTrainer, and rollout speed vs `model.generate`, at equal work.

Generated length decides most of an RL step's cost, so the two sides are compared where they do the
same work: `equal_tokens` disables EOS on both (rlreason `rollout.stop_on_eos=false`; TRL and
`generate` get `min_new_tokens = max_new_tokens`, which masks EOS until the budget is spent), so every
completion has exactly `--max-new-tokens` tokens; this is checked from each side's logged lengths.
`natural_eos` (both stop at EOS) is reported separately: there the sides may generate different lengths.

Both sides: the same model (the lab SFT policy), the same prompts in the same order (rlreason's
step order, handed to TRL unshuffled), group size, loss (`dapo`, the lab recipe's token-level loss;
beta 0, one iteration, group-scaled advantages), AdamW at the same constant lr, no gradient
checkpointing (TRL's default is on), fp32, one process. Repeats are interleaved (ABBA order) so load
drift hits both sides alike; a step's time is the wall clock between consecutive step ends (everything
the training loop does per step: Lightning / HF Trainer loop, callbacks, logging), the first two steps
dropped as warm-up. Ratios are per repeat (same repeat, paired), then median and min/max.

Prints a table and writes benchmarks/results/rl_step_speed.json (with the machine load before and
after). TRL is a benchmark-only extra: ``.venv/bin/pip install -e ".[bench]"``.

    .venv/bin/python benchmarks/rl_step_speed.py [--model runs/lab-sft/<v>/policy] [--steps 6] [--repeats 3]
        [--backend hf|vllm]   # rlreason's rollout engine in the training runs (TRL samples with generate)
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

import rlreason.components  # noqa: F401
from rlreason.config import load_config
from rlreason.policy.load import load_policy
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams

RESULTS = Path(__file__).parent / "results"
RECIPE = "experiments/lab/grpo.yaml"
SETTINGS = ("equal_tokens", "natural_eos")
WARMUP_STEPS = 2  # steps whose end starts the first measured interval


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(repeats: list[dict[str, float]]) -> dict[str, Any]:
    keys = [k for k, v in repeats[0].items() if isinstance(v, float | int)]
    return {**{k: spread([r[k] for r in repeats]) for k in keys}, "repeats": repeats}


def throughput(ends: list[float], tokens: list[float], n: int) -> dict[str, float]:
    """Samples/s and tokens/s over the intervals between the step ends after the warm-up."""
    intervals = [b - a for a, b in zip(ends[WARMUP_STEPS - 1 : -1], ends[WARMUP_STEPS:], strict=True)]
    measured = tokens[WARMUP_STEPS:]
    total = sum(intervals)
    return {
        "step_s": statistics.median(intervals),
        "samples_per_s": n * len(intervals) / total,
        "tokens_per_s": sum(measured) / total,
        "tokens_per_sample": sum(measured) / (n * len(measured)),
    }


# -- the sides ------------------------------------------------------------------------------------


def step_problems(cfg: Any, steps: int) -> list[Any]:
    """The problems rlreason's data module serves, step after step (seeded order, one rank)."""
    from omegaconf import OmegaConf

    from rlreason.registry import TASKS
    from rlreason.train.data import StepDataset

    task = TASKS.build(OmegaConf.to_container(cfg.task), where="task")
    ds = StepDataset(task.problems("train"), steps, cfg.rollout.prompts_per_step, cfg.seed)
    return [p for k in range(steps) for p in ds[k]]


def rlreason_overrides(a: argparse.Namespace, setting: str, out: Path) -> list[str]:
    return [
        f"init.from={a.model}",
        f"optim.steps={a.steps}",
        f"optim.lr={a.lr}",
        f"rollout.group_size={a.group}",
        f"rollout.prompts_per_step={a.prompts}",
        f"rollout.max_new_tokens={a.max_new_tokens}",
        f"rollout.stop_on_eos={setting == 'natural_eos'}".lower(),
        "algo.loss_type=dapo",
        "algo.beta=0.0",
        *bench_logging(out),
        f"optim.micro_batch_tokens={a.micro_batch_tokens}",
        f"optim.dedup_sequences={a.dedup_sequences}".lower(),
        f"rollout.backend={a.backend}",
        *([BENCH_VLLM] if a.backend == "vllm" else []),
    ]


def bench_rlreason(a: argparse.Namespace, setting: str, out: Path) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlreason.train.run import run_experiment

    run_dir = run_experiment(load_config(RECIPE, rlreason_overrides(a, setting, out)))
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    step_time = acc.Scalars("perf/step_time")
    n = a.group * a.prompts
    lengths = [e.value for e in acc.Scalars("train/response_len_mean")]
    longest = [e.value for e in acc.Scalars("train/response_len_max")]
    out_row = throughput([e.wall_time for e in step_time], [n * x for x in lengths], n)
    out_row["in_step_s"] = statistics.median(e.value for e in step_time[WARMUP_STEPS:])
    measured = slice(WARMUP_STEPS, None)
    update = [
        a.value + b.value for a, b in zip(acc.Scalars("perf/forward_backward_time"), acc.Scalars("perf/optimizer_time"))
    ]
    out_row["update_s"] = statistics.median(update[measured])  # forward-backward + optimiser: what no rollout saves
    out_row["rollout_s"] = statistics.median(e.value for e in acc.Scalars("perf/rollout_time")[measured])
    out_row["min_len"] = min(lengths)  # a lower bound of the shortest (only mean and max are logged)
    out_row["max_len"] = max(longest)
    return out_row


def bench_trl(a: argparse.Namespace, setting: str, out: Path) -> dict[str, float]:
    from datasets import Dataset
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlreason.registry import TASKS
    from rlreason.verify.task_verifier import RunVerifiers

    cfg = load_config(RECIPE, rlreason_overrides(a, setting, out))
    problems = step_problems(cfg, a.steps)
    verifiers = RunVerifiers()  # the benchmark's own pools, closed when TRL's run ends
    verifier = verifiers.for_task(TASKS.build(OmegaConf.to_container(cfg.task), where="task"))
    ds = Dataset.from_dict({"prompt": [p.prompt for p in problems], "gold": [p.gold for p in problems]})

    def correctness(prompts, completions, gold, **kw):
        return [float(v) for v in verifier(completions, gold)]

    ends: list[float] = []
    begins: list[float] = []
    lengths: list[dict[str, float]] = []  # TRL's logged completion lengths, one row per step

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append({k: float(v) for k, v in logs.items() if k.startswith("completions/")})

    n = a.group * a.prompts
    generation_kwargs = {"min_new_tokens": a.max_new_tokens} if setting == "equal_tokens" else None
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        use_cpu=True,
        per_device_train_batch_size=n,
        num_generations=a.group,
        max_completion_length=a.max_new_tokens,
        generation_kwargs=generation_kwargs,
        max_steps=a.steps,
        learning_rate=a.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        save_strategy="no",
        loss_type="dapo",
        beta=0.0,
        temperature=1.0,
        top_k=0,
        num_iterations=1,
        scale_rewards="group",
        disable_dropout=True,
        shuffle_dataset=False,
        bf16=False,
        seed=0,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
    )
    model = AutoModelForCausalLM.from_pretrained(a.model)
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.padding_side = "left"
    trainer = GRPOTrainer(
        model=model, reward_funcs=correctness, args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()]
    )
    try:
        trainer.train()
    finally:
        verifiers.close()
    tokens = [n * row["completions/mean_length"] for row in lengths]
    out_row = throughput(ends, tokens, n)
    out_row["in_step_s"] = statistics.median(e - b for b, e in zip(begins[WARMUP_STEPS:], ends[WARMUP_STEPS:]))
    out_row["min_len"] = min(row["completions/min_length"] for row in lengths)
    out_row["max_len"] = max(row["completions/max_length"] for row in lengths)
    return out_row


def bench_rollout(a: argparse.Namespace, model, tok, prompts: list[list[int]], setting: str, seed: int) -> dict:
    """One generation of the whole rollout batch by rlreason's backend and by `model.generate`, in an order
    that alternates with `seed` (ABBA over the repeats)."""
    from rlreason.policy.padding import left_pad

    equal = setting == "equal_tokens"
    backend = HFRolloutBackend([tok.eos_token_id], tok.pad_token_id)
    in_model = ModelClock(model)
    params = SamplingParams(max_new_tokens=a.max_new_tokens, temperature=1.0, stop_on_eos=not equal)
    ids, mask = left_pad(prompts, tok.pad_token_id)

    def ours() -> tuple[float, int]:
        in_model.reset()
        t = time.perf_counter()
        gen = backend.generate(model, prompts, params, list(range(seed * 1000, seed * 1000 + len(prompts))))
        return time.perf_counter() - t, int(gen.response_mask.sum())

    def theirs() -> tuple[float, int]:
        torch.manual_seed(seed)
        in_model.reset()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                max_new_tokens=a.max_new_tokens,
                min_new_tokens=a.max_new_tokens if equal else 0,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        dt = time.perf_counter() - t
        is_eos = (out[:, ids.shape[1] :] == tok.eos_token_id).long()
        return dt, int(((is_eos.cumsum(-1) - is_eos) == 0).sum())  # tokens up to and including the first EOS

    sides = [("rlreason", ours), ("generate", theirs)]
    timed, model_s = {}, {}
    for name, fn in sides if seed % 2 else sides[::-1]:
        timed[name] = fn()
        model_s[name] = in_model.seconds
    in_model.remove()
    return {
        name: {
            "tokens_per_s": tokens / dt,
            "tokens_per_sample": tokens / len(prompts),
            "s": dt,
            "model_s": model_s[name],
        }
        for name, (dt, tokens) in timed.items()
    }


class ModelClock:
    """Wall time spent inside the model's forward (hooks on the top module): the part of a rollout
    that our loop and `generate` share, so the rest is each loop's own overhead."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds, self._t = 0.0, 0.0
        self._hooks = [model.register_forward_pre_hook(self._start), model.register_forward_hook(self._stop)]

    def _start(self, *args: Any) -> None:
        self._t = time.perf_counter()

    def _stop(self, *args: Any) -> None:
        self.seconds += time.perf_counter() - self._t

    def reset(self) -> None:
        self.seconds = 0.0

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


# -- the run --------------------------------------------------------------------------------------


def run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cache = Path(os.environ.get("RLREASON_CACHE", Path.home() / ".cache" / "rlreason"))
    cfg = load_config(RECIPE)
    cfg.model.name_or_path = a.model
    model, tok, _ = load_policy(cfg.model, cache_dir=cache)
    problems = step_problems(load_config(RECIPE, [f"rollout.prompts_per_step={a.prompts}"]), 1)
    prompts = [tok(p.prompt)["input_ids"] for p in problems for _ in range(a.group)]

    rollout: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    train: dict[str, dict[str, list[dict]]] = {s: {"rlreason": [], "trl": []} for s in SETTINGS}
    for s in SETTINGS:
        bench_rollout(a, model, tok, prompts, s, seed=0)  # warm-up
    for r in range(a.repeats):
        for s in SETTINGS:
            for i in range(a.rollout_repeats):
                rollout[s].append(bench_rollout(a, model, tok, prompts, s, seed=1 + r * a.rollout_repeats + i))
            sides = [("rlreason", bench_rlreason), ("trl", bench_trl)]
            for name, fn in sides if r % 2 == 0 else sides[::-1]:
                train[s][name].append(fn(a, s, tmp / f"{name}-{s}-{r}"))
                print(f"[rl_step_speed] repeat {r} {s} {name}: {train[s][name][-1]}", flush=True)

    result: dict[str, Any] = {"train": {}, "rollout": {}}
    for s in SETTINGS:
        ours, trl = train[s]["rlreason"], train[s]["trl"]
        result["train"][s] = {
            "rlreason": summarise(ours),
            "trl": summarise(trl),
            "speedup_samples_per_s": spread([o["samples_per_s"] / t["samples_per_s"] for o, t in zip(ours, trl)]),
            "speedup_tokens_per_s": spread([o["tokens_per_s"] / t["tokens_per_s"] for o, t in zip(ours, trl)]),
            # the speed-up if our rollout cost nothing and the update stayed as it is (same repeat)
            "ceiling_free_rollout": spread([t["step_s"] / o["update_s"] for o, t in zip(ours, trl)]),
        }
        rows = rollout[s]
        result["rollout"][s] = {
            "rlreason": summarise([row["rlreason"] for row in rows]),
            "generate": summarise([row["generate"] for row in rows]),
            "speedup_tokens_per_s": spread(
                [r["rlreason"]["tokens_per_s"] / r["generate"]["tokens_per_s"] for r in rows]
            ),
            # the speed-up if our loop had no overhead outside the model's forward (same tokens)
            "ceiling_no_loop_overhead": spread(
                [r["generate"]["s"] / r["rlreason"]["model_s"] for r in rows] if s == "equal_tokens" else [0.0]
            ),
            "model_share": {
                side: spread([r[side]["model_s"] / r[side]["s"] for r in rows]) for side in ("rlreason", "generate")
            },
        }
    return result


def check_equal_work(result: dict[str, Any], max_new: int) -> list[str]:
    """Where an `equal_tokens` run did not generate exactly `max_new` tokens per completion."""
    problems = []
    for side in ("rlreason", "trl"):
        for row in result["train"]["equal_tokens"][side]["repeats"]:
            if not row["min_len"] == row["max_len"] == max_new:
                problems.append(f"train {side}: lengths {row['min_len']}..{row['max_len']}, not {max_new}")
    for side in ("rlreason", "generate"):
        for row in result["rollout"]["equal_tokens"][side]["repeats"]:
            if row["tokens_per_sample"] != max_new:
                problems.append(f"rollout {side}: {row['tokens_per_sample']} tokens per sample, not {max_new}")
    return problems


def fmt(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def print_table(result: dict[str, Any]) -> None:
    st = result["setup"]
    print(
        f"\nGRPO ({st['loss_type']}, beta 0) on the lab model: {st['group']} x {st['prompts']} samples/step, "
        f"<= {st['max_new_tokens']} new tokens, CPU, {st['threads']} threads; median [min, max] of "
        f"{st['repeats']} interleaved repeats; load {result['load']['before']} -> {result['load']['after']}"
    )
    head = f"{'setting':13} {'side':9} {'s/step':>18} {'samples/s':>20} {'tokens/s':>22} {'tok/sample':>10}"
    print(head)
    for s in SETTINGS:
        block = result["train"][s]
        for side in ("rlreason", "trl"):
            r = block[side]
            print(
                f"{s:13} {side:9} {fmt(r['step_s'], 3):>18} {fmt(r['samples_per_s']):>20} "
                f"{fmt(r['tokens_per_s'], 0):>22} {r['tokens_per_sample']['median']:>10.1f}"
            )
        print(
            f"{'':13} {'ratio':9} samples/s {fmt(block['speedup_samples_per_s'], 2)}, "
            f"tokens/s {fmt(block['speedup_tokens_per_s'], 2)}; ceiling with a free rollout "
            f"(TRL step / our update) {fmt(block['ceiling_free_rollout'], 2)}"
        )
    print("\nrollout of one step's batch: tokens/s, rlreason backend vs model.generate")
    for s in SETTINGS:
        block = result["rollout"][s]
        print(
            f"{s:13} rlreason {fmt(block['rlreason']['tokens_per_s'], 0):>20} "
            f"({block['rlreason']['tokens_per_sample']['median']:.1f} tok/sample)  generate "
            f"{fmt(block['generate']['tokens_per_s'], 0):>20} ({block['generate']['tokens_per_sample']['median']:.1f})"
            f"  ratio {fmt(block['speedup_tokens_per_s'], 2)}"
        )
        share = block["model_share"]
        print(
            f"{'':13} time inside the model's forward: rlreason {fmt(share['rlreason'], 2)}, generate "
            f"{fmt(share['generate'], 2)}"
            + (
                f"; ceiling with no loop overhead {fmt(block['ceiling_no_loop_overhead'], 2)}"
                if s == "equal_tokens"
                else ""
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="policy directory (default: run the lab SFT warm-up)")
    ap.add_argument("--steps", type=int, default=6, help="RL steps per run (the first two are warm-up)")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved training runs per side and setting")
    ap.add_argument("--rollout-repeats", type=int, default=2, help="rollout comparisons per training repeat")
    ap.add_argument(
        "--micro-batch-tokens",
        type=int,
        default=0,
        help="rlreason optim.micro_batch_tokens (0: the default, bit-for-bit path); > 0 writes rl_step_speed_mbt.json",
    )
    ap.add_argument(
        "--dedup-sequences",
        action="store_true",
        help="rlreason optim.dedup_sequences (off: the default path); writes rl_step_speed[_mbt]_dedup.json",
    )
    ap.add_argument(
        "--backend",
        default="hf",
        choices=["hf", "vllm"],
        help="rlreason's rollout.backend in the training runs; vllm writes rl_step_speed_vllm.json",
    )
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.model is None:
        from rlreason.train.run import resolve_init

        a.model = resolve_init(load_config(RECIPE))
    import transformers
    import trl

    setup = vars(a) | {
        "loss_type": "dapo",
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
    }
    before, t0 = load(), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(a, Path(tmp))
    result = {"setup": setup, "load": {"before": before, "after": load(), "wall_s": time.time() - t0}, **result}
    result["equal_work_violations"] = check_equal_work(result, a.max_new_tokens)
    print_table(result)
    for line in result["equal_work_violations"]:
        print(f"NOT EQUAL WORK: {line}")
    RESULTS.mkdir(exist_ok=True)
    name = (
        "rl_step_speed"
        + ("_mbt" if a.micro_batch_tokens else "")
        + ("_dedup" if a.dedup_sequences else "")
        + ("_vllm" if a.backend == "vllm" else "")
        + ".json"
    )
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
