"""Experiment loggers (`logging.logger: tensorboard | wandb | mlflow | csv`, or a list) and the few
things rlreason writes that are not scalar metrics.

Scalars always go through Lightning's `Logger.log_metrics`, so every logger gets every metric at
x = RL step. Text (sample completions, the resolved config) and the HParams entry go where the
logger can show them: TensorBoard (Text tab, HParams dashboard, histograms), W&B (a table and the run
config), MLflow (text artifacts and run parameters); the CSV logger takes scalars and hparams.yaml.
TensorBoard is the default and keeps everything; every logger writes under the run directory
except MLflow, whose default tracking store is `<logging.dir>/mlruns`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from rlreason.config import loggers_of
from rlreason.errors import ConfigError

PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}  # loggers that need an optional extra


def check_installed(names: list[str], where: str = "logging.logger") -> None:
    """One line naming the missing package (before any model load)."""
    for name in names:
        pkg = PACKAGES.get(name)
        if pkg and importlib.util.find_spec(pkg) is None:
            raise ConfigError(f"{where}: '{name}' needs the {pkg} package: pip install 'rlreason[{name}]'")


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """Lightning loggers for the run directory `<logging.dir>/<name>/<version>`, in config order."""
    names = loggers_of(cfg)
    check_installed(names)
    save_dir, name, version = str(run_dir.parent.parent), run_dir.parent.name, run_dir.name
    project = cfg.logging.project or str(cfg.name)
    out: list[Any] = []
    for kind in names:
        if kind == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(save_dir=save_dir, name=name, version=version, default_hp_metric=False))
        elif kind == "csv":
            out.append(_csv_logger_class()(save_dir=save_dir, name=name, version=version))
        elif kind == "wandb":
            from pytorch_lightning.loggers import WandbLogger

            # the run id is the run directory's, so a resumed run continues the same W&B run
            out.append(
                WandbLogger(
                    project=project,
                    name=f"{name}/{version}",
                    id=_run_id(run_dir),
                    resume="allow",
                    save_dir=str(run_dir),
                )
            )
        elif kind == "mlflow":
            uri = cfg.logging.tracking_uri
            if not uri:  # MLflow >= 3.7 refuses the file store unless asked; a local store is what we mean
                uri = (Path(cfg.logging.dir) / "mlruns").resolve().as_uri()
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            out.append(_mlflow_logger_class()(experiment_name=project, run_name=f"{name}/{version}", tracking_uri=uri))
    return out


def mlflow_key(key: str) -> str:
    """An MLflow metric name: `/` becomes `.` (the file store keeps a metric in a file named by its
    path, so `train/accuracy` and `train/accuracy/easy` cannot both exist) and characters MLflow
    refuses (`lab-arith[short]`) become `_`."""
    return re.sub(r"[^\w\-. :]", "_", key.replace("/", "."))


def _csv_logger_class() -> Any:
    """Lightning's CSVLogger writing `<run dir>/metrics.csv`, except that it neither warns about the
    run directory's other files nor deletes the metrics.csv of the run it resumes: it appends to it."""
    import csv

    from lightning_fabric.loggers.logger import rank_zero_experiment
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loggers.csv_logs import ExperimentWriter

    class AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            path = Path(self.metrics_file_path)
            if path.is_file():
                with path.open(newline="") as f:
                    self.metrics_keys = list(next(csv.reader(f), []))

    class RLReasonCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self._experiment is None:
                os.makedirs(self.root_dir, exist_ok=True)
                self._experiment = AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    return RLReasonCSVLogger


def _mlflow_logger_class() -> Any:
    from pytorch_lightning.loggers import MLFlowLogger

    class RLReasonMLFlowLogger(MLFlowLogger):
        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            super().log_metrics({mlflow_key(k): v for k, v in metrics.items()}, step)

    return RLReasonMLFlowLogger


def _run_id(run_dir: Path) -> str:
    import hashlib

    return hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]


def tensorboard(trainer: pl.Trainer) -> Any:
    """The TensorBoard SummaryWriter, or None when TensorBoard is not among the loggers."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            return lg.experiment
    return None


def log_scalars(trainer: pl.Trainer, metrics: dict[str, float], step: int) -> None:
    """Every logger, at x = `step` (rank zero only: Lightning's loggers are rank-zero-only)."""
    for lg in trainer.loggers:
        lg.log_metrics(metrics, step=step)


def log_text(trainer: pl.Trainer, tag: str, markdown: str, step: int) -> None:
    """Markdown text to every logger that shows text."""
    if not trainer.is_global_zero:
        return
    from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.experiment.add_text(tag, markdown, step)
        elif isinstance(lg, WandbLogger):
            lg.log_text(key=tag, columns=["step", "text"], data=[[step, markdown]], step=step)
        elif isinstance(lg, MLFlowLogger):
            lg.experiment.log_text(lg.run_id, markdown, f"{tag}/step-{step:06d}.md")


def log_hparams(trainer: pl.Trainer, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
    """The run's resolved config as hyperparameters, with its final metrics where the logger pairs them
    (TensorBoard's HParams dashboard); the others record the parameters and log the metrics."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for lg in trainer.loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.log_hyperparams(params, metrics, step=step)
        else:
            lg.log_hyperparams(params)
            if metrics:
                lg.log_metrics(metrics, step=step)


def finalize(trainer: pl.Trainer) -> None:
    """Flush loggers that buffer (CSV) after writes made outside the fit loop."""
    for lg in trainer.loggers:
        lg.save()
