"""Builders shared by tests (imported as a plain module: tests/ is on sys.path)."""

from __future__ import annotations

import torch

from rlreason.batch import RolloutBatch
from rlreason.policy.padding import left_pad, right_pad


def rollout_batch(prompts, responses, pad_id, golds, group_ids=None) -> RolloutBatch:
    """A RolloutBatch from token lists (no sampling), for reward and algorithm tests."""
    p_ids, p_mask = left_pad(prompts, pad_id)
    r_ids, r_mask = right_pad(responses, pad_id)
    n, width = r_ids.shape
    return RolloutBatch(
        prompt_ids=p_ids,
        prompt_mask=p_mask,
        response_ids=r_ids,
        response_mask=r_mask,
        old_logprobs=torch.zeros(n, width),
        group_ids=torch.tensor(group_ids or list(range(n))),
        truncated=torch.zeros(n, dtype=torch.bool),
        prompts=["p"] * n,
        completions=["c"] * n,
        golds=list(golds),
        meta=[{} for _ in range(n)],
    )


# Six lab responses for the info-gain tests: well-formed <think> answers of 1-4 episodes, a <short>
# answer, a truncated and an empty one (both malformed), to the same gold 376.
LAB_RESPONSES = [
    "<think>\n7*8=56\n4*8=32\n32+5=37\n</think>376<eos>",
    "<short>376<eos>",
    "<think>\n7*8=56\n</think>376<eos>",
    "<think>\n7*8=5",  # truncated: malformed
    "<think>\n4*8=32\n7*8=56\n7*8=56\n320+56=376\n</think>376<eos>",
    "",  # empty: malformed, must not raise
]
LAB_QUESTIONS = ["47*8=", "47*8=", "1+47*8=", "9=", "47*8=", "1="]
LAB_CORRECT = [True, True, True, False, True, False]


def lab_reward_inputs(tok, model, initial):
    """(RolloutBatch, RewardContext) of the six lab responses, for `model` moved from `initial`."""
    from rlreason.rewards.base import RewardContext

    prompts = [tok(q, add_special_tokens=False)["input_ids"] for q in LAB_QUESTIONS]
    responses = [tok(r, add_special_tokens=False)["input_ids"] for r in LAB_RESPONSES]
    batch = rollout_batch(prompts, responses, tok.pad_token_id, ["376"] * len(responses))
    ctx = RewardContext(
        correct=torch.tensor(LAB_CORRECT),
        answered=torch.ones(len(responses), dtype=torch.bool),
        policy=model,
        tokenizer=tok,
        initial_params=initial,
        answer_cue="</think>",
    )
    return batch, ctx


# The tiny lab model and a few problems: real runs of a few steps that take seconds.
TINY_LAB = [
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "task.n_train_per_level=30",
    "task.n_test_per_level=6",
    "eval.n=6",
    "eval.every_n_steps=0",
    "logging.progress_bar=false",
    "logging.histograms=false",
    "logging.samples_every_n_steps=0",
]


def tiny_qwen_config(tok, tied: bool = True, hidden: int = 32, **extra):
    """A 2-layer, `hidden`-wide Qwen2 config on `tok`'s vocabulary (2 heads, 1 KV head, MLP 2 x hidden):
    the random model of the estimator and engine tests; `extra` sets other config fields."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=2 * hidden,
        tie_word_embeddings=tied,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **extra,
    )


HANG_GUARD_S = 900  # a hung child ends the test instead of the suite; not a speed bound


def wait_while_running(proc, done, what: str, poll_s: float = 0.01) -> None:
    """Poll until `done()` holds, failing if `proc` (a subprocess.Popen) ends first; what it printed to a
    piped stderr is in the message. A wall-clock bound would flake on loaded cores: there is none, bar
    the hang guard."""
    import time

    deadline = time.monotonic() + HANG_GUARD_S
    while not done():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the process ended before {what}: {str(err)[-3000:]}")
        assert time.monotonic() < deadline, f"hung: no {what} after {HANG_GUARD_S} s"
        time.sleep(poll_s)


def perturbed_tiny_qwen(tok, tied: bool, seed: int):
    """A float64 tiny Qwen2 (`tiny_qwen_config`, weights from `seed`) nudged by 0.01 noise away from its
    initial parameters, and those initial parameters: what info-gain's compression penalty compares."""
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen_config(tok, tied=tied)).double()
    initial = {n: q.detach().clone() for n, q in model.named_parameters()}
    gen = torch.Generator().manual_seed(7)  # not the projection's seed
    with torch.no_grad():
        for q in model.parameters():
            q.add_(0.01 * torch.randn(q.shape, generator=gen, dtype=q.dtype))
    return model, initial
