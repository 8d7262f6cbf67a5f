"""Experiment tracking with MLflow: parameters, per-round metrics, the best model and partition statistics.

Off unless asked for (``--mlflow`` or an ``mlflow:`` entry in the config file). The default store is a
local folder, ``./mlruns`` (or ``$MLFLOW_TRACKING_URI``), so tracking works offline; browse it with
``mlflow ui --backend-store-uri ./mlruns`` where the full ``mlflow`` package is installed. MLflow 3 keeps
its file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``, which tma_spark sets for file
stores only; any other URI (a tracking server, ``databricks``, ``sqlite:///...``) is used as given.

All calls go through one :class:`MlflowClient` with an explicit run id, so metrics can be logged from the
driver's evaluation thread. A disabled :class:`Tracker` does nothing and imports nothing.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable, Optional, Tuple

from .errors import ConfigError

__all__ = ["Tracker", "tracking_settings"]

log = logging.getLogger(__name__)

ROUND_METRICS = ("val", "test", "train", "wall_seconds", "overhead_seconds")


def tracking_settings(flag: Optional[str], config_value=None) -> Optional[dict]:
    """MLflow settings from ``--mlflow [URI]`` and the config's ``mlflow:`` entry (the flag wins), or None.

    ``config_value`` is ``true``/``false`` or a mapping with ``tracking_uri``, ``experiment``, ``run_name``.
    """
    settings: Optional[dict] = None
    if isinstance(config_value, bool):
        settings = {} if config_value else None
    elif isinstance(config_value, dict):
        unknown = set(config_value) - {"tracking_uri", "experiment", "run_name", "enabled"}
        if unknown:
            raise ConfigError(f"mlflow.{sorted(unknown)[0]} is not an MLflow setting. Allowed: enabled, "
                              "tracking_uri, experiment, run_name.")
        settings = None if config_value.get("enabled") is False else dict(config_value)
        if settings is not None:
            settings.pop("enabled", None)
    elif config_value is not None:
        raise ConfigError(f"mlflow: {config_value!r} must be true, false or a mapping (tracking_uri, experiment).")
    if flag is not None:
        settings = {**(settings or {}), **({} if flag == "default" else {"tracking_uri": flag})}
    return settings


def _default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or "file:" + os.path.abspath("mlruns")


class Tracker:
    """One MLflow run, or nothing when ``settings`` is None."""

    def __init__(self, settings: Optional[dict]):
        self.enabled = settings is not None
        self.settings = settings or {}
        self.client = self.run_id = None
        self.uri = None

    def start(self, run_name: str, params: dict) -> None:
        if not self.enabled:
            return
        self.uri = self.settings.get("tracking_uri") or _default_uri()
        if self.uri.startswith("file:") or ":" not in self.uri:  # a local folder
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("MLflow tracking was asked for but mlflow is not installed. Fix: pip install "
                              "mlflow-skinny (scripts/setup.sh installs it), or drop --mlflow.") from None
        self.client = MlflowClient(tracking_uri=self.uri)
        name = self.settings.get("experiment") or "tma_spark"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=self.settings.get("run_name") or run_name)
        self.run_id = run.info.run_id
        for key, value in sorted(params.items()):
            self.client.log_param(self.run_id, key, str(value)[:6000])
        log.info("MLflow: experiment %r, run %s at %s", name, self.run_id, self.uri)

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        if not self.enabled:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                self.client.log_metric(self.run_id, key, float(value), step=step)

    def log_round(self, row: dict) -> None:
        """Per-round metrics of a train run (step = round)."""
        if not self.enabled:
            return
        steps = [n for n in row.get("steps", []) if n is not None]
        losses = [x for x in row.get("loss", []) if x is not None]
        metrics = {k: row.get(k) for k in ROUND_METRICS}
        metrics.update(steps=sum(steps), loss=sum(losses) / max(len(losses), 1),
                       lost_trainers=len(row.get("lost_parts", [])))
        self.log_metrics(metrics, step=row["round"])

    def log_artifacts(self, files: Iterable[Tuple[str, str]]) -> None:
        """Log local files (path, artifact folder); paths that are not local files are skipped."""
        if not self.enabled:
            return
        for path, folder in files:
            if os.path.isfile(path):
                self.client.log_artifact(self.run_id, path, folder)
            else:
                log.debug("MLflow: %s is not a local file; not logged", path)

    def end(self, ok: bool) -> None:
        if self.enabled and self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")
