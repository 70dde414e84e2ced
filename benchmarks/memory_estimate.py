"""Per-GPU memory estimates for the paper configs (arithmetic, not a measurement).

Model states under FSDP with bf16 mixed precision (fp32 master weights, fp32 gradients, AdamW's two
fp32 moments: 16 bytes per parameter, sharded over the GPUs), the bf16 rollout copy and the frozen
bf16 reference (when beta > 0, not sharded here), and the KV cache of one generation batch. Prints a
table and writes benchmarks/results/memory_estimate.json.

    .venv/bin/python benchmarks/memory_estimate.py
"""

from __future__ import annotations

import json
from pathlib import Path

GIB = 1024**3
# name: (parameters, layers, kv heads, head dim)
MODELS = {
    "Qwen2.5-1.5B (R1-Distill / DeepScaleR)": (1.54e9, 28, 2, 128),
    "Qwen2.5-7B (R1-Distill-7B)": (7.6e9, 28, 4, 128),
}
SETTINGS = [  # (config, gpus, sequences generated at once, tokens per sequence, reference model)
    ("thinkless_r1_1.5b", 8, 64, 24576 + 512, True),
    ("l2t_deepscaler_1.5b", 8, 64, 16384 + 512, True),
]


def estimate(params: float, layers: int, kv_heads: int, head_dim: int, gpus: int, seqs: int, tokens: int, ref: bool):
    states = 16 * params / gpus
    rollout_weights = 2 * params  # bf16 full copy gathered for generation
    reference = 2 * params if ref else 0.0
    kv = 2 * layers * kv_heads * head_dim * 2 * seqs * tokens  # K and V, bf16
    return {
        "model_states_gib": states / GIB,
        "weights_bf16_gib": rollout_weights / GIB,
        "reference_gib": reference / GIB,
        "kv_cache_gib": kv / GIB,
        "total_gib": (states + rollout_weights + reference + kv) / GIB,
    }


def main() -> None:
    rows = []
    for model, (p, layers, kvh, hd) in MODELS.items():
        for name, gpus, seqs, tokens, ref in SETTINGS:
            for batch in (seqs, seqs // 4):
                rows.append(
                    {
                        "model": model,
                        "config": name,
                        "gpus": gpus,
                        "gen_batch": batch,
                        "tokens": tokens,
                        **estimate(p, layers, kvh, hd, gpus, batch, tokens, ref),
                    }
                )
    print(f"{'model':38} {'recipe':20} {'gen batch':>9} {'states':>7} {'weights':>8} {'ref':>5} {'KV':>6} {'GiB':>6}")
    for r in rows:
        print(
            f"{r['model']:38} {r['config']:20} {r['gen_batch']:>9} {r['model_states_gib']:>7.1f} "
            f"{r['weights_bf16_gib']:>8.1f} {r['reference_gib']:>5.1f} {r['kv_cache_gib']:>6.1f} {r['total_gib']:>6.1f}"
        )
    out = Path(__file__).parent / "results" / "memory_estimate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
