"""Bad input is refused cleanly (issue #8): one line naming the file and key, exit status 2, no
traceback, nothing created on disk; and no surprises: no network, clear offline and disk errors.

Each CLI start costs seconds of imports, so the malformed configs run through the real
`rlreason.cli.main` in ONE subprocess (a driver that records return code and stderr per case); a few
cases run as true `python -m rlreason.cli` subprocesses to prove exit status 2 end to end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlreason.config import load_config
from rlreason.errors import ConfigError
from rlreason.train.preflight import check_disk_space, checkpoints_on_disk_at_once, estimate_checkpoint_bytes

ROOT = Path(__file__).resolve().parents[1]
GRPO = ROOT / "experiments" / "lab" / "grpo.yaml"
SFT = ROOT / "experiments" / "lab" / "sft.yaml"
TINY_LAB = (
    "{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64}"
)

# (case id, YAML text or None for no file of its own, extra argv after the config, expected in the message).
# "@GRPO" stands for the absolute path of experiments/lab/grpo.yaml (its init.from would run an SFT
# stage: any case that got past validation would create runs/ and the model cache, which is checked).
CASES: list[tuple[str, str | None, list[str], str]] = [
    ("unknown_key", "base: @GRPO\noptim: {lrr: 1}\n", [], "optim.lrr: Key 'lrr' not in"),
    ("wrong_type", "base: @GRPO\noptim: {lr: fast}\n", [], "optim.lr:"),
    ("unknown_reward", "base: @GRPO\nreward: {name: binray}\n", [], "reward.name: unknown reward 'binray'"),
    ("unknown_algo", "algo: {name: ppo2}\n", [], "algo.name: unknown algo 'ppo2'"),
    ("unknown_param", "base: @GRPO\nalgo: {name: grpo, betta: 0.1}\n", [], "algo.betta: unknown parameter"),
    ("invalid_yaml", "optim: [1, 2\n", [], "invalid YAML"),
    ("top_level_list", "- a\n- b\n", [], "expected a mapping of config keys"),
    ("missing_base", "base: missing.yaml\n", [], "base: file not found"),
    ("circular_base", "base: circular_base.yaml\n", [], "base: circular inheritance"),
    ("grpo_group_1", "base: @GRPO\nrollout: {group_size: 1}\n", [], "rollout.group_size: algorithm 'grpo'"),
    ("degrpo_group_1", "algo: {name: degrpo}\nrollout: {group_size: 1}\n", [], "algorithm 'degrpo' compares"),
    ("l2t_group_1", "algo: {name: l2t_ppo}\nrollout: {group_size: 1}\n", [], "algorithm 'l2t_ppo' compares"),
    ("negative_lr", "base: @GRPO\noptim: {lr: -1.0e-5}\n", [], "optim.lr: expected > 0"),
    ("steps_0", "base: @GRPO\noptim: {steps: 0}\n", [], "optim.steps: expected a positive integer"),
    ("eval_n_negative", "base: @GRPO\neval: {n: -1}\n", [], "eval.n: expected >= 0"),
    ("unknown_optimizer", "base: @GRPO\noptim: {optimizer: adam}\n", [], "optim.optimizer: expected adamw | sgd"),
    ("temperature_0", "base: @GRPO\nrollout: {temperature: 0}\n", [], "rollout.temperature: expected > 0"),
    ("top_p_above_1", "base: @GRPO\nrollout: {top_p: 1.5}\n", [], "rollout.top_p: expected in (0, 1]"),
    ("top_p_0", "base: @GRPO\nrollout: {top_p: 0}\n", [], "rollout.top_p: expected in (0, 1]"),
    ("max_new_tokens_0", "base: @GRPO\nrollout: {max_new_tokens: 0}\n", [], "rollout.max_new_tokens"),
    ("minibatches_3", "base: @GRPO\noptim: {minibatches: 3}\n", [], "optim.minibatches: 3 does not divide"),
    ("micro_batch_negative", "base: @GRPO\noptim: {micro_batch_size: -1}\n", [], "optim.micro_batch_size"),
    ("task_pool_bad", "base: @GRPO\ntask: {name: lab-arith, pool: warmup}\n", [], "task.pool: expected 'all'"),
    ("betas_one_value", "base: @GRPO\noptim: {betas: [0.9]}\n", [], "optim.betas: expected two values"),
    ("algo_beta_negative", "base: @GRPO\nalgo: {beta: -0.1}\n", [], "algo.beta: expected a number >= 0"),
    ("reward_alpha_negative", "reward: {name: info_gain, alpha: -1}\n", [], "reward.alpha: expected a value >= 0"),
    ("eval_split_missing", "task: {name: math500}\neval: {split: train}\n", [], "eval.split: task 'math500'"),
    ("suite_unknown_task", "eval: {suite: [{name: gsm9k}]}\n", [], "eval.suite[0].name: unknown task 'gsm9k'"),
    ("trainer_reserved", "base: @GRPO\ntrainer: {max_epochs: 3}\n", [], "trainer.max_epochs: set by rlreason"),
    ("trainer_unknown", "base: @GRPO\ntrainer: {acclerator: cpu}\n", [], "did you mean 'accelerator'"),
    ("override_syntax", "base: @GRPO\n", ["optim.lr"], "'optim.lr': expected key=value"),
    ("override_unknown_key", "base: @GRPO\n", ["rollout.group_sise=4"], "rollout.group_sise: Key 'group_sise'"),
    ("override_wrong_type", "base: @GRPO\n", ["optim.steps=many"], "optim.steps: Value 'many'"),
    ("override_group_1", "base: @GRPO\n", ["rollout.group_size=1"], "+ command line: rollout.group_size"),
    ("override_bad_key", "base: @GRPO\n", ["optim..lr=1"], "'optim..lr': not a valid dotted key"),
    ("missing_config", None, [], "file not found"),
]

# The same driver for every case: `main(argv)` in-process, stderr captured, anything escaping recorded.
DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys, traceback
    from pathlib import Path
    from rlreason.cli import main

    cases, out_path, watch = json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], sys.argv[3:]
    results = {}
    for case in cases:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                rc = main(case["argv"])
        except SystemExit as exc:  # argparse
            rc = exc.code
        except BaseException:
            rc = "raised"
            err.write(traceback.format_exc())
        created = [p for p in watch if Path(p).exists()]
        results[case["id"]] = {"rc": rc, "err": err.getvalue(), "created": created}
    Path(out_path).write_text(json.dumps(results))
    """
)


def _env(tmp: Path, cache: Path | None = None) -> dict[str, str]:
    """Subprocess environment: offline, the lab-model cache `cache` (default `tmp/cache`), HF cache in `tmp`."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RLREASON_CACHE": str(cache or tmp / "cache"),
        "HF_HOME": str(tmp / "hf"),
        "HF_HUB_CACHE": str(tmp / "hf" / "hub"),
    }


def _cli(args: list[str], tmp: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlreason.cli", *args]
    return subprocess.run(cmd, cwd=tmp, env=_env(tmp, cache), capture_output=True, text=True, timeout=120)


def _block_model_builds(tmp: Path) -> None:
    """Make `tmp/cache` a file: should validation regress, the first model build (grpo.yaml's SFT stage
    included) fails at once with a traceback instead of silently training for minutes."""
    (tmp / "cache").write_text("not a directory: no model may be built by these tests")


@pytest.fixture(scope="module")
def lab_cache(tmp_path_factory) -> Path:
    """One lab-tiny cache for the tests that do load the tiny model (built once, ~2 s)."""
    return tmp_path_factory.mktemp("lab_cache")


def _assert_one_line_error(rc: object, err: str, expected: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert err.startswith("rlreason: error: ") and err.count("\n") == 1, err
    assert expected in err, err


@pytest.fixture(scope="module")
def driver_results(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("bad_configs")
    cases = []
    for case_id, text, extra, _ in CASES:
        path = tmp / f"{case_id}.yaml"
        if text is not None:
            path.write_text(text.replace("@GRPO", str(GRPO)))
        cases.append({"id": case_id, "argv": ["run", str(path), *extra]})
    predictions = tmp / "predictions.jsonl"
    predictions.write_text('{"response": "\\\\boxed{2}", "gold": "2"}\n')
    cases.append({"id": "unknown_verifier", "argv": ["verify", str(predictions), "--verifier", "mathh"]})
    (tmp / "cases.json").write_text(json.dumps(cases))
    (tmp / "driver.py").write_text(DRIVER)
    _block_model_builds(tmp)
    watch = [str(tmp / "runs")]  # run dirs (logging.dir defaults to runs/ under the working directory)
    cmd = [sys.executable, str(tmp / "driver.py"), str(tmp / "cases.json"), str(tmp / "out.json"), *watch]
    proc = subprocess.run(cmd, cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("case_id, text, extra, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_config_is_one_line_error_naming_file_and_key(driver_results, case_id, text, extra, expected):
    res = driver_results[1][case_id]
    _assert_one_line_error(res["rc"], res["err"], expected)
    source = "command line" if extra else f"{case_id}.yaml"
    assert source in res["err"], res["err"]  # the message names where the bad value came from
    assert res["created"] == [], f"{case_id} created {res['created']} before failing"


def test_unknown_verifier_is_one_line_error(driver_results):
    res = driver_results[1]["unknown_verifier"]
    _assert_one_line_error(res["rc"], res["err"], "unknown verifier 'mathh'; did you mean 'math'?")


def refusal(err: str) -> str:
    """What a one-line error refuses, without the file it names (each case has a file of its own)."""
    return re.sub(r"\S+\.(yaml|jsonl)\b", "FILE", err).strip()


def test_driver_sees_at_least_20_distinct_refusals(driver_results):
    """Counted from what the CLI printed, not from the table: cases that hit the same check count once."""
    assert len({refusal(res["err"]) for res in driver_results[1].values()}) >= 20


def test_cli_subprocess_exit_2_no_traceback_no_run_dir(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"base: {GRPO}\nrollout: {{group_size: 1}}\n")
    _block_model_builds(tmp_path)
    proc = _cli(["run", str(cfg), f"logging.dir={tmp_path / 'runs'}"], tmp_path)
    _assert_one_line_error(proc.returncode, proc.stderr, "rollout.group_size: algorithm 'grpo'")
    assert not (tmp_path / "runs").exists()


def test_sft_is_not_refused_for_group_size_1():
    """SFT has no rollout: group size and minibatch divisibility mean nothing to it."""
    cfg = load_config(SFT, ["rollout.group_size=1", "optim.minibatches=7"])
    assert cfg.algo.name == "sft" and cfg.rollout.group_size == 1
    with pytest.raises(ConfigError, match=r"rollout\.group_size: algorithm 'grpo'"):
        load_config(SFT, ["algo.name=grpo", "reward.name=binary", "rollout.group_size=1"])


# -- data files ------------------------------------------------------------------------------------

BENCH_LINES = [
    '{"problem": "What is 1+1?", "answer": "2", "unique_id": "a"}',
    '{"problem": "What is 2+2?", "answer": "4"',  # line 2: truncated JSON
    '{"problem": "What is 3+3?"}',  # line 3: no gold answer
    '{"problem": "What is 4+4?", "answer": "8", "unique_id": "d"}',
]


def _bench_config(tmp: Path, on_error: str) -> Path:
    data = tmp / "bench.jsonl"
    data.write_text("\n".join(BENCH_LINES) + "\n")
    cfg = tmp / f"bench_{on_error}.yaml"
    cfg.write_text(
        f"name: bench\nmodel: {{name_or_path: lab-tiny, lab: {TINY_LAB}}}\n"
        f"task: {{name: math500, path: {data}, on_error: {on_error}}}\nalgo: {{name: sft}}\n"
        "rollout: {max_new_tokens: 4}\neval: {n: 0, batch_size: 4}\n"
    )
    return cfg


def test_malformed_data_line_names_file_and_line(tmp_path, lab_cache):
    cfg = _bench_config(tmp_path, "raise")
    proc = _cli(["eval", str(cfg), "--out", str(tmp_path / "results.json")], tmp_path, lab_cache)
    _assert_one_line_error(proc.returncode, proc.stderr, f"{tmp_path / 'bench.jsonl'}:2: invalid JSON")
    assert not (tmp_path / "results.json").exists()


def test_malformed_data_lines_skipped_with_on_error_skip(tmp_path, lab_cache, monkeypatch):
    from rlreason.cli import main

    monkeypatch.setenv("RLREASON_CACHE", str(lab_cache))
    cfg = _bench_config(tmp_path, "skip")
    assert main(["eval", str(cfg), "--out", str(tmp_path / "results.json")]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["math500"]["n"] == 2  # lines 1 and 4; lines 2 (bad JSON) and 3 (no answer) skipped


# -- run directory and disk --------------------------------------------------------------------------


# bounded, should the run directory check regress and training start
SMALL_SFT = (
    f"name: w\nmodel: {{name_or_path: lab-tiny, lab: {TINY_LAB}}}\nalgo: {{name: sft}}\n"
    "optim: {steps: 1, batch_size: 2}\neval: {n: 1}\n"
    "task: {name: lab-arith, n_train_per_level: 5, n_test_per_level: 1}\n"
)


def test_unwritable_run_dir_is_one_line_error(tmp_path, lab_cache):
    """A run directory that cannot exist (its parent is a file): refused even for root."""
    (tmp_path / "afile").write_text("not a directory")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_SFT)
    proc = _cli(["run", str(cfg), f"logging.dir={tmp_path / 'afile' / 'runs'}"], tmp_path, lab_cache)
    _assert_one_line_error(proc.returncode, proc.stderr, "logging.dir: cannot write the run directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into a 0o500 directory")
def test_read_only_run_dir_is_one_line_error(tmp_path, lab_cache):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_SFT)
    try:
        proc = _cli(["run", str(cfg), f"logging.dir={ro}"], tmp_path, lab_cache)
    finally:
        ro.chmod(0o700)
    _assert_one_line_error(proc.returncode, proc.stderr, "logging.dir: cannot write the run directory")


def test_estimate_checkpoint_bytes_hand_computed():
    # fp32 params 4 B + AdamW's two moments 8 B + the Hugging Face copy 4 B per parameter; SGD keeps no state
    assert estimate_checkpoint_bytes(1_000_000, "adamw") == 16_000_000
    assert estimate_checkpoint_bytes(1_000_000, "sgd") == 8_000_000
    assert estimate_checkpoint_bytes(0, "adamw") == 0
    with pytest.raises(ConfigError, match=r"optim.optimizer: expected adamw \| sgd, got 'adam'"):
        estimate_checkpoint_bytes(10, "adam")


@pytest.mark.parametrize(
    "keep, steps, every, expected",
    [
        (2, 60, 0, 1),  # only the final save
        (2, 60, 20, 3),  # saves at 20, 40, 60 (the final one is step 60): all three exist when 60 is written
        (1, 60, 20, 2),  # the new one plus the one kept
        (0, 60, 7, 9),  # keep all: 7, 14, ..., 56 and the final 60
        (5, 10, 5, 2),  # 5 and 10: fewer saves than could be kept
    ],
)
def test_checkpoints_on_disk_at_once(keep, steps, every, expected):
    assert checkpoints_on_disk_at_once(keep, steps, every) == expected


def test_check_disk_space_against_real_free_space(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_disk_space(tmp_path / "runs" / "not-yet-created", 1)  # a run dir that does not exist yet
    expected = r"^logging\.dir: only [\d.]+ GiB free on .*, a checkpoint needs about"
    with pytest.raises(ConfigError, match=expected) as err:
        check_disk_space(tmp_path, free + 2**40)
    assert "\n" not in str(err.value)


# -- no network, offline hub -------------------------------------------------------------------------

NO_NETWORK = textwrap.dedent(
    """
    import socket

    def refuse(*args, **kwargs):
        raise RuntimeError(f"network access attempted: {args[1:] or args}")

    socket.socket.connect = socket.socket.connect_ex = refuse
    socket.create_connection = socket.getaddrinfo = refuse
    try:  # the guard itself must work, or this test proves nothing
        socket.create_connection(("127.0.0.1", 9))
        raise SystemExit("guard inactive")
    except RuntimeError:
        pass

    import rlreason
    from rlreason.cli import main
    from rlreason.registry import REGISTRIES

    assert main(["list"]) == 0
    required = {
        "rewards": {"callable": {"fn": "reward_fns:length_bonus"}, "sum": {"terms": [{"name": "binary"}]}},
        "tasks": {"paired-sft": {"path": "pairs.jsonl"}, "jsonl": {"path": "mine.jsonl"}},
    }
    built = 0
    for kind, reg in REGISTRIES.items():
        for name in reg.names():
            reg.build({"name": name, **required.get(kind, {}).get(name, {})})
            built += 1
    print("BUILT", built, rlreason.__name__)
    """
)


def test_import_list_and_build_every_component_open_no_socket(tmp_path):
    env = {**_env(tmp_path), "PYTHONPATH": str(Path(__file__).parent)}  # reward_fns for the callable reward
    proc = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = int(proc.stdout.split("BUILT ")[1].split()[0])
    assert built >= 20  # every registered reward, algo, task and verifier
    assert "network access attempted" not in proc.stderr


def test_hub_model_offline_is_one_line_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: hub\nmodel: {name_or_path: Qwen/Qwen2.5-0.5B}\nalgo: {name: sft}\n")
    proc = _cli(["run", str(cfg), f"logging.dir={tmp_path / 'runs'}"], tmp_path)
    _assert_one_line_error(proc.returncode, proc.stderr, "model.name_or_path: 'Qwen/Qwen2.5-0.5B' is not a local")
    assert "HF_HUB_OFFLINE=1" in proc.stderr and "not in the cache" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_hub_model_in_cache_passes_the_offline_check(tmp_path, monkeypatch):
    """A cached snapshot is usable offline: the check must not refuse it (it names the cache it read)."""
    from huggingface_hub import constants

    from rlreason.policy.load import _check_hub_available

    snapshot = tmp_path / "models--org--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _check_hub_available("org/tiny", "org/tiny", local_files_only=False)
    with pytest.raises(ConfigError, match=rf"'org/other' is not a local directory .* cache {tmp_path}"):
        _check_hub_available("org/other", "org/other", local_files_only=False)
    with pytest.raises(ConfigError, match="neither a local directory nor a valid hub name"):
        _check_hub_available("bad name!", "bad name!", local_files_only=False)
