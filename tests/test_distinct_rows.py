"""`optim.dedup_sequences`: each distinct (prompt, response) of a micro-batch is run once and its
copies get the same log-probs; the gradient equals the every-row pass's (to float32 rounding), the
plain pass runs when nothing repeats, and a real run with copies matches the default run."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB, tiny_qwen_config
from transformers import Qwen2ForCausalLM

from rlreason.policy.lab_tiny import build_lab_tokenizer
from rlreason.policy.padding import left_pad, right_pad
from rlreason.train import forward as dr
from rlreason.train.forward import response_logprobs


def padded(prompts, responses):
    p_ids, p_mask = left_pad(prompts, 0)
    r_ids, r_mask = right_pad(responses, 0)
    return p_ids, p_mask, r_ids, r_mask


def test_representatives_are_first_occurrences_in_row_order():
    prompts = [[5, 6], [5, 6], [7], [5, 6], [7]]
    responses = [[1, 2, 3], [1, 2, 3], [1, 2], [1, 2], [1, 2]]
    reps, owner = dr.distinct_rows(*padded(prompts, responses))
    assert reps.tolist() == [0, 2, 3] and owner.tolist() == [0, 0, 1, 2, 1]
    # a pad id equal to a real token does not make different lengths equal
    assert dr.distinct_rows(*padded([[5], [5]], [[1, 0], [1]])) is None


def test_the_gradient_equals_the_every_row_pass():
    tok = build_lab_tokenizer()
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(tiny_qwen_config(tok)).double()
    prompts = [[40, 41], [40, 41], [42, 43, 44], [40, 41], [42, 43, 44], [45]]
    responses = [[50, 51, 52], [50, 51, 52], [53], [50, 60], [53], [54, 55]]
    weights = torch.tensor([0.3, -1.1, 0.7, 2.0, 0.5, -0.4], dtype=torch.float64)[:, None]  # per-row losses differ
    grads, values = [], []
    for forward in (response_logprobs, dr.distinct_logprobs):
        model.zero_grad()
        out = forward(model, *padded(prompts, responses), with_entropy=True, entropy_grad=True, with_hidden=True)
        loss = (weights * (out.logprobs + 0.1 * out.entropy)).sum() + out.hidden.pow(2).mean()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        values.append((out.logprobs.detach(), out.entropy.detach(), out.hidden.detach()))
    scale = float(grads[0].abs().max())
    assert scale > 0  # the log-probs are float32 (response_logprobs), so the gradients agree to its rounding
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6 * scale)
    for a, b in zip(*values):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_no_copies_runs_the_plain_pass(monkeypatch):
    calls = []

    def fake(model, prompt_ids, prompt_mask, response_ids, response_mask, **kwargs):
        calls.append(prompt_ids.shape[0])
        return dr.TokenOutputs(logprobs=torch.zeros(response_ids.shape))

    monkeypatch.setattr(dr, "response_logprobs", fake)
    dr.distinct_logprobs(None, *padded([[1], [2]], [[3], [3]]))
    dr.distinct_logprobs(None, *padded([[1], [1], [2]], [[3], [3], [3]]))
    assert calls == [2, 2]  # all distinct: every row; one copy: two rows


def scalars(run_dir, tag):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


@pytest.mark.parametrize("recipe", ["experiments/lab/thinkless.yaml"])  # DeGRPO with its reference pass
def test_a_run_with_copies_matches_the_default_run(tmp_path, monkeypatch, tiny_sft_policy, recipe):
    from rlreason.config import load_config
    from rlreason.train.run import run_experiment

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    seen = []
    original = dr.distinct_rows

    def counting(*args):
        found = original(*args)
        seen.append(args[0].shape[0] if found is None else int(found[0].numel()))
        return found

    monkeypatch.setattr(dr, "distinct_rows", counting)
    base = [
        *TINY_LAB,
        f"init.from={tiny_sft_policy}",
        "optim.steps=3",
        "rollout.prompts_per_step=2",
        "rollout.group_size=6",
        "rollout.max_new_tokens=8",
        "rollout.temperature=0.05",  # nearly greedy: a group repeats its responses
        "algo.beta=0.01",
    ]
    runs = {}
    for dedup in (False, True):
        cfg = load_config(recipe, [*base, f"optim.dedup_sequences={dedup}", f"logging.dir={tmp_path / str(dedup)}"])
        runs[dedup] = run_experiment(cfg)
    assert seen and min(seen) < 12  # copies were found and run once
    for tag in ("algo/loss", "algo/kl", "optim/grad_norm", "train/reward_mean", "train/response_len_mean"):
        a, b = scalars(runs[False], tag), scalars(runs[True], tag)
        assert b == pytest.approx(a, rel=1e-4, abs=1e-6), tag
