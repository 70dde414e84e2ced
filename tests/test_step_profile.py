"""The step profile's inputs: a real lab run (tiny model, 2 RL steps) logs `perf/<phase>_time` for every
phase its recipe runs, at every step, and the phases never add up to more than `perf/step_time`
(benchmarks/step_profile.py reads these to build its table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB

from rlreason.config import load_config
from rlreason.train.run import run_experiment

RL = ["optim.steps=2", "rollout.prompts_per_step=3", "rollout.group_size=4", "rollout.max_new_tokens=16"]
ALWAYS = {"rollout", "verify", "reward", "advantages", "forward_backward", "optimizer"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))


def phase_times(run_dir: Path) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
    """Per step: {phase: seconds} from every `perf/<phase>_time` but the total, and `perf/step_time`."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    phases: dict[int, dict[str, float]] = {}
    for tag in acc.Tags()["scalars"]:
        if tag.startswith("perf/") and tag.endswith("_time") and tag != "perf/step_time":
            for e in acc.Scalars(tag):
                phases.setdefault(e.step, {})[tag.removeprefix("perf/").removesuffix("_time")] = e.value
    return phases, {e.step: e.value for e in acc.Scalars("perf/step_time")}


@pytest.mark.parametrize(
    ("recipe", "extra", "expected"),
    [
        ("experiments/lab/grpo.yaml", [], ALWAYS),  # beta 0: no reference pass
        ("experiments/lab/thinkless.yaml", [], ALWAYS | {"reference"}),  # DeGRPO, beta 0.001
        ("experiments/lab/l2t.yaml", ["algo.advantage=gae"], ALWAYS | {"values"}),  # a critic pass
    ],
    ids=["grpo", "degrpo", "l2t-gae"],
)
def test_every_phase_of_the_recipe_is_logged_and_they_sum_to_at_most_the_step(
    tmp_path, tiny_sft_policy, recipe, extra, expected
):
    cfg = load_config(recipe, [*TINY_LAB, *RL, *extra, f"init.from={tiny_sft_policy}", f"logging.dir={tmp_path}"])
    assert (cfg.algo.beta > 0) == ("reference" in expected)
    phases, step_time = phase_times(run_experiment(cfg))
    assert sorted(step_time) == [0, 1] and sorted(phases) == [0, 1]
    for step, times in phases.items():
        assert set(times) == expected, f"step {step}"
        assert all(s >= 0 for s in times.values())
        assert sum(times.values()) <= step_time[step]
