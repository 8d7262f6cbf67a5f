"""The run folder of ``tma-spark train``: its files, checkpoints, history, resume checks and publishing.

``RUN/config.json`` (the effective configuration), ``RUN/model.json`` (the :class:`ModelSpec`),
``metrics.jsonl`` (one row per round), ``best.pt`` / ``last.pt`` (state dicts), ``checkpoint.pt`` (what
``--resume`` needs: :mod:`tma_spark.train.checkpoint`), ``summary.json`` and, when tracked,
``tracking.json`` (the MLflow run that ``--resume`` continues). Everything is JSON or ``torch.save`` of
tensors, read back with ``weights_only=True``.

``--overwrite`` of an existing run trains in a hidden sibling (``.RUN.next``) and swaps it in when the run
finishes (:func:`publish_run_dir`): a killed run never replaces a finished one.

``RUN`` may be a local path or a store URI (``s3a://`` ...): every file operation goes through
:mod:`tma_spark.fs`, and every file is written whole (no appends, which S3 and Databricks volumes lack).

Driver-side, but without Spark: inference reads run folders through :func:`read_model_spec` too.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import List, Optional

from .. import fs, jsonsafe
from ..errors import ConfigError, TmaSparkError
from ..faults import crash_point
from ..outputs import check_replaceable
from .contract import ModelSpec

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TRACKING_FILE", "RESUMABLE_CHANGES", "check_run_dir", "open_run_dir",
           "publish_run_dir", "write_run_files", "read_config", "write_tracking", "read_tracking", "check_resumable",
           "read_history", "read_model_spec", "derive_model_spec"]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.json"
TRACKING_FILE = "tracking.json"
#: Settings a resumed run may change; every other setting must equal the checkpointed run's.
RESUMABLE_CHANGES = {"time_limit", "max_rounds", "patience", "overwrite", "resume", "round_retries",
                     "tolerate_failures", "inject_failures", "round_seconds", "round_timeout", "out",
                     "weights_transport"}
#: Names of the first layer's weight in the models' state dicts (SAGE, GCN/GAT, MLP).
_FIRST_WEIGHTS = ("convs.0.lin_l.weight", "convs.0.lin.weight", "convs.0.weight")


def _next_dir(out: str) -> str:
    """Where ``--overwrite`` trains until the new run is complete (a hidden sibling of ``out``)."""
    parent, name = fs.qualify(out).rstrip("/").rsplit("/", 1)
    return fs.join(parent, f".{name}.next")


def _is_run(path: str) -> bool:
    return fs.is_file(fs.join(path, CONFIG_FILE))


def check_run_dir(out: str, overwrite: bool, resume: bool) -> None:
    """Fail before any Spark job when ``out`` cannot be used as asked."""
    out = fs.qualify(out)
    if resume:
        if not (_is_run(_next_dir(out)) or _is_run(out)):
            raise TmaSparkError(f"--resume: {out} holds no run to resume (no config.json). Fix: start the run "
                                "without --resume.")
        return
    if fs.exists(None, out) and not overwrite:
        state = "finished" if fs.is_file(fs.join(out, "summary.json")) else "unfinished: no summary.json"
        raise TmaSparkError(f"Run folder {out} already exists ({state}). Fix: pass --resume to continue it, "
                            "--overwrite to replace it, or choose another --out.")
    if fs.exists(None, out):
        check_replaceable(None, out, "run")


def open_run_dir(out: str, overwrite: bool, resume: bool) -> str:
    """The folder this run writes to: ``out``, or its hidden ``.next`` sibling while replacing a run."""
    out = fs.qualify(out)
    staged = _next_dir(out)
    if resume:
        return staged if _is_run(staged) else out
    if fs.exists(None, staged):
        fs.delete(None, staged)  # an earlier --overwrite run that was killed and not resumed
    if fs.exists(None, out):
        fs.makedirs(staged)
        return staged
    fs.makedirs(out)
    return out


def publish_run_dir(run_dir: str, out: str) -> None:
    """Swap a finished ``.next`` run in for the previous one: the previous run is moved aside, the new one into
    place, then the previous one deleted, so one complete run is always there.

    Locally and on HDFS each move is one rename. On object stores a folder cannot be renamed: each move copies
    the folder's files one by one (each file complete) and then deletes the source, so the swap is per object,
    not atomic: a driver killed during it can leave a partial ``RUN`` beside the complete ``.RUN.next`` (and
    ``.RUN.previous-*``); nothing is lost, and ``--resume`` publishes ``.RUN.next`` again
    (:func:`tma_spark.fs.move_dir`).
    """
    out = fs.qualify(out)
    if run_dir == out:
        return
    crash_point("before-commit")  # fault injection: a driver killed here must leave the previous run in place
    parent, name = out.rstrip("/").rsplit("/", 1)
    old = fs.join(parent, f".{name}.previous-{uuid.uuid4().hex[:8]}")
    if fs.exists(None, out):
        fs.move_dir(out, old)
    fs.move_dir(run_dir, out)
    try:
        fs.delete(None, old)
    except OSError as exc:  # the new run is in place; a leftover copy of the old one is only clutter
        log.warning("could not delete the previous run %s (%s); delete it yourself", old, exc)


def write_run_files(run_dir: str, run_config: Optional[dict], model: ModelSpec) -> None:
    """Write ``config.json`` (unless None: a resumed run keeps its own) and ``model.json``."""
    if run_config is not None:
        fs.write_json(fs.join(run_dir, CONFIG_FILE), run_config)
    fs.write_json(fs.join(run_dir, MODEL_FILE), model.to_json())


def read_config(run_dir: str) -> dict:
    """The run's ``config.json``; a torn or edited file is a clear error (resume and infer both need it)."""
    path = fs.join(run_dir, CONFIG_FILE)
    try:
        cfg = json.loads(fs.read_text(None, path))
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise TmaSparkError(f"{path} is not valid JSON ({exc}). Fix: restore the run's {CONFIG_FILE} (its "
                            "effective settings) from a copy, or re-run training with --overwrite.") from None
    if not isinstance(cfg, dict):
        raise TmaSparkError(f"{path} holds a {type(cfg).__name__}, not the run's settings (a JSON object). Fix: "
                            f"restore the run's {CONFIG_FILE} from a copy, or re-run training with --overwrite.")
    return cfg


def write_tracking(run_dir: str, info: Optional[dict]) -> None:
    """Record the experiment tracker's run (``tracking.json``: MLflow run id, experiment, URI without
    credentials), so that ``--resume`` continues the same MLflow run; nothing when ``info`` is None."""
    if info is not None:
        fs.write_json(fs.join(run_dir, TRACKING_FILE), info)


def read_tracking(out: str) -> Optional[dict]:
    """The ``tracking.json`` of the run that ``--resume`` of ``out`` continues, or None (none recorded, or
    unreadable: tracking is never fatal, a new MLflow run is started then)."""
    out = fs.qualify(out)
    staged = _next_dir(out)
    path = fs.join(staged if _is_run(staged) else out, TRACKING_FILE)
    try:
        info = json.loads(fs.read_text(None, path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TmaSparkError) as exc:  # TmaSparkError: the store refused the read
        log.warning("%s is unreadable (%s); the resumed run is tracked as a new MLflow run", path, exc)
        return None
    return info if isinstance(info, dict) else None


def check_resumable(saved: dict, current: dict, run_dir: str) -> None:
    """The resumed run must be the same training problem; name every setting that differs."""
    diffs = [f"{key}={saved.get(key)!r} (now {value!r})" for key, value in current.items()
             if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value]
    if diffs:
        raise ConfigError(f"--resume: the run in {run_dir} was trained with different settings: "
                          f"{', '.join(diffs)}. Fix: resume with the run's settings (see its config.json), or "
                          "start a new run with --overwrite or another --out.")


def read_history(run_dir: str, upto: int) -> List[dict]:
    """Metrics rows of rounds 1..``upto`` (a torn last line, left by an older tma_spark that appended, or later
    rounds are dropped); ``metrics.jsonl`` is then replaced whole by these rows (:func:`tma_spark.fs.write_text`)."""
    path = fs.join(run_dir, "metrics.jsonl")
    rows: List[dict] = []
    try:
        text = fs.read_bytes(path).decode("utf-8", errors="replace")  # a torn line may end mid-character
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            break  # the driver was killed while appending this line
        if row.get("round", upto + 1) <= upto:
            rows.append(row)
    rounds = [r["round"] for r in rows]
    if rounds != list(range(1, len(rows) + 1)):
        raise TmaSparkError(f"{path} has rounds {rounds}, not 1..{len(rows)}. Fix: it was edited or mixed with "
                            "another run; start a new run.")
    fs.write_text(None, path, "".join(jsonsafe.dumps(r) + "\n" for r in rows))
    return rows


def read_model_spec(run: str, run_cfg: dict, state, ckpt: str) -> ModelSpec:
    """The :class:`ModelSpec` of run folder ``run``: its ``model.json``, or, for runs written before
    ``model.json`` existed, :func:`derive_model_spec` from ``config.json`` and the state dict ``state``
    (read from ``ckpt``)."""
    if not (isinstance(state, dict) and any(k in state for k in _FIRST_WEIGHTS)):
        raise TmaSparkError(f"Checkpoint {ckpt} is not a tma_spark model state dict. Fix: pass a run folder "
                            "written by 'tma-spark train'.")
    path = fs.join(run, MODEL_FILE)
    try:
        data = fs.read_bytes(path)
    except FileNotFoundError:
        return derive_model_spec(run_cfg, state, ckpt)
    try:
        return ModelSpec.from_json(json.loads(data))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise TmaSparkError(f"{path} is not a tma_spark model spec ({exc}). Fix: restore it from the run's "
                            f"training, or delete it to derive the model from {CONFIG_FILE} and the "
                            "checkpoint.") from None


def derive_model_spec(run_cfg: dict, state: dict, ckpt: str) -> ModelSpec:
    """The model of a run written before ``model.json``: kind, hidden and layers from ``config.json``, the input
    width from the first layer's weight and the output width from the last layer's."""
    try:
        first = next(state[k] for k in _FIRST_WEIGHTS if k in state)
        last = [k for k in state if k.startswith(f"convs.{run_cfg['layers'] - 1}.") and k.endswith("weight")]
        out_dim = int(state[last[0]].shape[0]) if last else int(run_cfg["hidden"])
        return ModelSpec(kind=run_cfg["model"], in_dim=int(first.shape[1]), hidden=int(run_cfg["hidden"]),
                         out_dim=out_dim, layers=int(run_cfg["layers"]), dropout=float(run_cfg.get("dropout", 0.5)))
    except (KeyError, IndexError, StopIteration, TypeError, ValueError, AttributeError) as exc:
        raise TmaSparkError(f"Cannot tell the model of checkpoint {ckpt}: its run has no {MODEL_FILE} and the "
                            f"model's shape could not be derived from {CONFIG_FILE} and the weights "
                            f"({type(exc).__name__}: {exc}). Fix: write {MODEL_FILE} beside it (kind, in_dim, "
                            "hidden, out_dim, layers, dropout), or re-run training.") from None
