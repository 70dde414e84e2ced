"""Shared test helpers."""

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

sys.path.insert(0, str(Path(__file__).parent))  # tests_helpers, reward_fns


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
