"""Per-GPU memory of the paper recipes (arithmetic), and a CPU cross-check of its logits term.

Per GPU, as the recipes run (DDP, `trainer.precision: bf16-mixed`, fp32 master weights):

- model states: fp32 master weights, fp32 gradients, AdamW's two fp32 moments: 16 bytes/parameter
  (not sharded: DDP; `strategy: fsdp` would divide this by the GPUs);
- the frozen reference in bf16 (when beta > 0): 2 bytes/parameter;
- the KV cache of one generation batch (bf16 under autocast): 2 x layers x kv_heads x head_dim x
  2 bytes per token;
- one training micro-batch: gradient-checkpointed decoder activations (one bf16 [mb, L, H] per
  layer plus one layer's recomputed internals) and the logits term: the unchunked path holds
  about K_FULL fp32 copies of [mb, T, V] at its peak (logits, the temperature-scaled copy, log-probs,
  probabilities, and the backward's temporaries); `model.logit_chunk_size: c` holds K_CHUNK copies
  of [mb, c, V] only.

The logits term is the one this machine can measure: `--measure` runs one forward + backward of
`response_logprobs` (temperature, entropy with gradient, as the Thinkless update) on a tiny Qwen2
with the real vocabulary (151,936) at two response lengths, unchunked and chunked, each in a fresh
process, and compares the peak-RSS increase with the formula (glibc serves these large tensors with
mmap, so RSS follows the live tensors). Prints tables and writes benchmarks/results/memory_estimate.json.

    .venv/bin/python benchmarks/memory_estimate.py [--measure]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

GIB = 1024**3
MIB = 1024**2
VOCAB = 151_936
# fp32 [mb, T, V] copies alive at the peak of the unchunked forward + backward, and fp32 [mb, chunk, V]
# copies at the peak of one chunk (its forward, or its recomputation in the backward): measured by
# `--measure` (5.0 and 5.9 on CPU, fp32 weights; under bf16 autocast the head's bf16 output adds half
# a copy). A linear formula in T with these constants gives the same ratio at both lengths.
K_FULL = 5
K_CHUNK = 6
# name: (parameters, layers, hidden, intermediate, kv heads, head dim)
MODELS = {
    "Qwen2.5-1.5B (R1-Distill / DeepScaleR)": (1.78e9, 28, 1536, 8960, 2, 128),
    "Qwen2.5-7B (R1-Distill-7B)": (7.6e9, 28, 3584, 18944, 4, 128),
}
# (recipe, prompt + response tokens, sequences generated at once, micro-batch, logit chunk, reference)
SETTINGS = [
    ("thinkless_r1_1.5b", 1024 + 24576, 32, 1, 2048, True),
    ("l2t_deepscaler_1.5b", 1024 + 16384, 32, 1, 2048, True),
]


def logits_bytes(mb: int, tokens: int, chunk: int, vocab: int = VOCAB) -> float:
    """Peak bytes of the logits path of one micro-batch (fp32)."""
    if chunk:
        return K_CHUNK * mb * min(chunk, tokens) * vocab * 4
    return K_FULL * mb * tokens * vocab * 4


def activation_bytes(mb: int, tokens: int, layers: int, hidden: int, inter: int) -> float:
    """Gradient-checkpointed decoder: each layer's bf16 input kept, one layer's internals recomputed."""
    kept = layers * mb * tokens * hidden * 2
    one_layer = mb * tokens * (8 * hidden + 3 * inter) * 2
    return kept + one_layer


def estimate(model: str, tokens: int, gen: int, mb: int, chunk: int, ref: bool) -> dict[str, float]:
    params, layers, hidden, inter, kv_heads, head_dim = MODELS[model]
    parts = {
        "model_states_gib": 16 * params,
        "reference_bf16_gib": 2 * params if ref else 0.0,
        "kv_cache_gib": 2 * layers * kv_heads * head_dim * 2 * gen * tokens,
        "activations_gib": activation_bytes(mb, tokens, layers, hidden, inter),
        "logits_gib": logits_bytes(mb, tokens, chunk),
    }
    # generation and the update do not overlap: the KV cache is freed before the backward
    peak = parts["model_states_gib"] + parts["reference_bf16_gib"]
    peak += max(parts["kv_cache_gib"], parts["activations_gib"] + parts["logits_gib"])
    out = {k: v / GIB for k, v in parts.items()}
    out["total_gib"] = peak / GIB
    return out


def table() -> list[dict]:
    rows = []
    for model in MODELS:
        for name, tokens, gen, mb, chunk, ref in SETTINGS:
            for c in (chunk, 0):
                rows.append(
                    {
                        "model": model,
                        "config": name,
                        "tokens": tokens,
                        "gen_batch": gen,
                        "micro_batch": mb,
                        "logit_chunk": c,
                        **estimate(model, tokens, gen, mb, c, ref),
                    }
                )
    head = (("chunk", 5), ("states", 7), ("ref", 5), ("KV", 6), ("act", 5), ("logits", 7), ("GiB", 6))
    print(f"{'model':38} {'recipe':20} " + " ".join(f"{h:>{w}}" for h, w in head))
    for r in rows:
        print(
            f"{r['model']:38} {r['config']:20} {r['logit_chunk']:>5} {r['model_states_gib']:>7.1f} "
            f"{r['reference_bf16_gib']:>5.1f} {r['kv_cache_gib']:>6.1f} {r['activations_gib']:>5.1f} "
            f"{r['logits_gib']:>7.1f} {r['total_gib']:>6.1f}"
        )
    return rows


# -- the CPU cross-check ------------------------------------------------------------------------
def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(tokens: int, chunk: int) -> None:
    """One forward + backward of the update's log-prob path; prints the peak-RSS increase in MiB."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlreason.train.forward import response_logprobs

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(cfg)
    prompt = torch.randint(0, VOCAB, (1, 8))
    response = torch.randint(0, VOCAB, (1, tokens))
    ones = torch.ones_like
    # warm-up at a short length: allocator pools, kernels and lazy imports before the baseline
    response_logprobs(model, prompt, ones(prompt), response[:, :4], ones(response[:, :4]), with_entropy=True)
    base = _rss_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    out = response_logprobs(
        model,
        prompt,
        ones(prompt),
        response,
        ones(response),
        temperature=0.6,
        with_entropy=True,
        entropy_grad=True,
        chunk_size=chunk,
    )
    (-(out.logprobs.sum()) - 0.001 * out.entropy.sum()).backward()
    print(json.dumps({"peak_increase_mib": _rss_mib("VmHWM") - base}))


def measure() -> list[dict]:
    rows = []
    for tokens in (256, 512):
        for chunk in (0, 64):
            cmd = [sys.executable, __file__, "--child", str(tokens), str(chunk)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            measured = json.loads(proc.stdout.strip().splitlines()[-1])["peak_increase_mib"]
            predicted = logits_bytes(1, tokens, chunk) / MIB
            rows.append(
                {
                    "tokens": tokens,
                    "logit_chunk": chunk,
                    "one_fp32_copy_mib": tokens * VOCAB * 4 / MIB,
                    "predicted_mib": predicted,
                    "measured_peak_rss_increase_mib": measured,
                    "measured_over_predicted": measured / predicted,
                }
            )
    print(f"\n{'tokens':>6} {'chunk':>5} {'1 copy MiB':>10} {'predicted':>9} {'measured':>9} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['tokens']:>6} {r['logit_chunk']:>5} {r['one_fp32_copy_mib']:>10.0f} {r['predicted_mib']:>9.0f} "
            f"{r['measured_peak_rss_increase_mib']:>9.0f} {r['measured_over_predicted']:>6.2f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="also run the CPU peak-RSS cross-check")
    parser.add_argument("--child", nargs=2, type=int, metavar=("TOKENS", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    out = Path(__file__).parent / "results" / "memory_estimate.json"
    result = {"estimates": table(), "k_full": K_FULL, "k_chunk": K_CHUNK}
    if args.measure:
        result["cpu_cross_check"] = measure()
    elif out.is_file():  # keep the last measurement
        result["cpu_cross_check"] = json.loads(out.read_text()).get("cpu_cross_check")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
