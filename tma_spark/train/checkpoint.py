"""Checkpoints of a training run: ``RUN/checkpoint.pt`` (what ``--resume`` needs) and atomic saves.

``checkpoint.pt`` is a plain dict of tensors, bytes and numbers tagged with its format, serialized with
``torch.save`` and read back with ``weights_only=True``. Every file goes through :mod:`tma_spark.fs`, so the
run folder may be local or on an object store (``s3a://`` ...): each file is written whole (fsynced and
renamed locally, one PUT on object stores), never appended to. Two generations are kept: the new checkpoint
is complete before the current one becomes ``checkpoint.prev.pt``, so a complete checkpoint exists whenever
the driver or the machine dies, and :func:`load_checkpoint` falls back to the previous one.
A checkpoint also carries every round whose metrics line was not written yet (``pending``), so that
``--resume`` records them (:func:`unrecorded_rounds`) and ``metrics.jsonl`` never has a gap.
Driver-side, without Spark.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Tuple

import torch

from .. import fs
from ..errors import TmaSparkError

__all__ = ["CHECKPOINT", "CHECKPOINT_PREV", "CHECKPOINT_FORMAT", "Checkpoint", "save_atomic", "save_checkpoint",
           "load_checkpoint", "unrecorded_rounds"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREV = "checkpoint.prev.pt"  # the previous generation, kept until the new checkpoint is complete
CHECKPOINT_FORMAT = "tma_spark.train.checkpoint/1"


def _serialize(obj) -> bytes:
    """``torch.save`` of ``obj`` into memory: the bytes are then written whole (no store needs seeks)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_atomic(obj, path: str) -> None:
    """``torch.save`` of ``obj`` to ``path`` (local or a store URI), replacing it whole: readers never see a torn
    file (:func:`tma_spark.fs.write_bytes`: fsynced and renamed locally, one PUT on object stores)."""
    fs.write_bytes(None, path, _serialize(obj))


@dataclass
class Checkpoint:
    """What ``checkpoint.pt`` holds after round ``round``: enough to continue the run from there.

    Args:
        round: the last averaged round.
        elapsed: training budget used so far (seconds).
        state: the global weights.
        opts: each part's shipped optimizer state (:func:`~tma_spark.train.contract.to_bytes`).
        rng: the driver's torch random state.
        row: the round's metrics row without scores (re-evaluated on resume when its line was lost).
        server_opt: LLCG's server optimizer state, or None.
        pending: every round not yet recorded in ``metrics.jsonl`` when the checkpoint was written, in order,
            as ``{"row": ..., "state": ...}`` (this round last): evaluation runs in the background and may lag
            (or fail), and ``--resume`` records these rounds again, so that no round is lost. None in
            checkpoints written before it existed (only ``row`` and ``state`` can be recorded again then).
    """

    round: int
    elapsed: float
    state: Dict[str, torch.Tensor]
    opts: Dict[int, bytes]
    rng: torch.Tensor
    row: dict
    server_opt: Optional[dict] = None
    pending: Optional[List[dict]] = None


def save_checkpoint(run_dir: str, ckpt: Checkpoint) -> None:
    """Write ``checkpoint.pt`` (a plain dict of tensors, bytes and numbers, tagged with its format), keeping the
    previous generation until the new one is complete.

    The new checkpoint is written whole to ``checkpoint.pt.tmp`` (fsynced on local disk, one PUT on object
    stores); then the current one becomes ``checkpoint.prev.pt`` and the new one is renamed in. Whenever the
    machine or the driver dies, a complete checkpoint is there (:func:`load_checkpoint` falls back to the
    previous generation). On object stores a rename is a copy then a delete: each object is complete, and a
    driver dying between the two leaves the previous generation or both copies, never a torn file.
    """
    fields_ = {f.name: getattr(ckpt, f.name) for f in fields(ckpt)}  # not asdict: it would deep-copy the weights
    path = fs.join(run_dir, CHECKPOINT)
    tmp, prev = f"{path}.tmp", fs.join(run_dir, CHECKPOINT_PREV)
    fs.write_bytes(None, tmp, _serialize({"format": CHECKPOINT_FORMAT, **fields_}))
    if fs.exists(None, path):
        fs.rename(None, path, prev)
    fs.rename(None, tmp, path)


def _read_checkpoint(path: str) -> Checkpoint:
    """The checkpoint in ``path``, or a TmaSparkError saying why it cannot be used."""
    try:
        data = torch.load(io.BytesIO(fs.read_bytes(path)), weights_only=True, map_location="cpu")
    except TmaSparkError:
        raise  # the store refused us (credentials, bucket, endpoint): its own message says what to fix
    except Exception as exc:
        raise TmaSparkError(f"--resume: {path} is not a readable tma_spark checkpoint ({type(exc).__name__}: "
                            f"{str(exc)[:200]}). Fix: start a new run (--overwrite).") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise TmaSparkError(f"--resume: {path} is not a tma_spark train checkpoint. Fix: start a new run "
                            "(--overwrite).")
    return Checkpoint(round=data["round"], elapsed=data["elapsed"], state=data["state"], opts=dict(data["opts"]),
                      rng=data["rng"], row=data["row"], server_opt=data.get("server_opt"),
                      pending=data.get("pending"))


def load_checkpoint(run_dir: str) -> Optional[Checkpoint]:
    """The run's checkpoint, or None when it was killed before its first round finished.

    When ``checkpoint.pt`` is missing or unreadable (torn by a crash of the machine, or the driver died between
    the two renames of :func:`save_checkpoint`) the previous generation, ``checkpoint.prev.pt``, is used, and
    the fallback is logged: the resumed run repeats one more round.
    """
    path, prev = fs.join(run_dir, CHECKPOINT), fs.join(run_dir, CHECKPOINT_PREV)
    if not fs.is_file(path):
        if not fs.is_file(prev):
            return None
        ckpt = _read_checkpoint(prev)
        log.warning("--resume: %s is missing (the driver died while replacing it); resuming from the previous "
                    "checkpoint %s (round %d)", path, prev, ckpt.round)
        return ckpt
    try:
        return _read_checkpoint(path)
    except TmaSparkError as exc:
        if not fs.is_file(prev):
            raise
        try:
            ckpt = _read_checkpoint(prev)
        except TmaSparkError:
            raise exc from None
        log.warning("%s; resuming from the previous checkpoint %s (round %d) instead", str(exc).split(". Fix:")[0],
                    prev, ckpt.round)
        return ckpt


def unrecorded_rounds(ckpt: Checkpoint, recorded: int, run_dir: str) -> List[Tuple[dict, Dict[str, torch.Tensor]]]:
    """The rounds after ``recorded`` (the last round in ``metrics.jsonl``) up to ``ckpt.round``, in order, as
    (metrics row without scores, global weights): what ``--resume`` records before training goes on.

    A checkpoint without ``pending`` (an older tma_spark) holds only its own round. When a round in between is
    in neither ``metrics.jsonl`` nor the checkpoint, recording the others would leave a gap that the next
    resume refuses, so it is a clear error instead.
    """
    pending = ckpt.pending if ckpt.pending is not None else [{"row": ckpt.row, "state": ckpt.state}]
    by_round = {p["row"]["round"]: p for p in pending}
    wanted = range(recorded + 1, ckpt.round + 1)
    missing = [r for r in wanted if r not in by_round]
    if missing:
        raise TmaSparkError(f"--resume: {fs.join(run_dir, 'metrics.jsonl')} ends at round {recorded} but "
                            f"{fs.join(run_dir, CHECKPOINT)} holds round {ckpt.round} without the weights of "
                            f"round(s) {missing} (a checkpoint written by an older tma_spark while an evaluation "
                            "lagged), so they cannot be recorded. Fix: start a new run (--overwrite).")
    return [(dict(by_round[r]["row"]), by_round[r]["state"]) for r in wanted]
