"""GRPO training throughput: rlreason vs TRL's GRPOTrainer, and rollout speed vs `generate`.

Same model (the lab policy), same prompts (lab-arith train), group size, lengths, loss (`grpo`,
beta 0, one iteration), learning rate, on this machine's CPU, in one process run back to back.
Prints a table and writes benchmarks/results/rl_step_speed.json. TRL is a benchmark-only extra:
``.venv/bin/pip install -e ".[bench]"``.

    .venv/bin/python benchmarks/rl_step_speed.py [--model runs/lab-sft/<v>/policy] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import rlreason.components  # noqa: F401
from rlreason.config import load_config
from rlreason.policy.load import load_policy
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.tasks.lab_arith import LabArith
from rlreason.verify import verify_batch

RESULTS = Path(__file__).parent / "results"


def lab_model(path: str | None, cache: Path):
    cfg = load_config("experiments/lab/grpo.yaml")
    if path:
        cfg.model.name_or_path = path
    return load_policy(cfg.model, cache_dir=cache)


def bench_rollout(model, tok, prompts: list[list[int]], max_new: int, repeats: int) -> dict[str, float]:
    backend = HFRolloutBackend([tok.eos_token_id], tok.pad_token_id)
    params = SamplingParams(max_new_tokens=max_new, temperature=1.0)
    ours, theirs, n_ours, n_theirs = 0.0, 0.0, 0, 0
    ids = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(p[::-1]) for p in prompts], batch_first=True, padding_value=tok.pad_token_id
    ).flip(1)
    mask = (ids != tok.pad_token_id).long()
    for r in range(repeats + 1):
        t = time.perf_counter()
        gen = backend.generate(model, prompts, params, list(range(r * 1000, r * 1000 + len(prompts))))
        dt_ours = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                max_new_tokens=max_new,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        dt_theirs = time.perf_counter() - t
        if r == 0:
            continue  # warm-up
        ours += dt_ours
        n_ours += int(gen.response_mask.sum())
        new = out[:, ids.shape[1] :]
        finished = (new == tok.eos_token_id).long().cumsum(-1)
        n_theirs += int(((finished - (new == tok.eos_token_id).long()) == 0).sum())  # tokens up to EOS
        theirs += dt_theirs
    return {"rlreason_tokens_per_s": n_ours / ours, "generate_tokens_per_s": n_theirs / theirs}


def bench_rlreason(model_path: str, steps: int, group: int, prompts_per_step: int, max_new: int, out: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlreason.train.run import run_experiment

    cfg = load_config(
        "experiments/lab/grpo.yaml",
        [
            f"init.from={model_path}",
            f"optim.steps={steps}",
            f"rollout.group_size={group}",
            f"rollout.prompts_per_step={prompts_per_step}",
            f"rollout.max_new_tokens={max_new}",
            "optim.lr=1e-5",
            "eval.n=3",
            "eval.every_n_steps=0",
            "logging.samples_every_n_steps=0",
            "logging.progress_bar=false",
            f"logging.dir={out}",
            "logging.histograms=false",
        ],
    )
    run_dir = run_experiment(cfg)
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    times = [e.value for e in acc.Scalars("perf/step_time")][1:]  # drop the warm-up step
    lengths = [e.value for e in acc.Scalars("train/response_len_mean")][1:]
    n = group * prompts_per_step
    return {
        "step_s": sum(times) / len(times),
        "samples_per_s": n * len(times) / sum(times),
        "tokens_per_s": n * sum(lengths) / sum(times),
    }


def bench_trl(model_path: str, steps: int, group: int, prompts_per_step: int, max_new: int, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    problems = LabArith().problems("train")[: prompts_per_step * (steps + 2)]
    ds = Dataset.from_dict({"prompt": [p.prompt for p in problems], "gold": [p.gold for p in problems]})

    def correctness(prompts, completions, gold, **kw):
        return [float(v) for v in verify_batch(completions, gold)]

    times: list[float] = []
    lengths: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                lengths.append(float(logs["completions/mean_length"]))

    n = group * prompts_per_step
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        use_cpu=True,
        per_device_train_batch_size=n,
        num_generations=group,
        max_completion_length=max_new,
        max_steps=steps,
        learning_rate=1e-5,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        loss_type="grpo",
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
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    trainer = GRPOTrainer(
        model=model, reward_funcs=correctness, args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()]
    )
    trainer.train()
    times = times[1:]
    mean_len = sum(lengths[1:]) / max(1, len(lengths[1:])) if lengths else float("nan")
    return {
        "step_s": sum(times) / len(times),
        "samples_per_s": n * len(times) / sum(times),
        "tokens_per_s": n * mean_len * len(times) / sum(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="policy directory (default: run the lab SFT warm-up)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        cache = Path(os.environ.get("RLREASON_CACHE", Path.home() / ".cache" / "rlreason"))
        model_path = args.model
        if model_path is None:
            from rlreason.train.run import resolve_init

            model_path = resolve_init(load_config("experiments/lab/grpo.yaml"))
        model, tok, _ = lab_model(model_path, cache)
        problems = LabArith().problems("train")[: args.prompts]
        prompts = [tok(p.prompt)["input_ids"] for p in problems for _ in range(args.group)]
        rollout = bench_rollout(model, tok, prompts, args.max_new_tokens, repeats=3)
        ours = bench_rlreason(model_path, args.steps, args.group, args.prompts, args.max_new_tokens, tmp_path)
        trl = bench_trl(model_path, args.steps, args.group, args.prompts, args.max_new_tokens, tmp_path)
    result = {
        "setup": vars(args) | {"model": model_path, "threads": torch.get_num_threads()},
        "rlreason": ours,
        "trl": trl,
        "rollout": rollout,
        "train_speedup_vs_trl": ours["samples_per_s"] / trl["samples_per_s"],
        "rollout_speedup_vs_generate": rollout["rlreason_tokens_per_s"] / rollout["generate_tokens_per_s"],
    }
    print(
        f"GRPO on the lab model: {args.group} x {args.prompts} samples/step, <= {args.max_new_tokens} new tokens, CPU"
    )
    print(f"{'':24} {'s/step':>8} {'samples/s':>10} {'tokens/s':>10}")
    for name in ("rlreason", "trl"):
        r = result[name]
        print(f"{name:24} {r['step_s']:>8.2f} {r['samples_per_s']:>10.1f} {r['tokens_per_s']:>10.0f}")
    print(f"training speed-up vs TRL GRPOTrainer: {result['train_speedup_vs_trl']:.2f}x (target >= 1.5x)")
    print(
        f"rollout tokens/s: rlreason {rollout['rlreason_tokens_per_s']:.0f} vs generate "
        f"{rollout['generate_tokens_per_s']:.0f} = {result['rollout_speedup_vs_generate']:.2f}x (target >= 1x)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rl_step_speed.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
