"""The everyday workflow without training: CLI parsing, paths that do not depend on the working
directory, trainer limits, valid results.json, the Text tab, sweep HParams, no deprecated cache use."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from rlreason.ablate import cell_hparams
from rlreason.cli import main, parse_args
from rlreason.config import load_config, project_root, to_yaml
from rlreason.errors import ConfigError
from rlreason.json_files import write_json
from rlreason.train.callbacks import code_block, samples_markdown

REPO = Path(__file__).resolve().parents[1]
GRPO = REPO / "experiments" / "lab" / "grpo.yaml"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "rlreason.cli", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


# -- item 8: flags and overrides in any order; --print-config; --version; --help ----------------------
@pytest.mark.parametrize(
    "argv, flag, overrides",
    [
        (["run", "X.yaml", "--resume", "optim.lr=1e-5", "seed=2"], ("resume", True), ["optim.lr=1e-5", "seed=2"]),
        (["ablate", "A.yaml", "--workers", "2", "seed=1"], ("workers", 2), ["seed=1"]),
        (["eval", "R", "--out", "f.json", "eval.n=5"], ("out", "f.json"), ["eval.n=5"]),
        (["eval", "R", "eval.n=5", "--out", "f.json", "seed=3"], ("out", "f.json"), ["eval.n=5", "seed=3"]),
    ],
)
def test_flags_and_overrides_intermix(argv, flag, overrides):
    args = parse_args(argv)
    assert getattr(args, flag[0]) == flag[1]
    assert args.overrides == overrides


def test_print_config_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    assert main(["run", str(GRPO), "optim.lr=2e-5", "--print-config", f"logging.dir={tmp_path}"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 2e-5 and cfg["name"] == "lab-grpo"
    assert cfg["init"]["from"] == str(REPO / "experiments" / "lab" / "sft.yaml")
    assert not any(tmp_path.iterdir())


def test_version_and_help_for_every_flag():
    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "rlreason 0.1.0"
    from rlreason.cli import _parsers

    _, commands = _parsers()
    assert set(commands) == {"list", "verify", "run", "eval", "ablate", "report"}
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help, f"rlreason {name} {action.option_strings or action.dest}: no --help text"


# -- item 3 / 11: paths resolved against the config's project, saved config re-runnable --------------------
def test_logging_dir_and_stage_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(GRPO)
    assert cfg.logging.dir == str(REPO / "runs")  # the repository's runs/, not ./runs
    assert cfg.init.from_ == str(REPO / "experiments" / "lab" / "sft.yaml")
    # on the command line a relative path means the working directory, as everywhere else
    assert load_config(GRPO, ["logging.dir=mine"]).logging.dir == str(tmp_path / "mine")
    (tmp_path / "warm").mkdir()
    assert load_config(GRPO, ["init.from=warm"]).init.from_ == str(tmp_path / "warm")
    assert project_root(GRPO) == REPO


def test_a_saved_config_loads_identically_from_elsewhere(tmp_path, monkeypatch):
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    saved.write_text(to_yaml(load_config(GRPO, ["optim.steps=7"])))
    monkeypatch.chdir(tmp_path / "run")
    again = load_config(saved)
    assert to_yaml(again) == saved.read_text()


def test_stage_identity_ignores_where_it_is_logged(tmp_path):
    from rlreason.train.run import config_hash

    sft = REPO / "experiments" / "lab" / "sft.yaml"
    a = load_config(sft, [f"logging.dir={tmp_path / 'a'}"])
    b = load_config(sft, [f"logging.dir={tmp_path / 'b'}", "logging.logger=csv", "logging.checkpoint_every_n_steps=5"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config(sft, ["optim.lr=1e-3"]))


# -- item 5: one source of truth for the run length ------------------------------------------------------
@pytest.mark.parametrize("key", ["max_steps", "min_steps", "limit_train_batches"])
def test_trainer_step_limits_are_refused_in_one_line(key, capsys):
    assert main(["run", str(GRPO), f"trainer.{key}=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"trainer.{key}: set by rlreason" in err and "optim.steps" in err


def test_bad_logger_is_a_one_line_error(capsys):
    assert main(["run", str(GRPO), "logging.logger=[tensorboard,neptune]", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "logging.logger" in err and "tensorboard | wandb | mlflow | csv" in err


def test_checkpoint_default_is_non_zero_for_rl_and_end_only_for_sft():
    from rlreason.config import checkpoint_interval

    assert checkpoint_interval(load_config(GRPO), needs_rollout=True) == 6  # 60 steps
    assert checkpoint_interval(load_config(GRPO, ["optim.steps=3"]), needs_rollout=True) == 1
    assert checkpoint_interval(load_config(GRPO, ["logging.checkpoint_every_n_steps=0"]), True) == 0
    assert checkpoint_interval(load_config(REPO / "experiments/lab/sft.yaml"), needs_rollout=False) == 0


# -- item 11: results.json is JSON; report refuses a non-sweep directory ------------------------------------
def test_results_json_has_null_not_nan(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"t": {"acc_think": math.nan, "x": [math.inf, 1.0], "n": 3}, "v": torch.tensor([0.5])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"t": {"acc_think": None, "x": [None, 1.0], "n": 3}, "v": [0.5]}


def test_report_on_a_non_sweep_directory_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    for where in (tmp_path, tmp_path / "missing"):
        assert main(["report", str(where)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a sweep directory" in err
    assert not (tmp_path / "summary.md").exists()


def test_eval_of_a_directory_without_config_fails_in_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


# -- item 9: completions are shown verbatim in TensorBoard's Text tab -----------------------------------
def test_text_tab_shows_completions_verbatim():
    from tensorboard.plugin_util import markdown_to_safe_html

    completion = "5*7=35 / 7*7=49 so x_1 = \\frac{a}{b} and <think> `tick` ```fence``` | pipe"
    html = markdown_to_safe_html(samples_markdown([("Q: 5*7*7=", completion, "1715", 0.5)]))
    import html as html_lib

    shown = html_lib.unescape(html)
    assert "5*7=35 / 7*7=49" in shown and "x_1 = \\frac{a}{b}" in shown and "<think>" in shown
    assert "<em>" not in html and "&lt;think&gt;" in html  # nothing rendered, nothing dropped
    assert "```fence```" in shown  # a fence inside a completion does not close the block
    assert code_block("a``b").startswith("```text\n")


# -- item 6: a sweep's HParams carry every grid key ---------------------------------------------------
def test_sweep_hparams_hold_every_grid_key():
    cfg = {"seed": 1, "algo": {"name": "degrpo", "alpha": 0.5}, "optim": {"lr": 1e-4}}
    hp = cell_hparams(cfg, ["algo", "optim.lr", "seed"])
    assert hp == {"algo.name": "degrpo", "algo.alpha": 0.5, "optim.lr": 1e-4, "seed": 1}
    other = cell_hparams({**cfg, "algo": {"name": "degrpo", "alpha": 1.0}}, ["algo", "optim.lr", "seed"])
    assert other != hp


# -- item 12: the rollout uses the Cache API, not the deprecated past_key_values ----------------------------
def test_rollout_uses_no_deprecated_cache_argument():
    import logging

    from transformers import Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging

    from rlreason.policy.rollout import HFRolloutBackend, SamplingParams

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    model = Qwen2ForCausalLM(cfg).eval()
    hf_logging.warning_once.cache_clear()  # transformers logs "deprecated" once per process
    root, handler = hf_logging.get_logger("transformers"), Collect()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gen = HFRolloutBackend([1], 0).generate(model, [[5, 6], [7]], SamplingParams(max_new_tokens=4), [0, 1])
    finally:
        root.removeHandler(handler)
    messages = [str(w.message) for w in caught] + handler.messages
    assert gen.response_mask.sum() > 0
    assert not [m for m in messages if "past_key_values" in m or "deprecated" in m], messages


def test_negative_checkpoint_interval_is_refused():
    with pytest.raises(ConfigError, match=r"logging\.checkpoint_every_n_steps"):
        load_config(GRPO, ["logging.checkpoint_every_n_steps=-1"])
