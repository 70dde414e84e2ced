"""Mode-exploration samplers on the real lab tiny model: the forced first token's importance ratio,
bit-for-bit plain rollouts with the sampler off, per-sample seeding and shard invariance."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.policy.load import load_policy
from rlreason.policy.rollout import HFRolloutBackend, SamplingParams
from rlreason.policy.samplers import ModeSampler, build_sampler
from rlreason.policy.sampling import sample_seed
from rlreason.registry import TASKS
from rlreason.train.collect import collect_rollout
from rlreason.train.forward import response_logprobs

TINY = [
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "task.n_train_per_level=4",
    "task.n_test_per_level=2",
]
G = 4
PARAMS = SamplingParams(max_new_tokens=10, temperature=1.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    cfg = load_config("experiments/lab/thinkless.yaml", [*TINY, "init.from=null"])
    policy, tokenizer, control = load_policy(cfg.model, cache_dir=tmp_path_factory.mktemp("cache"))
    problems = TASKS.build(OmegaConf.to_container(cfg.task)).problems("train")[:3]
    prompts = [tokenizer(p.prompt)["input_ids"] for p in problems]
    backend = HFRolloutBackend([tokenizer.eos_token_id], tokenizer.pad_token_id)
    return policy.eval(), tokenizer, control, problems, prompts, backend


def rollout(lab, sampler, problems=None, prompts=None, offset=0, step=3):
    policy, tokenizer, control, all_problems, all_prompts, backend = lab
    batch, _ = collect_rollout(
        policy,
        tokenizer,
        backend,
        problems or all_problems,
        prompts or all_prompts,
        PARAMS,
        group_size=G,
        seed=7,
        step=step,
        control=control,
        group_offset=offset,
        sampler=sampler,
    )
    return batch


def test_sampler_off_is_the_plain_rollout_bit_for_bit(lab):
    policy, _, _, problems, prompts, backend = lab
    assert build_sampler("none", 0.3) is None
    batch = rollout(lab, None)
    seeds = [sample_seed(7, 3, p.uid, j) for p in problems for j in range(G)]
    plain = backend.generate(policy, [ids for ids in prompts for _ in range(G)], PARAMS, seeds)
    assert torch.equal(batch.response_ids, plain.response_ids)
    assert torch.equal(batch.old_logprobs, plain.logprobs)
    assert torch.equal(batch.response_mask, plain.response_mask)
    assert batch.forced_mode is None and batch.rollout_metrics == {}


@pytest.mark.parametrize("kind, share", [("forced_mode", 0.3), ("paired", 0.5)])
def test_forced_first_token_ratio_is_pi_theta_over_the_proposal(lab, kind, share):
    policy, _, control, _, _, _ = lab
    sampler = ModeSampler(kind, share)
    batch = rollout(lab, sampler)
    forced = batch.forced_mode
    ids = {"short": control.short_id, "think": control.think_id}
    assert batch.response_ids[:, 0].tolist() == [ids[m] for m in forced]
    assert batch.control_mode == forced and (batch.control_pos == 0).all()
    # the first token's old log-prob is the proposal's: log s for <short>, log(1 - s) for <think>
    expected_old = [math.log(share if m == "short" else 1 - share) for m in forced]
    torch.testing.assert_close(batch.old_logprobs[:, 0], torch.tensor(expected_old))
    # so the PPO ratio of the forced token is pi_theta(token) / s (or / (1 - s))
    out = response_logprobs(policy, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask)
    ratio = torch.exp(out.logprobs[:, 0] - batch.old_logprobs[:, 0])
    pi = torch.exp(out.logprobs[:, 0])
    proposal = torch.tensor([share if m == "short" else 1 - share for m in forced])
    torch.testing.assert_close(ratio, pi / proposal, rtol=1e-5, atol=0)
    # the tokens after it keep their true sampling log-probs
    rest = batch.response_mask[:, 1:].bool()
    torch.testing.assert_close(out.logprobs[:, 1:][rest], batch.old_logprobs[:, 1:][rest], atol=1e-5, rtol=0)
    share_logged = batch.rollout_metrics["rollout/forced_short_share"]
    assert share_logged == sum(m == "short" for m in forced) / len(forced)
    if kind == "paired":
        assert forced == (["short"] * 2 + ["think"] * 2) * 3


def test_forced_continuation_is_the_policy_sampling_after_the_control_token(lab):
    policy, _, control, problems, prompts, backend = lab
    batch = rollout(lab, ModeSampler("paired"))
    forced = batch.forced_mode
    ids = {"short": control.short_id, "think": control.think_id}
    seeds = [sample_seed(7, 3, p.uid, j) for p in problems for j in range(G)]
    flat = [ids_ for ids_ in prompts for _ in range(G)]
    direct = backend.generate(
        policy, [[*p, ids[m]] for p, m in zip(flat, forced)], SamplingParams(max_new_tokens=9), seeds
    )
    assert torch.equal(batch.response_ids[:, 1:], direct.response_ids)
    assert torch.equal(batch.old_logprobs[:, 1:], direct.logprobs)


def test_forced_modes_are_seeded_per_sample_and_shard_invariant(lab):
    sampler = ModeSampler("forced_mode", 0.5)
    _, _, _, problems, prompts, _ = lab
    whole = rollout(lab, sampler)
    first = rollout(lab, sampler, problems[:1], prompts[:1])
    rest = rollout(lab, sampler, problems[1:], prompts[1:], offset=1)
    assert whole.forced_mode == first.forced_mode + rest.forced_mode
    width = whole.response_ids.shape[1]
    parts = [torch.nn.functional.pad(b.response_ids, (0, width - b.response_ids.shape[1])) for b in (first, rest)]
    assert torch.equal(torch.cat(parts), whole.response_ids)
    # the per-sample draws follow P(<short>) = s: over many (uid, j) the share is near s
    modes = [m for k in range(200) for m in ModeSampler("forced_mode", 0.3).modes(0, k, "u", 8)]
    assert abs(sum(m == "short" for m in modes) / len(modes) - 0.3) < 0.03


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["rollout.sampler=forced"], r"rollout\.sampler: expected none \| forced_mode \| paired"),
        (["rollout.sampler=forced_mode", "rollout.sampler_share=1.0"], r"rollout\.sampler_share: expected a share"),
        (["rollout.sampler=paired", "rollout.group_size=5"], r"rollout\.sampler: paired .* even rollout\.group_size"),
    ],
)
def test_sampler_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("experiments/lab/thinkless.yaml", overrides)


def test_sampler_keys_off_leave_saved_configs_and_stage_hashes_unchanged():
    """Off, the new keys are not written: older run directories still match `init.resume=auto`."""
    from rlreason.config import to_yaml

    off = to_yaml(load_config("experiments/lab/grpo.yaml"))
    assert "sampler" not in off
    on = to_yaml(load_config("experiments/lab/grpo.yaml", ["rollout.sampler=forced_mode", "rollout.sampler_share=0.3"]))
    assert "sampler: forced_mode" in on and "sampler_share: 0.3" in on
