"""DDP scaling on CPU: samples per second of lab GRPO with 1 and 2 processes, same global batch.

Each configuration runs through the real CLI (`trainer.devices=N trainer.strategy=ddp`, gloo). On a
2-core machine one process already uses both cores for its matrix multiplies, so the ratio measures
DDP's overhead (gradient all-reduce, duplicated Python work) more than any speed-up; on GPUs each
rank brings its own device. Prints a table and writes benchmarks/results/ddp_scaling.json.

    .venv/bin/python benchmarks/ddp_scaling.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlreason.config import load_config
from rlreason.train.run import resolve_init

RESULTS = Path(__file__).parent / "results"


def run(devices: int, steps: int, prompts: int, group: int, init: str, out: Path) -> dict[str, float]:
    overrides = [
        f"init.from={init}",
        f"optim.steps={steps}",
        f"rollout.group_size={group}",
        f"rollout.prompts_per_step={prompts // devices}",
        "eval.n=4",
        "eval.every_n_steps=0",
        "logging.samples_every_n_steps=0",
        "logging.progress_bar=false",
        f"logging.dir={out}",
        "trainer.accelerator=cpu",
        f"trainer.devices={devices}",
        *(["trainer.strategy=ddp"] if devices > 1 else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // devices))}
    subprocess.run(
        [sys.executable, "-m", "rlreason.cli", "run", "experiments/lab/grpo.yaml", *overrides],
        check=True,
        env=env,
        capture_output=True,
    )
    run_dir = next(out.glob("*/version_0"))
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    times = [e.value for e in acc.Scalars("perf/step_time")][1:]
    return {
        "devices": devices,
        "step_s": sum(times) / len(times),
        "samples_per_s": prompts * group * len(times) / sum(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    args = ap.parse_args()
    init = resolve_init(load_config("experiments/lab/grpo.yaml"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for devices in (1, 2):
            rows.append(run(devices, args.steps, args.prompts, args.group, init, Path(tmp) / str(devices)))
    ratio = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    print(f"lab GRPO, global batch {args.prompts} x {args.group}, {os.cpu_count()} CPU cores")
    print(f"{'processes':>10} {'s/step':>8} {'samples/s':>10}")
    for r in rows:
        print(f"{r['devices']:>10} {r['step_s']:>8.2f} {r['samples_per_s']:>10.1f}")
    print(f"2-process / 1-process throughput: {ratio:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ddp_scaling.json").write_text(
        json.dumps({"rows": rows, "ratio": ratio, "cores": os.cpu_count()}, indent=2)
    )


if __name__ == "__main__":
    main()
