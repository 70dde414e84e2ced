"""Truncated and masked importance sampling between sampler and trainer (rlreason/algos/rollout_correction.py),
checked against weights computed by hand, and the config keys that switch it on."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from rlreason.algos.base import clipped_surrogate
from rlreason.algos.rollout_correction import correction_metrics, importance_weights
from rlreason.config import load_config
from rlreason.errors import ConfigError

# two sequences: log pi_old - log pi_sampler per token = log 3, log 0.5, 0 | log 1.5, log 4, (pad)
TRAINER = torch.tensor([[math.log(0.3), math.log(0.2), math.log(0.5)], [math.log(0.6), math.log(0.4), 0.0]])
SAMPLER = torch.tensor([[math.log(0.1), math.log(0.4), math.log(0.5)], [math.log(0.4), math.log(0.1), -7.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", [[1, 1, 1], [1, 1, 0]]),
        ("token_truncate", [[2, 0.5, 1], [1.5, 2, 0]]),  # min(rho_t, 2)
        ("token_mask", [[0, 0.5, 1], [1.5, 0, 0]]),  # rho_t if rho_t <= 2 else 0
        ("sequence_truncate", [[1.5, 1.5, 1.5], [2, 2, 0]]),  # rho = 3 * 0.5 * 1 = 1.5 | 1.5 * 4 = 6 -> 2
        ("sequence_mask", [[1.5, 1.5, 1.5], [0, 0, 0]]),
    ],
)
def test_weights_by_hand(mode, expected):
    w = importance_weights(TRAINER, SAMPLER, MASK, mode, cap=2.0)
    assert torch.allclose(w, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    assert not w.requires_grad


def test_metrics_by_hand():
    w = importance_weights(TRAINER, SAMPLER, MASK, "token_truncate", cap=2.0)
    m = correction_metrics(w, TRAINER, SAMPLER, MASK, "token_truncate", 2.0)
    assert m["rollout_is/weight_mean"] == pytest.approx((2 + 0.5 + 1 + 1.5 + 2) / 5)
    assert m["rollout_is/weight_min"] == pytest.approx(0.5) and m["rollout_is/weight_max"] == pytest.approx(2.0)
    assert m["rollout_is/capped_frac"] == pytest.approx(2 / 5)  # rho = 3 and 4
    log_r = [math.log(3), math.log(0.5), 0.0, math.log(1.5), math.log(4)]
    assert m["rollout_is/kl_k1"] == pytest.approx(-sum(log_r) / 5)
    assert m["rollout_is/kl_k3"] == pytest.approx(sum(math.exp(x) - 1 - x for x in log_r) / 5)


def test_scaled_advantages_are_the_weighted_clipped_loss():
    """The loop multiplies the token advantages by w; for the clipped surrogate that is w * l_t."""
    torch.manual_seed(0)
    logp, old, adv = torch.randn(2, 3) * 0.1 - 1, torch.randn(2, 3) * 0.1 - 1, torch.randn(2, 3)
    w = importance_weights(TRAINER, SAMPLER, MASK, "token_mask", cap=2.0)
    weighted, _ = clipped_surrogate(logp, old, adv * w, 0.2, 0.2)
    plain, _ = clipped_surrogate(logp, old, adv, 0.2, 0.2)
    assert torch.allclose(weighted, w * plain, atol=1e-7)


def test_identical_log_probs_give_unit_weights():
    for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"):
        w = importance_weights(TRAINER, TRAINER, MASK, mode, cap=1.0)
        assert torch.equal(w, MASK)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rollout.is_correction=tis", "rollout.is_correction: expected none | token_truncate | token_mask"),
        ("rollout.is_cap=0.5", "rollout.is_cap: expected >= 1 (the largest importance weight kept), got 0.5"),
    ],
)
def test_bad_keys_are_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("experiments/lab/grpo.yaml", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_engine_settings_under_another_backend_load_with_one_warning(capsys):
    """A vLLM recipe run with `rollout.backend=hf`: its engine block is unused, and the user is told."""
    cfg = load_config("experiments/lab/grpo.yaml", ["rollout.vllm={dtype: float32, sleep_mode: true}"])
    assert cfg.rollout.backend == "hf"
    lines = [line for line in capsys.readouterr().err.splitlines() if "rollout.vllm" in line]
    assert lines == ["rlreason: warning: rollout.vllm (dtype, sleep_mode): not used by rollout.backend 'hf'"]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="the optional extra vllm (scripts/setup.sh)")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer={devices: 2, strategy: fsdp}"], "rollout.backend: 'vllm' pushes each rank's whole weights"),
        (["trainer={devices: 2}", "rollout.vllm={tensor_parallel_size: 2}"], "tensor_parallel_size: expected 1"),
        (["rollout.vllm={kv_cache: 1}"], "rollout.vllm.kv_cache: unknown key (valid: dtype, kv_cache_memory_bytes"),
        (["rollout.vllm={dtype: fp8}"], "rollout.vllm.dtype: expected auto | float32 | bfloat16 | float16, got 'fp8'"),
    ],
)
def test_vllm_settings_and_ddp_are_checked_at_load(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config("experiments/lab/grpo.yaml", ["rollout.backend=vllm", *overrides])
    assert message in str(err.value) and "\n" not in str(err.value)
