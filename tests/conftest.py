"""Shared test helpers, and the `shared_data` marker.

Tests that read the real benchmark files carry `@pytest.mark.shared_data("gsm8k", ...)` (the folder
names under the data root, `rlreason.paths.shared_data_dir()`: `$RLREASON_DATA`, else
`../shared/data` beside the checkout). When a named folder is absent, as in a fresh clone without
`../shared`, the test is skipped with a reason naming the folder instead of failing on a missing
file. `RLREASON_DATA=/elsewhere pytest` points every such test (and the code under test) at another
copy.
"""

from __future__ import annotations

import os

# No test may reach the network: forced (not defaulted) before anything can import huggingface_hub,
# which reads HF_HUB_OFFLINE once, at import. Subprocesses started by tests inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import sys
from pathlib import Path

import pytest
import torch

from rlreason.batch import RolloutBatch
from rlreason.paths import shared_data_dir

sys.path.insert(0, str(Path(__file__).parent))  # tests_helpers, reward_fns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "shared_data(*names): needs these benchmark folders under the data root; skipped when absent"
    )


def missing_data(names: tuple[str, ...]) -> str | None:
    """Why a test needing the benchmark folders `names` cannot run here, or None when it can."""
    root = shared_data_dir()
    absent = [n for n in names or ("",) if not (root / n).is_dir()]
    if not absent:
        return None
    return f"needs benchmark data {', '.join(str(root / n) for n in absent)} (absent; set RLREASON_DATA to its folder)"


@pytest.hookimpl(tryfirst=True)  # before fixtures start (e.g. a verifier pool)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("shared_data"):
        reason = missing_data(tuple(marker.args))
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_sft_policy(tmp_path_factory):
    """A 3-step SFT warm-up of the tiny lab model (`tests_helpers.TINY_LAB`), built once per test process
    and shared by the recipe tests that start RL from it."""
    from tests_helpers import TINY_LAB

    from rlreason.config import load_config
    from rlreason.train.run import run_experiment

    mp = pytest.MonkeyPatch()
    mp.setenv("RLREASON_CACHE", str(tmp_path_factory.mktemp("sft-cache")))
    overrides = [f"logging.dir={tmp_path_factory.mktemp('sft')}", "optim.steps=3", "optim.batch_size=4"]
    cfg = load_config("experiments/lab/sft.yaml", [*TINY_LAB, *overrides, "eval.per_mode=false"])
    yield run_experiment(cfg) / "policy"
    mp.undo()


def make_batch(lengths, groups, modes=None, completions=None, width=None) -> RolloutBatch:
    """A RolloutBatch whose sample i has `lengths[i]` response tokens and group `groups[i]`."""
    n = len(lengths)
    width = width or max(lengths)
    mask = torch.zeros(n, width, dtype=torch.long)
    for i, length in enumerate(lengths):
        mask[i, :length] = 1
    return RolloutBatch(
        prompt_ids=torch.ones(n, 2, dtype=torch.long),
        prompt_mask=torch.ones(n, 2, dtype=torch.long),
        response_ids=torch.full((n, width), 5) * mask,
        response_mask=mask,
        old_logprobs=torch.zeros(n, width),
        group_ids=torch.tensor(groups),
        truncated=torch.tensor([length >= width for length in lengths]),
        prompts=["p"] * n,
        completions=completions or ["c"] * n,
        golds=["1"] * n,
        meta=[{"difficulty": "easy"} for _ in range(n)],
        control_mode=modes,
    )


@pytest.fixture
def batch_factory():
    return make_batch
