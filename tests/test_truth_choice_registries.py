"""Optimisers, schedules and rollout backends are registries: config validation, the optimiser and
the schedule read their names from them, so registering one is all it takes to use it."""

from __future__ import annotations

import math

import pytest
import torch

import rlreason.components  # noqa: F401  (registers the built-in entries)
from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.policy.rollout import HFRolloutBackend
from rlreason.registry import OPTIMIZERS, ROLLOUT_BACKENDS, SCHEDULES
from rlreason.train.optim import build_optimizer, lr_lambda


def test_builtin_names_are_registered():
    assert OPTIMIZERS.names() == ["adamw", "sgd"]
    assert SCHEDULES.names() == ["constant", "cosine", "linear"]
    assert ROLLOUT_BACKENDS["hf"] is HFRolloutBackend


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.optimizer=adam", r"^command line: optim\.optimizer: expected adamw \| sgd, got 'adam'$"),
        ("optim.schedule=step", r"^command line: optim\.schedule: expected constant \| cosine \| linear, got 'step'$"),
        ("rollout.backend=sglang", r"^command line: rollout\.backend: expected hf \| vllm, got 'sglang'$"),
    ],
)
def test_unregistered_name_is_refused_at_load(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_a_registered_optimizer_is_accepted_by_config_and_built(monkeypatch):
    def momentum_sgd(groups, optim_cfg):
        """SGD with momentum (a test plugin)."""
        return torch.optim.SGD(groups, lr=optim_cfg.lr, momentum=0.5)

    monkeypatch.setitem(OPTIMIZERS._items, "momentum_sgd", momentum_sgd)
    cfg = load_config(None, ["optim.optimizer=momentum_sgd", "optim.lr=0.5"])
    params = [torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))]
    opt = build_optimizer(params, cfg.optim)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.5 and opt.defaults["lr"] == 0.5
    assert [g["weight_decay"] for g in opt.param_groups] == [cfg.optim.weight_decay, 0.0]  # matrices decay only


def test_a_registered_backend_and_schedule_are_accepted(monkeypatch):
    monkeypatch.setitem(ROLLOUT_BACKENDS._items, "mine", HFRolloutBackend)
    monkeypatch.setitem(SCHEDULES._items, "half", lambda progress: 0.5)
    cfg = load_config(None, ["rollout.backend=mine", "optim.schedule=half"])
    assert cfg.rollout.backend == "mine" and lr_lambda(10, 0, cfg.optim.schedule)(3) == 0.5


def test_schedules_give_the_hand_computed_multipliers():
    warm = lr_lambda(10, 2, "linear")
    assert [warm(0), warm(1)] == [0.5, 1.0]  # warm-up
    assert warm(2) == 1.0 and warm(6) == 0.5 and warm(10) == 0.0  # linear after 2 warm-up steps over 8
    cos = lr_lambda(10, 0, "cosine")
    assert cos(0) == 1.0 and cos(5) == 0.5 * (1.0 + math.cos(math.pi * 0.5)) and cos(10) == 0.0
    assert lr_lambda(10, 0, "constant")(7) == 1.0
