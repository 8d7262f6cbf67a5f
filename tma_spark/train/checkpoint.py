"""Checkpoints of a training run: ``RUN/checkpoint.pt`` (what ``--resume`` needs) and atomic, fsynced saves.

``checkpoint.pt`` is a plain dict of tensors, bytes and numbers tagged with its format, written with
``torch.save`` and read back with ``weights_only=True``. Two generations are kept: the new checkpoint is
written and fsynced before the current one becomes ``checkpoint.prev.pt``, so a complete checkpoint is on
disk whenever the driver or the machine dies, and :func:`load_checkpoint` falls back to the previous one.
A checkpoint also carries every round whose metrics line was not written yet (``pending``), so that
``--resume`` records them (:func:`unrecorded_rounds`) and ``metrics.jsonl`` never has a gap.
Driver-side, without Spark.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Tuple

import torch

from ..errors import TmaSparkError

__all__ = ["CHECKPOINT", "CHECKPOINT_PREV", "CHECKPOINT_FORMAT", "Checkpoint", "save_atomic", "save_checkpoint",
           "load_checkpoint", "unrecorded_rounds"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREV = "checkpoint.prev.pt"  # the previous generation, kept until the new checkpoint is complete
CHECKPOINT_FORMAT = "tma_spark.train.checkpoint/1"


def _save_synced(obj, path: str) -> None:
    """``torch.save`` to ``path`` and fsync it: its bytes are on disk before it is renamed anywhere."""
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _sync_dir(path: str) -> None:
    """fsync the folder ``path`` so that renames in it survive a crash of the machine (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder
    finally:
        os.close(fd)


def save_atomic(obj, path: str) -> None:
    """``torch.save`` to a temporary sibling, fsynced and renamed over ``path``: readers never see a torn file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    _save_synced(obj, tmp)
    os.replace(tmp, path)


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

    The new checkpoint is written to ``checkpoint.pt.tmp`` and fsynced; then the current one becomes
    ``checkpoint.prev.pt`` and the new one is renamed in. Whenever the machine or the driver dies, a complete
    checkpoint is on disk (:func:`load_checkpoint` falls back to the previous generation).
    """
    fields_ = {f.name: getattr(ckpt, f.name) for f in fields(ckpt)}  # not asdict: it would deep-copy the weights
    path = os.path.join(run_dir, CHECKPOINT)
    tmp, prev = f"{path}.tmp", os.path.join(run_dir, CHECKPOINT_PREV)
    _save_synced({"format": CHECKPOINT_FORMAT, **fields_}, tmp)
    if os.path.exists(path):
        os.replace(path, prev)
    os.replace(tmp, path)
    _sync_dir(run_dir)


def _read_checkpoint(path: str) -> Checkpoint:
    """The checkpoint in ``path``, or a TmaSparkError saying why it cannot be used."""
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
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
    path, prev = os.path.join(run_dir, CHECKPOINT), os.path.join(run_dir, CHECKPOINT_PREV)
    if not os.path.isfile(path):
        if not os.path.isfile(prev):
            return None
        ckpt = _read_checkpoint(prev)
        log.warning("--resume: %s is missing (the driver died while replacing it); resuming from the previous "
                    "checkpoint %s (round %d)", path, prev, ckpt.round)
        return ckpt
    try:
        return _read_checkpoint(path)
    except TmaSparkError as exc:
        if not os.path.isfile(prev):
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
        raise TmaSparkError(f"--resume: {os.path.join(run_dir, 'metrics.jsonl')} ends at round {recorded} but "
                            f"{os.path.join(run_dir, CHECKPOINT)} holds round {ckpt.round} without the weights of "
                            f"round(s) {missing} (a checkpoint written by an older tma_spark while an evaluation "
                            "lagged), so they cannot be recorded. Fix: start a new run (--overwrite).")
    return [(dict(by_round[r]["row"]), by_round[r]["state"]) for r in wanted]
