"""Every value is checked before any work starts: `trainer.*` against `lightning.Trainer`'s signature,
the `init.from` stage config, and `model.*` against the model the run really starts from. Also the
`shared_data` skip, proven by pointing the data root at an empty folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.cli import main
from rlreason.config import load_config
from rlreason.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "experiments" / "lab"
STAGE = (  # a tiny SFT stage: were validation to let a bad value through, it would train (and leave runs/)
    "name: stage\nmodel: {name_or_path: lab-tiny, lab: {hidden_size: 32, num_hidden_layers: 1, "
    "num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64}}\nalgo: {name: sft}\n"
    "optim: {steps: 1, batch_size: 2}\neval: {n: 1}\nlogging: {progress_bar: false}\n"
    "task: {name: lab-arith, n_train_per_level: 5, n_test_per_level: 1}\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.num_nodes=notanumber", r"trainer\.num_nodes: expected an integer, got 'notanumber'"),
        ("trainer.num_nodes=true", r"trainer\.num_nodes: expected an integer, got True"),
        ("trainer.max_steps=2", r"trainer\.max_steps: set by rlreason \(the run length is optim\.steps=N\)"),
        ("trainer.precision=bf17", r"trainer\.precision: expected 64, 32, 16, .*'bf16-mixed'.* or null, got 'bf17'"),
        ("trainer.devices=1.5", r"trainer\.devices: expected .*an integer, got 1\.5"),
        ("trainer.devices=[0, x]", r"trainer\.devices\[1\]: expected an integer, got 'x'"),
        ("trainer.accelerator=3", r"trainer\.accelerator: expected a string, got 3"),
        ("trainer.gradient_clip_val=high", r"trainer\.gradient_clip_val: expected a number or null, got 'high'"),
        ("trainer.deterministic=maybe", r"trainer\.deterministic: expected 'warn' or true/false or null"),
        ("trainer.plugins=[x]", r"trainer\.plugins: expected null, got \['x'\]"),
    ],
)
def test_bad_trainer_value_is_refused_at_load(tmp_path, override, expected):
    cfg = write(tmp_path / "c.yaml", "name: c\n")
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(cfg, [override])
    assert "\n" not in str(err.value)


def test_good_trainer_values_pass():
    cfg = load_config(
        LAB / "sft.yaml",
        [
            "trainer.num_nodes=1",
            "trainer.precision=bf16-mixed",
            "trainer.devices=[0, 1]",
            "trainer.max_time={hours: 1}",
            "trainer.gradient_clip_val=1",
            "trainer.deterministic=warn",
            "trainer.accelerator=cpu",
        ],
    )
    assert cfg.trainer.precision == "bf16-mixed" and list(cfg.trainer.devices) == [0, 1]


def test_bad_trainer_value_fails_before_the_init_stage_trains(tmp_path, capsys, monkeypatch):
    """The issue's case (a bad trainer value on an RL run whose SFT stage has not run yet); max_steps itself
    is now refused outright (the run length is optim.steps), so a typed key stands in for it."""
    monkeypatch.setenv("RLREASON_CACHE", str(tmp_path / "cache"))
    write(tmp_path / "stage.yaml", STAGE)
    rl = write(tmp_path / "rl.yaml", "name: rl\ninit: {from: stage.yaml}\nalgo: {name: grpo}\n")
    assert main(["run", str(rl), "trainer.num_nodes=notanumber", f"logging.dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer.num_nodes: expected an integer, got 'notanumber'" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_bad_value_in_the_init_stage_fails_when_the_run_loads(tmp_path):
    write(tmp_path / "stage.yaml", STAGE + "trainer: {precision: fp8}\n")
    rl = write(tmp_path / "rl.yaml", "name: rl\ninit: {from: stage.yaml}\n")
    with pytest.raises(ConfigError, match=r"rl\.yaml: init\.from: .*stage\.yaml: trainer\.precision: expected") as err:
        load_config(rl)
    assert "\n" not in str(err.value)


def test_missing_init_stage_is_refused(tmp_path):
    rl = write(tmp_path / "rl.yaml", "name: rl\ninit: {from: sft.yaml}\n")
    with pytest.raises(ConfigError, match=rf"rl\.yaml: init\.from: stage config not found: {tmp_path / 'sft.yaml'}$"):
        load_config(rl)


def test_circular_init_stages_are_refused(tmp_path):
    write(tmp_path / "a.yaml", "name: a\ninit: {from: b.yaml}\n")
    write(tmp_path / "b.yaml", "name: b\ninit: {from: a.yaml}\n")
    with pytest.raises(ConfigError, match=r"init\.from: circular stages \(.*a\.yaml -> .*b\.yaml -> .*a\.yaml\)"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("reward.gamma=abc", r"reward\.gamma: expected a number, got 'abc'"),
        ("task.seed=1.5", r"task\.seed: expected an integer, got 1\.5"),
        ("task.levels=easy", r"task\.levels: expected a list of strings, got 'easy'"),
        ("task.level_weights={easy: x}", r"task\.level_weights\.easy: expected a number, got 'x'"),
    ],
)
def test_component_parameters_are_checked_against_their_annotations(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(LAB / "thinkless.yaml", [override])


def test_exponent_without_a_dot_is_a_number_in_files_and_overrides(tmp_path):
    """YAML 1.1 (PyYAML) reads `1e-3` as a string; a component would get '1e-3'."""
    cfg = write(tmp_path / "c.yaml", "name: c\nalgo: {name: degrpo, alpha: 1e-3}\nreward: {name: thinkless}\n")
    loaded = load_config(cfg, ["algo.eps_low=2e-1", "optim.lr=5E-5"])
    assert (loaded.algo.alpha, loaded.algo.eps_low, loaded.optim.lr) == (0.001, 0.2, 5e-5)
    assert load_config(cfg, ["name=1e5x"]).name == "1e5x"


# -- model.name_or_path with init.from ---------------------------------------------------------------


def test_model_that_disagrees_with_the_init_stage_is_an_error(tmp_path):
    with pytest.raises(
        ConfigError, match=r"model\.name_or_path: '/my/model' is not the model .*/sft\.yaml, which trains 'lab-tiny'"
    ) as err:
        load_config(LAB / "grpo.yaml", ["model.name_or_path=/my/model"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"model\.lab: .* is not the model"):
        load_config(LAB / "grpo.yaml", ["model.lab={hidden_size: 16}"])


@pytest.mark.parametrize(
    ("name", "stage"),
    [("grpo", "sft"), ("thinkless", "sft"), ("thinkless_grpo", "sft"), ("l2t", "sft_l2t"), ("l2t_grpo", "sft_l2t")],
)
def test_shipped_lab_configs_agree_with_their_stage_and_warn_nothing(name, stage, capsys):
    cfg = load_config(LAB / f"{name}.yaml")
    assert cfg.init.from_.endswith(f"/{stage}.yaml")
    assert "warning" not in capsys.readouterr().err


def test_model_that_disagrees_with_an_earlier_run_is_an_error(tmp_path):
    run = tmp_path / "runs" / "sft" / "version_0"
    (run / "policy").mkdir(parents=True)
    (run / "config.yaml").write_text("name: sft\nmodel: {name_or_path: lab-tiny, lab: {}}\n")
    for src in (run, run / "policy"):
        with pytest.raises(ConfigError, match=r"model\.name_or_path: 'org/other' is not the model .* the run "):
            load_config(None, [f"init.from={src}", "model.name_or_path=org/other"])
        load_config(None, [f"init.from={src}", "model.name_or_path=lab-tiny"])  # agreeing: fine


def test_hub_init_with_another_model_name_warns_once(capsys):
    """The Thinkless recipe names its base model and starts from the warm-up checkpoint: one warning."""
    load_config(ROOT / "experiments" / "paper" / "thinkless_r1_1.5b.yaml")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "rlreason: warning: init.from: the run starts from 'Vinnnf/Thinkless-1.5B-Warmup'" in err
    assert "model.name_or_path 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B' is not loaded" in err


# -- the shared_data marker ---------------------------------------------------------------------------


def test_tests_needing_absent_benchmark_data_skip_with_a_reason(tmp_path):
    """A clone without ../shared: the benchmark tests skip (naming the folder), they do not fail."""
    env = {**os.environ, "RLREASON_DATA": str(tmp_path / "no-data"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/test_tasks.py::test_benchmark_prompt_templates",
            "tests/test_data_sources.py::test_minerva_math_gold_is_the_last_boxed_of_the_solution",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "2 skipped" in proc.stdout and "failed" not in proc.stdout
    assert f"needs benchmark data {tmp_path / 'no-data' / 'aime24'} (absent" in proc.stdout
    assert f"{tmp_path / 'no-data' / 'minerva_math'}" in proc.stdout
