"""`rlreason list config` prints every config key with its type, default and doc, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from omegaconf import OmegaConf

from rlreason.cli import main
from rlreason.config import ExperimentConfig


def _schema_keys() -> dict[str, object]:
    """Every key of the schema as OmegaConf builds it (not through the docs), with its default."""
    data = OmegaConf.to_container(OmegaConf.structured(ExperimentConfig))
    assert isinstance(data, dict)
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("task", "reward", "algo", "trainer"):
            out.update({f"{key}.{sub}".replace(".from_", ".from"): v for sub, v in value.items()})
        else:
            out[key] = value
    return out


def test_list_config_subprocess_prints_every_key_with_type_default_and_doc():
    proc = subprocess.run(
        [sys.executable, "-m", "rlreason.cli", "list", "config"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":", 1)[0].strip(): line for line in proc.stdout.splitlines() if line.startswith("  ")}
    keys = _schema_keys()
    assert len(keys) > 60 and set(lines) == set(keys)  # every key once, nothing else
    for key, default in keys.items():
        typ_default, doc = lines[key].split(": ", 1)[1].split("  ", 1)
        assert typ_default.endswith(f" = {json.dumps(default)}"), lines[key]
        assert typ_default.split(" = ")[0], lines[key]  # a type
        assert len(doc.strip()) >= 8, lines[key]  # a doc, not an empty placeholder
    headers = [line for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    assert [h.split(":")[0] for h in headers] == ["(top level)", "model", "eval", "rollout", "optim", "logging", "init"]


def test_list_config_names_the_allowed_values_from_the_registries(capsys):
    assert main(["list", "config"]) == 0
    out = capsys.readouterr().out
    assert '  optim.optimizer: str = "adamw"  ' in out and "(one of: adamw | sgd; `rlreason list optimizers`)" in out
    assert '  rollout.backend: str = "hf"  ' in out and "(one of: hf | vllm; `rlreason list rollout_backends`)" in out
    assert "  optim.schedule: str = " in out and "one of: constant | cosine | linear" in out
    assert '  model.dtype: str = "float32"  ' in out and "(one of: float32 | bfloat16 | float16)" in out
    assert "  init.from: str | None = null  " in out  # spelled as in files, not `from_`
    assert "  optim.betas: list[float] = [0.9, 0.999]  " in out


def test_list_shows_optimizers_schedules_and_backends(capsys):
    assert main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("optimizers:\n") and "  adamw  " in out and "  sgd  " in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for header in ("rewards:", "algos:", "tasks:", "verifiers:", "optimizers:", "schedules:", "rollout_backends:"):
        assert f"\n{header}\n" in f"\n{out}"
    assert "  hf  " in out and "  cosine  " in out
