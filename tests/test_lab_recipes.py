"""The two lab reproductions' recipes run for real (tiny model, 2 RL steps) and log what their
README plots are made of: sampled think ratio per difficulty, DeGRPO's effective alpha, and
info-gain's gain / penalty per episode type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB

from rlreason.config import load_config
from rlreason.train.run import run_experiment

TINY = TINY_LAB
RL = ["optim.steps=2", "rollout.prompts_per_step=3", "rollout.group_size=4", "rollout.max_new_tokens=16"]


def scalar_tags(run_dir: Path) -> set[str]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))


def test_thinkless_recipe_logs_think_ratio_per_difficulty_and_effective_alpha(tmp_path, tiny_sft_policy):
    cfg = load_config(
        "experiments/lab/thinkless.yaml", [*TINY, *RL, f"init.from={tiny_sft_policy}", f"logging.dir={tmp_path}"]
    )
    assert cfg.algo.alpha_per_token > 0 and "alpha" not in cfg.algo
    run_dir = run_experiment(cfg)
    tags = scalar_tags(run_dir)
    assert {f"mode/think_ratio/{lv}" for lv in ("easy", "medium", "hard")} <= tags
    assert "algo/alpha_effective" in tags
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    # one minibatch per step: the minibatch is the step's rollout, so alpha = alpha_per_token / its mean length
    lengths = {e.step: e.value for e in acc.Scalars("train/response_len_mean")}
    for e in acc.Scalars("algo/alpha_effective"):
        assert e.value == pytest.approx(cfg.algo.alpha_per_token / lengths[e.step], rel=1e-5)
    per = json.loads((run_dir / "results.json").read_text())["lab-arith"]["per_difficulty"]
    assert set(per) == {"easy", "medium", "hard"} and all("think_ratio" in v for v in per.values())


def test_l2t_recipe_logs_info_gain_per_episode_type(tmp_path, tiny_sft_policy):
    cfg = load_config(
        "experiments/lab/l2t.yaml", [*TINY, *RL, f"init.from={tiny_sft_policy}", f"logging.dir={tmp_path}"]
    )
    assert cfg.task.styles == ["think"] and cfg.task.redundant_max == 3
    tags = scalar_tags(run_experiment(cfg))
    # the task's useful steps reach the reward through the rollout batch's metadata
    assert {f"info_gain/episodes_per_sample/{t}" for t in ("useful", "recheck", "other")} <= tags
    assert {f"mode/think_ratio/{lv}" for lv in ("easy", "medium", "hard")} <= tags
