"""`rl_step` is the whole RL step: given what a run builds once and what a trainer lends one step, it
samples, scores and runs `updates_per_step` optimiser updates itself, and returns its metrics and
skipped updates as values. Driven here without Lightning, on the tiny lab model."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from omegaconf import OmegaConf
from tests_helpers import TINY_LAB

from rlreason.batch import RewardOutput
from rlreason.config import load_config
from rlreason.distributed import RankReducer
from rlreason.policy.load import format_prompt, load_policy
from rlreason.policy.samplers import ModeSampler
from rlreason.registry import ALGOS, REWARDS, TASKS
from rlreason.train import faults
from rlreason.train.faults import NonFiniteGuard
from rlreason.train.metrics import mode_metrics
from rlreason.train.module import RLModule
from rlreason.train.parity import ParityMonitor
from rlreason.train.step import StepHandles, loss_inputs, minibatch_normalisers, rl_step, rollout
from rlreason.verify.task_verifier import RunVerifiers


@pytest.fixture
def built(tmp_path, tiny_sft_policy, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    overrides = [
        *TINY_LAB,
        f"init.from={tiny_sft_policy}",
        f"logging.dir={tmp_path}",
        "rollout.prompts_per_step=2",
        "rollout.group_size=4",
        "rollout.max_new_tokens=8",
        "optim.minibatches=2",
        "algo.num_iterations=2",
        "reward={name: callable, fn: 'reward_fns:length_bonus'}",  # rewards that differ within a group
    ]
    cfg = load_config("experiments/lab/grpo.yaml", overrides)
    model_cfg = cfg.model.copy()
    model_cfg.name_or_path = str(tiny_sft_policy)
    policy, tok, control = load_policy(model_cfg, cache_dir=tmp_path / "cache", training=True, quiet=True)
    task = TASKS.build(OmegaConf.to_container(cfg.task))
    algo = ALGOS.build(OmegaConf.to_container(cfg.algo))
    reward = REWARDS.build(OmegaConf.to_container(cfg.reward))
    with RunVerifiers() as verifiers:
        module = RLModule(
            cfg,
            policy,
            tok,
            control,
            algo,
            reward,
            verifier=verifiers.for_task(task),
            answer_cue=task.answer_cue,
            format_prompt=lambda text: format_prompt(tok, text, model_cfg),
        )
        yield module.learner, task.problems("train")[:2]


def handles(learner) -> StepHandles:
    optimizer = torch.optim.SGD(learner.policy.parameters(), lr=1e-2)
    return StepHandles(
        step=0,
        device=torch.device("cpu"),
        backward=lambda loss: loss.backward(),
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
        ranks=RankReducer(1, 0),
        parity=ParityMonitor(),
    )


def snapshot(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_the_step_runs_updates_per_step_optimiser_updates_and_returns_its_metrics(built):
    learner, problems = built
    assert learner.settings.updates_per_step == 4  # 2 passes x 2 minibatches
    h = handles(learner)
    before = snapshot(learner.policy)
    result = rl_step(learner, h, problems)
    assert h.scheduler.last_epoch == 4  # optimizer.step() and scheduler.step() once per minibatch
    assert result.skipped == 0 and result.skip_cause is None
    m = result.metrics
    assert {m[f"faults/nonfinite_{k}"] for k in ("reward", "loss", "grad")} == {0.0}
    assert math.isfinite(m["optim/grad_norm"]) and m["optim/grad_norm"] > 0
    assert m["parity/logprob_diff_mean"] < 1e-4  # the first minibatch sees the weights that sampled
    assert m["train/reward_std"] > 0
    assert result.batch is not None and result.batch.num_samples == 8
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters()))


def test_a_non_finite_loss_skips_every_update_and_says_so(built):
    learner, problems = built
    h = handles(learner)
    before = snapshot(learner.policy)
    result = rl_step(dataclasses.replace(learner, algo=faults.nan_loss(learner.algo)), h, problems)
    assert (result.skipped, result.skip_cause) == (4, "loss")
    assert result.metrics["faults/nonfinite_loss"] == 4.0 and "optim/grad_norm" not in result.metrics
    assert h.scheduler.last_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(before, learner.policy.parameters()))


def test_the_guard_stops_after_too_many_faulty_steps_in_a_row():
    guard = NonFiniteGuard(max_in_a_row=2)
    assert guard.end_step(0, 3, "grad") is None
    assert guard.end_step(1, 0, None) is None  # a clean step ends the run of faulty ones
    assert guard.end_step(2, 1, "loss") is None
    reason = guard.end_step(3, 1, "reward")
    assert reason is not None and "2 steps in a row" in reason and "non-finite reward at step 4" in reason
    assert guard.total == 5


def test_failpoints_are_off_unless_armed(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    assert not faults.active("nan_loss", 1)
    monkeypatch.setenv(faults.ENV, "nan_loss@2")
    assert faults.active("nan_loss", 2) and not faults.active("nan_loss", 1)
    monkeypatch.setenv(faults.ENV, "bogus@1")
    with pytest.raises(ValueError, match="expected <kind>@<step>"):
        faults.active("nan_loss", 1)


def test_a_forced_first_token_keeps_its_proposal_as_pi_old_in_an_on_policy_step(built):
    """With one update per step the loop takes pi_old from its own forward (ratio 1), but a mode
    sampler's forced first token was drawn from the proposal s, not from pi: its ratio must stay
    pi_theta / s (AdaptThink's correction), or the update is no estimate for the policy's choice."""
    learner, problems = built
    one_update = dataclasses.replace(learner.settings, minibatches=1, num_iterations=1)
    learner = dataclasses.replace(learner, sampler=ModeSampler("paired", 0.5), settings=one_update)
    h = handles(learner)
    batch, _ = rollout(learner, h, problems)
    adv = learner.algo.advantages(batch, RewardOutput(rewards=torch.arange(8.0)), None)
    mask = batch.response_mask.float()
    rows = torch.arange(batch.num_samples)
    norms = minibatch_normalisers(learner, h, batch, mask, rows, None, float(mask.sum()))
    inp = loss_inputs(learner, h, batch, None, None, adv, None, mask, rows, norms, True, None)
    assert torch.allclose(inp.old_logprobs[:, 0], torch.full((8,), math.log(0.5)))  # the proposal
    assert torch.equal(inp.old_logprobs[:, 1:], inp.logprobs.detach()[:, 1:])  # the policy's own tokens
    assert not torch.allclose(inp.logprobs[:, 0], inp.old_logprobs[:, 0])  # so the forced ratio is not 1


def test_mode_metrics_count_score_and_average_the_advantage_per_mode_and_level(built):
    learner, problems = built
    batch = rl_step(learner, handles(learner), problems).batch
    n = batch.num_samples
    batch = dataclasses.replace(
        batch,
        control_mode=["think", "short", None, "think", "short", "think", "think", "short"][:n],
        meta=[{"difficulty": "hard" if i % 2 else "easy"} for i in range(n)],
    )
    correct = torch.tensor([i % 3 == 0 for i in range(n)])
    advantages = torch.arange(n, dtype=torch.float32)[:, None] * batch.response_mask  # sample i: i per token
    m = mode_metrics(batch, correct, advantages)
    # think: rows 0 (easy), 3 (hard), 5 (hard), 6 (easy); short: 1 (hard), 4 (easy), 7 (hard)
    assert m["mode/n_think/hard"] == 2 and m["mode/n_think/easy"] == 2 and m["mode/n_short/hard"] == 2
    assert (m["mode/acc_think/hard"].num, m["mode/acc_think/hard"].den) == (1.0, 2.0)  # row 3 right, 5 wrong
    assert m["mode/adv_think/hard"].num / m["mode/adv_think/hard"].den == pytest.approx(4.0)  # (3 + 5) / 2
    assert m["mode/adv_short"].num / m["mode/adv_short"].den == pytest.approx(4.0)  # (1 + 4 + 7) / 3
    assert m["mode/adv_short/easy"].num == pytest.approx(4.0)
    lengths = batch.response_mask.sum(-1)
    assert m["mode/len_think/hard"].num == float(lengths[3] + lengths[5]) and m["mode/len_think/hard"].den == 2
    assert mode_metrics(dataclasses.replace(batch, control_mode=None), correct, advantages) == {}
