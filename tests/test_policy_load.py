"""Loading a policy's tokenizer: text must survive encode -> decode, and a class that rebuilds the
pre-tokenizer wrongly falls back to the checkpoint's published tokenizer.json (no benchmark data needed)."""

from __future__ import annotations

import torch
from fixtures.tokenizers.build import build_tokenizer

from rlreason.config import load_config
from rlreason.policy.load import load_policy

R1_SPECIALS = ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<|box_start|>", "<think>", "</think>"]


def test_a_tokenizer_whose_class_loses_text_is_read_from_its_published_tokenizer_json(tmp_path):
    """R1-Distill's tokenizer files under a Llama checkpoint (R1-Distill-Llama's layout): transformers
    below 5.20 (the CPU vLLM build's pin) rebuilds that `LlamaTokenizer` with a pre-tokenizer that loses
    spaces; the policy then gets the tokenizer.json as published: the same ids, special tokens and chat
    template, and text that decodes back. (A Qwen2 checkpoint's config picks Qwen2Tokenizer, which
    round-trips in every version.)"""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = build_tokenizer("r1_distill_qwen_1.5b", tmp_path / "llama")
    config = LlamaConfig(
        vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, bos_token_id=151646, eos_token_id=151643,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(path)
    cfg = load_config("experiments/lab/grpo.yaml", ["init.from=null", f"model.name_or_path={path}"])
    _, tok, _ = load_policy(cfg.model, cache_dir=tmp_path, quiet=True)
    text = "Let x = 3.\n\n  So  \\boxed{\\frac{1}{2}} holds."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    as_class = AutoTokenizer.from_pretrained(path)
    assert tok.convert_tokens_to_ids(R1_SPECIALS) == as_class.convert_tokens_to_ids(R1_SPECIALS)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (as_class.bos_token, as_class.eos_token, as_class.pad_token)
    chat = [{"role": "user", "content": "What is 1+1?"}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == as_class.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=True
    )
    assert tok("hi")["input_ids"] == as_class("hi")["input_ids"]  # BOS added the same way
