"""Experiment tracking with MLflow: parameters, per-round metrics, the best model and partition statistics.

Off unless asked for (``--mlflow`` or an ``mlflow:`` entry in the config file). The default store is a
local folder, ``./mlruns`` (or ``$MLFLOW_TRACKING_URI``), so tracking works offline; browse it with
``mlflow ui --backend-store-uri ./mlruns`` where the full ``mlflow`` package is installed. MLflow 3 keeps
its file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``, which tma_spark sets for file
stores only; any other URI (a tracking server, ``databricks``, ``sqlite:///...``) is used as given.

All calls go through one :class:`MlflowClient` with an explicit run id, so metrics can be logged from the
driver's evaluation thread. A disabled :class:`Tracker` does nothing and imports nothing.

Tracking is never fatal: a failed call is logged (a warning, once per kind of call), kept in memory and sent
again when the run ends (or as soon as a later call succeeds; after a failure, calls are kept without trying
for :data:`RETRY_AFTER_SECONDS`, so a server that is down does not slow the rounds down with timeouts). A
training run records its MLflow run id in ``RUN/tracking.json``, so ``--resume`` continues the same MLflow
run. URIs are logged and saved without credentials (:func:`redact_uri`).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from typing import Iterable, List, NamedTuple, Optional, Tuple

from . import fs
from .errors import ConfigError

__all__ = ["Tracker", "tracking_settings", "redact_uri"]

log = logging.getLogger(__name__)

ROUND_METRICS = ("val", "test", "train", "wall_seconds", "overhead_seconds")
#: After a failed call, calls are only kept (not tried) for this long: a tracking server that is down costs
#: the training one timeout, not one per metric.
RETRY_AFTER_SECONDS = 60.0
#: MLflow's limit on parameters per batch call.
_PARAMS_PER_BATCH = 100
_WHAT = {"start": "starting the run", "log_batch": "logging metrics or parameters",
         "log_artifact": "logging an artifact"}
#: The user information of a URI (``scheme://user:password@``): up to the last ``@`` before the path.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


class _Call(NamedTuple):
    """A client call kept to send again: ``client.<kind>(run_id, *args, **kwargs)``."""

    kind: str
    args: tuple
    kwargs: dict


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


def redact_uri(uri: str) -> str:
    """``uri`` without the credentials it may carry, for logs and files.

    ``https://user:pass@host:5000/path`` -> ``https://***@host:5000/path``; a URI without user information
    (``file:/tmp/mlruns``, ``databricks``, ``http://host:5000``) is returned unchanged.
    """
    return _USERINFO.sub(r"\1***@", uri)


def _default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or "file:" + os.path.abspath("mlruns")


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class Tracker:
    """One MLflow run, or nothing when ``settings`` is None.

    Tracking never stops training: a call that fails (a tracking server that is down, a store that is not
    writable) is logged as a warning, once per kind of call, and kept in memory; :meth:`flush` sends the kept
    calls again (in order, with their original steps and timestamps) and :meth:`end` flushes before closing the
    run. A run that could not even be created is created by the retry. Metrics of one round (and parameters,
    up to 100) go in one batch call.
    """

    def __init__(self, settings: Optional[dict]):
        self.enabled = settings is not None
        self.settings = settings or {}
        self.client = self.run_id = self.experiment_id = None
        self.uri = None
        self._start: Optional[Tuple[str, dict, Optional[str]]] = None
        self._unsent: List[_Call] = []
        self._warned: set = set()
        self._down_until = 0.0  # time.monotonic() before which calls are kept without trying
        self._flushing = False
        self._copies: Optional[tempfile.TemporaryDirectory] = None  # local copies of remote artifacts

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (the run may still be waiting for its retry to be created)."""
        return self._start is not None

    def start(self, run_name: str, params: dict, run_id: Optional[str] = None) -> None:
        """Open the MLflow run: a new one, or run ``run_id`` (a resumed training run) when the store has it."""
        if not self.enabled:
            return
        self.uri = self.settings.get("tracking_uri") or _default_uri()
        if self.uri.startswith("file:") or ":" not in self.uri:  # a local folder
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            import mlflow.tracking  # noqa: F401
        except ImportError:
            raise ConfigError("MLflow tracking was asked for but mlflow is not installed. Fix: pip install "
                              "mlflow-skinny (scripts/setup.sh installs it), or drop --mlflow.") from None
        self._start = (run_name, params, run_id)
        try:
            self._open(run_name, params, run_id)
        except Exception as exc:  # noqa: BLE001 -- any tracking failure: logged, retried by flush()
            self._warn("start", exc)

    def _open(self, run_name: str, params: dict, run_id: Optional[str]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.client is None:
            self.client = MlflowClient(tracking_uri=self.uri)
        run, logged = None, {}
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
            except Exception as exc:  # noqa: BLE001
                if not _not_found(exc):
                    raise
                log.warning("MLflow: run %s of the resumed training is not in %s; starting a new MLflow run",
                            run_id, redact_uri(self.uri))
        resumed = run is not None
        if resumed:
            self.client.update_run(run_id, "RUNNING")
            logged = run.data.params
        else:
            name = self.settings.get("experiment") or "tma_spark"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            run = self.client.create_run(experiment_id, run_name=self.settings.get("run_name") or run_name)
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        kept = sorted(k for k, v in params.items() if k in logged and logged[k] != str(v)[:6000])
        new = [Param(key, str(value)[:6000]) for key, value in sorted(params.items()) if key not in logged]
        for i in range(0, len(new), _PARAMS_PER_BATCH):
            self._call("log_batch", params=new[i:i + _PARAMS_PER_BATCH])
        log.info("MLflow: %s run %s (experiment %s) at %s%s", "continuing" if resumed else "started",
                 self.run_id, self.experiment_id, redact_uri(self.uri),
                 f"; changed settings keep their first values there: {', '.join(kept)}" if kept else "")

    def info(self) -> Optional[dict]:
        """What identifies the run (saved as the run folder's ``tracking.json`` for ``--resume``), or None."""
        if not self.enabled or self.run_id is None:
            return None
        return {"run_id": self.run_id, "experiment_id": self.experiment_id, "tracking_uri": redact_uri(self.uri)}

    def _describe(self, exc: Exception) -> str:
        """``exc`` in one line, with the tracking URI's credentials removed."""
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        return text.replace(self.uri, redact_uri(self.uri)) if self.uri else text

    def _warn(self, kind: str, exc: Exception) -> None:
        text = self._describe(exc)
        what = _WHAT.get(kind, kind)
        if kind in self._warned:
            log.debug("MLflow: %s failed again (%s)", what, text)
            return
        self._warned.add(kind)
        log.warning("MLflow: %s failed (%s) at %s; training goes on, and what was not logged is kept and sent "
                    "again when the run ends (further failures of %s are not logged)", what, text,
                    redact_uri(self.uri or ""), what)

    def _call(self, kind: str, *args, **kwargs) -> None:
        """``client.<kind>(run_id, *args, **kwargs)``; a failure is warned about and kept for :meth:`flush`."""
        if self.run_id is None or time.monotonic() < self._down_until:  # not created yet, or failing: keep it
            self._unsent.append(_Call(kind, args, kwargs))
            return
        try:
            getattr(self.client, kind)(self.run_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- tracking never stops training
            self._unsent.append(_Call(kind, args, kwargs))
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            self._warn(kind, exc)
            return
        if self._unsent and not self._flushing:  # the store answers again: send what it missed
            self.flush()

    def flush(self) -> bool:
        """Send the calls that failed again, in order; True when nothing is left unsent.

        Stops at the first call that fails again (the store is still unavailable) and keeps the rest.
        """
        if not self.enabled or (not self._unsent and self.run_id is not None):
            return True
        self._flushing = True
        try:
            return self._resend()
        finally:
            self._flushing = False

    def _resend(self) -> bool:
        if self.run_id is None and self._start is not None:
            try:
                self._open(*self._start)
            except Exception as exc:  # noqa: BLE001
                self._warn("start", exc)
                return False
        pending, self._unsent = self._unsent, []
        for i, call in enumerate(pending):
            try:
                getattr(self.client, call.kind)(self.run_id, *call.args, **call.kwargs)
            except Exception as exc:  # noqa: BLE001
                self._unsent = pending[i:] + self._unsent
                self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
                self._warn(call.kind, exc)
                log.warning("MLflow: %d tracking call(s) still unsent to run %s; they are sent again when the run "
                            "ends", len(self._unsent), self.run_id)
                return False
        self._down_until = 0.0
        if pending:
            log.info("MLflow: sent %d tracking call(s) that had failed to run %s", len(pending), self.run_id)
        return True

    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)  # kept, so a re-sent metric keeps the time it was measured
        batch = [Metric(key, float(value), timestamp, step or 0) for key, value in metrics.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value]
        if batch:  # one call per round: fewer requests to a server, one retry unit
            self._call("log_batch", metrics=batch)

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
        """Log files (path, artifact folder); a path may be local or on a store (``s3a://`` ...); paths that are
        not files are skipped.

        MLflow uploads local files only, so a remote file is first copied (:func:`tma_spark.fs.local_copy`) into
        a temporary folder of this tracker, one subfolder per file: the copy must outlive a failed call that
        :meth:`flush` sends again, so the folder is removed by :meth:`end`.
        """
        if not self.enabled:
            return
        for path, folder in files:
            try:
                local = self._local_file(path)
            except Exception as exc:  # noqa: BLE001 -- an unreadable artifact never stops training
                log.warning("MLflow: could not read %s to log it (%s: %s); not logged", path, type(exc).__name__,
                            exc)
                continue
            if local is not None:
                self._call("log_artifact", local, folder)
            else:
                log.debug("MLflow: %s is not a file; not logged", path)

    def _local_file(self, path: str) -> Optional[str]:
        """A local file with ``path``'s bytes, or None when ``path`` is not a file: ``path`` itself when it is
        local, else a copy in a new subfolder of the tracker's temporary folder (copies of files of the same
        name never overwrite one another)."""
        if not fs.is_remote(path):
            return fs.local_copy(path, "")  # a local path is used in place: nothing is copied
        if self._copies is None:
            self._copies = tempfile.TemporaryDirectory(prefix="tma-mlflow-")
        return fs.local_copy(path, tempfile.mkdtemp(dir=self._copies.name))

    def end(self, ok: bool) -> None:
        """Flush what failed before, then mark the run finished (or failed); never raises."""
        if not self.enabled:
            return
        try:
            self._end(ok)
        finally:
            if self._copies is not None:  # every artifact call was sent or dropped: the copies can go
                self._copies.cleanup()
                self._copies = None

    def _end(self, ok: bool) -> None:
        if not self.flush():
            log.warning("MLflow: %d tracking call(s) could not be sent to %s and are dropped; the run folder "
                        "(metrics.jsonl, summary.json) has everything they carried", len(self._unsent),
                        redact_uri(self.uri or ""))
        if self.run_id is None:
            return
        status = "FINISHED" if ok else "FAILED"
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:  # noqa: BLE001 -- the last call: nothing to retry it, so say so
            log.warning("MLflow: could not mark run %s %s (%s)", self.run_id, status, self._describe(exc))
