"""`optim.micro_batch_tokens`: length-sorted micro-batches under a padded-token budget, each cut to its
own longest prompt and response. Every sample trains exactly once per minibatch, the budget holds, and
the update is the default one up to float rounding (same first-step loss, gradient norm and
sampler/trainer parity on a real lab run)."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB, rollout_batch

from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.train.micro_batches import micro_batches, micro_columns
from rlreason.train.run import run_experiment


def lengths_batch():
    prompts = [[5] * p for p in (3, 1, 2, 3, 1, 2)]
    responses = [[7] * r for r in (4, 12, 1, 9, 2, 30)]
    return rollout_batch(prompts, responses, pad_id=0, golds=["1"] * 6)


def test_every_sample_once_within_the_budget_and_columns_cut_to_the_micro_batch():
    batch = lengths_batch()
    rows = torch.tensor([5, 0, 2, 4, 1, 3])
    parts = micro_batches(batch, rows, size=0, tokens=24)
    assert sorted(torch.cat(parts).tolist()) == sorted(rows.tolist())
    p_len, r_len = batch.prompt_mask.sum(-1), batch.response_mask.sum(-1)
    for sub in parts:
        padded = len(sub) * (int(p_len[sub].max()) + int(r_len[sub].max()))
        assert padded <= 24 or len(sub) == 1  # a sample longer than the budget goes alone
        pc, rc = micro_columns(batch, sub, trim=True)
        assert batch.prompt_mask[sub][:, pc].sum() == batch.prompt_mask[sub].sum()  # no real token cut
        assert batch.response_mask[sub][:, rc].sum() == batch.response_mask[sub].sum()
        assert rc.stop == int(r_len[sub].max()) and pc.stop - pc.start == int(p_len[sub].max())
    # off: the historical consecutive slices, untrimmed
    assert [s.tolist() for s in micro_batches(batch, rows, size=4, tokens=0)] == [[5, 0, 2, 4], [1, 3]]
    assert micro_columns(batch, rows, trim=False) == (slice(None), slice(None))


def first_step(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = ("algo/loss", "optim/grad_norm", "parity/logprob_diff_mean", "train/reward_mean")
    return {t: acc.Scalars(t)[0].value for t in tags}


def test_the_first_update_matches_the_default_up_to_rounding(tmp_path, tiny_sft_policy, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    rl = ["optim.steps=1", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=24"]
    runs = {}
    for tokens in (0, 96):
        cfg = load_config(
            "experiments/lab/grpo.yaml",
            [*TINY_LAB, *rl, f"optim.micro_batch_tokens={tokens}", f"init.from={tiny_sft_policy}",
             f"logging.dir={tmp_path / str(tokens)}"],
        )
        runs[tokens] = first_step(run_experiment(cfg))
    assert runs[0]["train/reward_mean"] == runs[96]["train/reward_mean"]  # the same rollout
    for tag in ("algo/loss", "optim/grad_norm"):
        assert runs[96][tag] == pytest.approx(runs[0][tag], rel=1e-4, abs=1e-6), tag
    assert runs[96]["parity/logprob_diff_mean"] < 1e-4


def test_a_negative_budget_is_refused():
    with pytest.raises(ConfigError, match=r"optim\.micro_batch_tokens"):
        load_config("experiments/lab/grpo.yaml", ["optim.micro_batch_tokens=-1"])


def test_the_option_at_its_default_keeps_cached_stages_valid():
    """A stage hashed before the key existed keeps its hash while the key is 0; setting it is a new stage."""
    from rlreason.train.run import config_hash

    sft = "experiments/lab/sft.yaml"
    default = config_hash(load_config(sft))
    assert default == config_hash(load_config(sft, ["optim.micro_batch_tokens=0"]))
    assert default != config_hash(load_config(sft, ["optim.micro_batch_tokens=512"]))
    from omegaconf import OmegaConf

    older = OmegaConf.to_container(load_config(sft))
    del older["optim"]["micro_batch_tokens"]  # the config as it was before the key existed
    assert config_hash(OmegaConf.create(older)) == default
