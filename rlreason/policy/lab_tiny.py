"""The lab's tiny policy: a ~1 M-parameter Qwen2 with a byte-level tokenizer.

It is built from a config, written with `save_pretrained` and then loaded back through
`AutoModelForCausalLM` / `AutoTokenizer` exactly like a real checkpoint, so the lab exercises the
same code path as a 1.5 B model. Every byte is one token, so any text (benchmark prompts included)
tokenizes; control tokens are added later by `setup_control_tokens`, as for any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

DEFAULT_ARCH: dict[str, Any] = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "seed": 0,
}

SPECIALS = ["<pad>", "<eos>"]


def build_lab_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: ids 0-255 are bytes (as ByteLevel's printable aliases), then specials."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_chars = sorted(alphabet, key=lambda c: _byte_of(c))
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    # ByteLevel maps bytes to printable characters; Split then makes each character its own token
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            pre_tokenizers.Split(pattern="", behavior="isolated"),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.add_special_tokens({"pad_token": "<pad>", "eos_token": "<eos>"})
    fast.model_max_length = DEFAULT_ARCH["max_position_embeddings"]
    return fast


def _byte_of(ch: str) -> int:
    # ByteLevel's alias table (GPT-2): printable bytes map to themselves, the rest to U+0100 + k
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip([chr(c) for c in cs], bs))[ch]


def build_lab_tiny(out_dir: Path | str, **arch: Any) -> Path:
    """Build, seed-initialise and save the lab model + tokenizer to `out_dir`."""
    params = {**DEFAULT_ARCH, **arch}
    unknown = set(params) - set(DEFAULT_ARCH)
    if unknown:
        raise ValueError(f"model.lab: unknown key '{sorted(unknown)[0]}' (valid: {', '.join(DEFAULT_ARCH)})")
    seed = int(params.pop("seed"))
    tokenizer = build_lab_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        **params,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
