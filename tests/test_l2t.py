"""L2T: episodes, the information-gain reward (gain and JVP penalty), L2T-PPO advantages."""

from __future__ import annotations

import math

import pytest
import torch
from tests_helpers import rollout_batch, tiny_qwen_config
from transformers import Qwen2ForCausalLM

from rlreason.algos.l2t_ppo import L2TPPO, token_rewards, trimmed_mean
from rlreason.batch import RewardOutput
from rlreason.policy.control_tokens import setup_control_tokens
from rlreason.policy.episodes import segment
from rlreason.policy.jvp import directional_logprobs
from rlreason.policy.lab_tiny import build_lab_tokenizer
from rlreason.policy.tangent import subset_names
from rlreason.rewards.base import RewardContext
from rlreason.rewards.forced_answer import forced_answer_scores
from rlreason.rewards.info_gain import InfoGain


@pytest.fixture(scope="module")
def lab():
    tok = build_lab_tokenizer()
    torch.manual_seed(0)
    cfg = tiny_qwen_config(tok, tied=True)
    model = Qwen2ForCausalLM(cfg).double()
    control = setup_control_tokens(model, tok)
    return model, tok, control


RESPONSES = [
    "<think>\n7*8=56\n4*8=32\n32+5=37\n</think>376<eos>",
    "<short>376<eos>",
    "<think>\n7*8=56\n7*8=56\n4*8=32\n32+5=37\n</think>376<eos>",
    "<think>\n7*8=5",  # truncated: malformed
]


def make_batch(tok, responses=RESPONSES, gold="376"):
    prompts = [tok("47*8=", add_special_tokens=False)["input_ids"]] * len(responses)
    resp = [tok(r, add_special_tokens=False)["input_ids"] for r in responses]
    return rollout_batch(prompts, resp, tok.pad_token_id, [gold] * len(responses), group_ids=[0, 0, 1, 1])


def test_segmenters_partition_and_degrade(lab):
    _, tok, _ = lab
    for text, k, ok in [
        (RESPONSES[0], 3, True),
        (RESPONSES[1], 1, True),
        (RESPONSES[3], 1, False),
        ("", 1, False),
        ("<think>\n</think>5", 1, False),
    ]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        e = segment(ids, tok, "lab")
        assert (len(e.spans), e.format_ok) == (k, ok), text
        assert e.spans[0][0] == 0 and e.spans[-1][1] == len(ids)
        assert all(a[1] == b[0] for a, b in zip(e.spans, e.spans[1:]))
    ids = tok("<episode_1>a</episode_1><episode_2>b</episode_2>\\boxed{1}", add_special_tokens=False)["input_ids"]
    assert len(segment(ids, tok, "tags").spans) == 2
    bad = tok("<episode_1>a</episode_1><episode_2>b", add_special_tokens=False)["input_ids"]
    assert len(segment(bad, tok, "tags").spans) == 1  # the closed episode, the rest joins it


def test_fitting_gain_equals_explicit_per_prefix_likelihood(lab):
    model, tok, _ = lab
    batch = make_batch(tok)
    reward = InfoGain(beta=0.0, batch_size=3)
    ctx = RewardContext(
        correct=torch.tensor([True, True, True, False]),
        answered=torch.ones(4, dtype=torch.bool),
        policy=model,
        tokenizer=tok,
        answer_cue="</think>",
    )
    out = reward(batch, ctx)
    cue = tok("</think>", add_special_tokens=False)["input_ids"]
    gold = tok("376", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    prompt = tok("47*8=", add_special_tokens=False)["input_ids"]
    resp = tok(RESPONSES[0], add_special_tokens=False)["input_ids"]
    e = segment(resp, tok, "lab")

    @torch.no_grad()
    def j(prefix):  # one sequence at a time, by hand
        ids = torch.tensor([prompt + resp[:prefix] + cue + gold])
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        start = len(prompt) + prefix + len(cue) - 1
        return math.exp(float(logp[start : start + len(gold)].mean()))

    js = [j(b) for b in e.boundaries]
    expected = [1 / 3 + 0.8 * (js[k + 1] - js[k]) for k in range(3)]  # r_out / K + alpha * gain
    torch.testing.assert_close(
        out.episode_rewards[0].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(out.episode_rewards[1], torch.tensor([1.0]))  # <short>: one episode, no gain
    torch.testing.assert_close(out.episode_rewards[3], torch.tensor([0.0]))  # malformed, wrong
    assert out.rewards[0] == pytest.approx(float(out.episode_rewards[0].sum()))
    batched = forced_answer_scores(
        model, [prompt + resp[:b] + cue for b in e.boundaries], [gold] * 4, tok.pad_token_id, 4
    )
    torch.testing.assert_close(batched.double(), torch.tensor(js, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("subset", ["last_block", "lm_head", "all", "random_projection"])
def test_jvp_penalty_equals_explicit_gradient_dot_product(lab, subset):
    model, tok, _ = lab
    batch = make_batch(tok)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move the policy away from its snapshot
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    try:
        reward = InfoGain(params=subset, rank=3, batch_size=2, damping=0.0)
        tangent, _ = reward.tangent(model, initial)
        d = directional_logprobs(model, batch, tangent, batch_size=2)
        names = subset_names(model, subset)
        params = dict(model.named_parameters())
        ids = torch.cat([batch.prompt_ids, batch.response_ids], 1)
        mask = torch.cat([batch.prompt_mask, batch.response_mask], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        t = batch.response_ids.shape[1]
        for i in range(batch.num_samples):
            e = segment(batch.response_ids[i][batch.response_mask[i].bool()].tolist(), tok, "lab")
            for a, b in e.spans:
                logits = model(
                    input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1], position_ids=pos[i : i + 1]
                ).logits
                lp = (
                    torch.log_softmax(logits[0, -t - 1 : -1].double(), -1)
                    .gather(-1, batch.response_ids[i, :, None])
                    .squeeze(-1)
                )
                grads = torch.autograd.grad(lp[a:b].sum(), [params[n] for n in names])
                explicit = sum((g * tangent[n]).sum() for g, n in zip(grads, names))
                assert float(d[i, a:b].sum()) == pytest.approx(float(explicit), rel=1e-5, abs=1e-9)
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(initial[n])


def test_trimmed_mean_and_token_rewards_by_hand():
    assert float(trimmed_mean(torch.arange(40.0), 0.025)) == pytest.approx(19.5)  # drops 0 and 39
    assert float(trimmed_mean(torch.tensor([1.0, 100.0]), 0.025)) == pytest.approx(50.5)
    old = torch.log(torch.tensor([[0.5, 0.25, 1.0, 0.5]]))  # surprises ln2, 2ln2, 0, ln2
    r = token_rewards([torch.tensor([3.0, 1.0])], [[(0, 2), (2, 4)]], old, torch.ones(1, 4))
    torch.testing.assert_close(r, torch.tensor([[1.0, 2.0, 0.0, 1.0]]))


def test_l2t_ppo_advantages_by_hand_with_guard(lab):
    _, tok, _ = lab
    batch = make_batch(tok, ["ab<eos>", "cd<eos>", "ef<eos>", "gh<eos>"])
    batch.old_logprobs = torch.full_like(batch.old_logprobs, -1.0) * batch.response_mask
    # sample i: one episode over its 3 tokens, uniform surprise -> token rewards R/3 each
    reward = RewardOutput(
        rewards=torch.tensor([3.0, 0.0, 1.5, 0.003]),
        episode_rewards=[torch.tensor([v]) for v in (3.0, 0.0, 1.5, 0.003)],
        episode_spans=[[(0, 3)]] * 4,
    )
    algo = L2TPPO(guard_eps=0.01)
    out = algo.advantages(batch, reward)
    adv = out.tokens
    # r~ = 1, 0, 0.5, 0.001; groups {0,1}: mean 0.5 std sqrt(.5); {2,3}: mean .2505 std .3528...
    s01, s23 = math.sqrt(0.5), float(torch.tensor([0.5, 0.001]).std())
    a_hat = [0.5 / (s01 + 1e-8), -0.5 / (s01 + 1e-8), 0.2495 / (s23 + 1e-8), -0.2495 / (s23 + 1e-8)]
    # token advantage A^ * r_t / r~ = A^ (uniform), except where the guard fires (samples 1 and 3) -> A^
    for i in range(4):
        torch.testing.assert_close(adv[i, :3], torch.full((3,), a_hat[i]), atol=1e-4, rtol=1e-4)
    assert out.metrics["guard_frac"] == pytest.approx(0.25)


def test_gae_by_hand():
    from rlreason.algos.l2t_ppo import gae

    # one sequence of 3 tokens, reward 1 on the last token, values 0.5, 0.25, 0; gamma 1, lambda 0.5
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    v = torch.tensor([[0.5, 0.25, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # deltas: t2: 1 + 0 - 0 = 1; t1: 0 + 0 - 0.25 = -0.25; t0: 0 + 0.25 - 0.5 = -0.25
    # A2 = 1; A1 = -0.25 + 0.5 * 1 = 0.25; A0 = -0.25 + 0.5 * 0.25 = -0.125
    torch.testing.assert_close(gae(r, v, m, 1.0, 0.5), torch.tensor([[-0.125, 0.25, 1.0, 0.0]]))


def test_l2t_gae_runs_end_to_end(tmp_path, monkeypatch):
    from rlreason.config import load_config
    from rlreason.train.run import run_experiment

    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    tiny = (
        "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
        "intermediate_size: 64}"
    )
    cfg = load_config(
        "experiments/lab/l2t.yaml",
        [
            tiny,
            "init.from=null",
            "optim.steps=2",
            "rollout.prompts_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=12",
            "eval.n=3",
            "eval.every_n_steps=0",
            "algo.advantage=gae",
            f"logging.dir={tmp_path}",
            "logging.progress_bar=false",
            "task.n_train_per_level=20",
        ],
    )
    run_dir = run_experiment(cfg)
    assert (run_dir / "results.json").is_file()
