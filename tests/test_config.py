"""Experiment config: inheritance, overrides, and one-line errors through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.cli import main
from rlreason.config import load_config, to_yaml
from rlreason.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_inheritance_relative_to_file_and_overrides(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", "name: base\nseed: 3\noptim: {lr: 0.001, steps: 10}\nrollout: {group_size: 4}\n")
    child = write(tmp_path / "sub" / "child.yaml", "base: ../base.yaml\nname: child\noptim: {steps: 20}\n")
    cfg = load_config(
        child, ["optim.lr=5e-4", "rollout.temperature=0.7", "optim.betas=[0.9,0.95]", "name=${task.name}-run"]
    )
    assert cfg.name == "lab-arith-run"  # interpolation resolved
    assert cfg.seed == 3 and cfg.optim.steps == 20 and cfg.optim.lr == 5e-4
    assert cfg.rollout.group_size == 4 and cfg.rollout.temperature == 0.7
    assert list(cfg.optim.betas) == [0.9, 0.95]
    assert "name: lab-arith-run" in to_yaml(cfg)


def test_absolute_base_and_stage_path(tmp_path):
    base = write(tmp_path / "base.yaml", "seed: 1\n")
    child = write(tmp_path / "c.yaml", f"base: {base}\ninit: {{from: sft.yaml}}\n")
    write(tmp_path / "sft.yaml", "name: sft\n")  # a stage config is loaded (validated) with its run's
    cfg = load_config(child)
    assert cfg.seed == 1 and cfg.init.from_ == str(tmp_path / "sft.yaml")


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("optim: {lrr: 1}\n", [], r"c\.yaml: optim\.lrr: Key 'lrr' not in"),
        ("optim: {lr: fast}\n", [], r"c\.yaml: optim\.lr: .*"),
        ("optim: [1, 2\n", [], r"c\.yaml:2: invalid YAML: expected .,. or .\]."),
        ("base: missing.yaml\n", [], r"c\.yaml: base: file not found: .*missing\.yaml"),
        ("reward: {name: binray}\n", [], r"reward\.name: unknown reward 'binray'; did you mean 'binary'"),
        ("algo: {name: grpo, betta: 0.1}\n", [], r"algo\.betta: unknown parameter of algo 'grpo'"),
        ("", ["optim.lr"], r"command line: 'optim.lr': expected key=value"),
        ("", ["rollout.group_sise=4"], r"command line: rollout\.group_sise: Key 'group_sise' not in"),
        ("rollout: {group_size: 1}\n", [], r"rollout\.group_size: algorithm 'grpo' .* at least 2"),
        ("rollout: {temperature: 0}\n", [], r"rollout\.temperature: expected > 0"),
        ("- just\n- a list\n", [], r"expected a mapping of config keys"),
    ],
)
def test_bad_config_is_one_line_error_naming_file_and_key(tmp_path, text, overrides, expected):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(path, overrides)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cli_exit_status_2_without_traceback(tmp_path, capsys):
    path = write(tmp_path / "c.yaml", "optim: {lrr: 1}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.lrr" in err and "Traceback" not in err


def test_cli_subprocess_bad_config(tmp_path):
    path = write(tmp_path / "c.yaml", "reward: {name: nonexistent}\n")
    proc = subprocess.run([sys.executable, "-m", "rlreason.cli", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "reward.name: unknown reward 'nonexistent'" in proc.stderr and "Traceback" not in proc.stderr


def test_list_shows_components_with_defaults(capsys):
    assert main(["list", "algos"]) == 0
    out = capsys.readouterr().out
    assert "grpo" in out and "loss_type = " in out and "sft" in out


def test_changing_a_component_name_replaces_its_section(tmp_path):
    write(tmp_path / "base.yaml", "algo: {name: degrpo, alpha: 0.01, normalization: official}\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nalgo: {name: grpo, loss_type: dapo}\n")
    cfg = load_config(child)
    assert dict(cfg.algo) == {"name": "grpo", "loss_type": "dapo"}  # no stale degrpo parameters
    same = write(tmp_path / "same.yaml", "base: base.yaml\nalgo: {name: degrpo, alpha: 0.1}\n")
    assert dict(load_config(same).algo) == {"name": "degrpo", "alpha": 0.1, "normalization": "official"}
    assert dict(load_config(child, ["algo.name=sft"]).algo) == {"name": "sft"}
