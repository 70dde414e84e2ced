"""One check of a component spec: a config loaded from a file or the command line and a component
built in code are refused with the same one-line message, naming the key by its full path."""

from __future__ import annotations

import json

import pytest

import rlreason.components  # noqa: F401  (registers the built-in components)
from rlreason.config import load_config
from rlreason.errors import ConfigError, RegistryError
from rlreason.registry import ALGOS, REWARDS, TASKS

BAD_SPECS = [
    (REWARDS, "reward", {"name": "kimi", "start_step": "soon"}, "reward.start_step: expected an integer, got 'soon'"),
    (REWARDS, "reward", {"name": "kimi", "start": 3}, "reward.start: unknown parameter of reward 'kimi'; did you mean"),
    (REWARDS, "reward", {"name": "kimi", "start_step": -1}, "reward.start_step: expected a non-negative step"),
    (TASKS, "task", {"name": "lab-arith", "pool": "warmup"}, "task.pool: expected 'all'"),
    (ALGOS, "algo", {"name": "grpo", "betta": 0.1}, "algo.betta: unknown parameter of algo 'grpo'"),
    (
        REWARDS,
        "reward",
        {"name": "sum", "terms": [{"name": "sum", "terms": [{"name": "binary"}, {"name": "kimmi"}]}]},
        "reward.terms[0].terms[1].name: unknown reward 'kimmi'; did you mean 'kimi'?",
    ),
    (
        REWARDS,
        "reward",
        {"name": "sum", "terms": [{"name": "kimi", "weight": "x"}]},
        "reward.terms[0].weight: expected",
    ),
]


@pytest.mark.parametrize(("reg", "key", "spec", "expected"), BAD_SPECS, ids=[s[3].split(":")[0] for s in BAD_SPECS])
def test_config_load_and_build_refuse_a_bad_spec_with_one_message(reg, key, spec, expected):
    with pytest.raises(RegistryError) as built:
        reg.build(spec, where=key)
    with pytest.raises(ConfigError) as loaded:
        load_config(None, [f"{key}={json.dumps(spec)}"])
    assert str(built.value).startswith(expected), str(built.value)
    assert str(loaded.value) == f"command line: {built.value}"
    assert "\n" not in str(loaded.value)


def test_eval_suite_task_is_checked_like_the_task_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("eval: {suite: [{name: lab-arith, seed: 1.5}, {pool: all}]}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: eval\.suite\[0\]\.seed: expected an integer, got 1\.5$"):
        load_config(path)
    path.write_text("eval: {suite: [{pool: all}]}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: eval\.suite\[0\]\.name: missing \(one of: .*lab-arith"):
        load_config(path)
