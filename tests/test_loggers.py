"""`logging.logger: [wandb, mlflow]` through a real `rlreason run`: W&B offline (its run file read
back record by record), MLflow against a local file store (read back with its own client)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb", reason="W&B logger test needs the wandb extra: pip install 'rlreason[wandb]'")
mlflow = pytest.importorskip(
    "mlflow", reason="MLflow logger test needs the mlflow extra: pip install 'rlreason[mlflow]'"
)

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "init.from=null",
    "model.lab={hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, "
    "intermediate_size: 64}",
    "task.n_train_per_level=10",
    "task.n_test_per_level=2",
    "rollout.prompts_per_step=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=6",
    "optim.steps=2",
    "eval.n=3",
    "logging.samples_every_n_steps=1",
    "logging.progress_bar=false",
    "logging.logger=[wandb, mlflow]",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("loggers")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RLREASON_CACHE": str(tmp / "cache"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }
    cmd = [sys.executable, "-m", "rlreason.cli", "run", str(REPO / "experiments/lab/grpo.yaml"), *TINY]
    proc = subprocess.run([*cmd, f"logging.dir={tmp / 'runs'}"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp / "runs" / "lab-grpo" / "version_0"
    assert (run / "results.json").is_file() and not list(run.glob("events.out.tfevents*"))  # TensorBoard not asked
    return run


def _wandb_records(path: Path) -> list:
    """Records of a W&B run file (a LevelDB-style log: 32 KiB blocks of CRC-length-type-framed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # block trailer
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # zero padding to the block end
            pos += room
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_wandb_offline_gets_metrics_config_and_samples(run_dir):
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    history: dict[str, list[int]] = {}
    config: set[str] = set()
    for r in _wandb_records(files[0]):
        if r.HasField("history"):
            items = {i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
            for key in items:
                # Lightning's WandbLogger puts the step we log at in trainer/global_step (W&B's x axis)
                history.setdefault(key, []).append(int(float(items.get("trainer/global_step", "-1"))))
        if r.HasField("config"):
            config |= {i.key or "/".join(i.nested_key) for i in r.config.update}
    assert history["train/reward_mean"] == [0, 1]  # x = RL step
    assert history["eval/accuracy"] == [2] and "hparam/accuracy" in history
    assert {"algo.name", "optim.steps", "reward.name"} <= config  # the resolved config as the run config
    assert history["samples/_type"] == [0, 1] and history["config/_type"] == [0]  # text as W&B tables


def test_mlflow_file_store_gets_metrics_params_and_text(run_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow >= 3.7 asks for it (the run sets it too)
    client = MlflowClient((run_dir.parent.parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("lab-grpo")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "lab-grpo/version_0"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train.reward_mean")] == [0, 1]
    assert {"eval.accuracy", "eval.per_difficulty.easy.accuracy", "hparam.accuracy"} <= set(run.data.metrics)
    assert run.data.params["algo.name"] == "grpo" and run.data.params["optim.steps"] == "2"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert "samples/step-000000.md" in artifacts
    text = Path(client.download_artifacts(run.info.run_id, "samples/step-000000.md", str(run_dir))).read_text()
    assert text.startswith("**sample 0**") and "```text" in text
