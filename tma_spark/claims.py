"""One writer per output: a job claims its output before writing and releases it when done.

Two jobs writing the same output used to both report success while one result was silently kept. Now every
job that writes an output (lake, partitions, run folder, predictions, benchmark) first creates a hidden claim
file beside it, ``.NAME.claim``, with create-if-absent; a second writer finds it and fails fast, naming the
holder (host, process, command, start time). A claim left by a job that died on this host (its process is
gone) is taken over with a warning; one from another host is reported with how to remove it.

Claiming also finishes what a killed commit left: a commit renames the previous output aside
(``.NAME.previous-*``) and then the new one into place; when the job died between the two renames, the
output is missing and the previous version is restored (:func:`recover_interrupted_commit`).

On local disks and HDFS create-if-absent is atomic; on object stores it is as strong as the store's
conditional create (see the README).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import functools
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from . import fs
from .errors import TmaSparkError

__all__ = ["claim_path", "claimed", "claiming", "holder_alive", "recover_interrupted_commit"]

log = logging.getLogger(__name__)


def claim_path(path: str) -> str:
    """The claim file of output ``path``: a hidden sibling ``.NAME.claim``."""
    parent, name = fs.qualify(path).rstrip("/").rsplit("/", 1)
    return f"{parent}/.{name}.claim"


def holder_alive(holder: dict, host: str) -> Optional[bool]:
    """Whether the process that wrote claim ``holder`` still runs: True/False on this ``host``, None (cannot
    tell) for another host or an unreadable claim."""
    if holder.get("host") != host or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _read(spark, path: str) -> dict:
    try:
        holder = json.loads(fs.read_text(spark, path))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def claimed(spark, path: str, command: str) -> Iterator[None]:
    """Hold the claim on output ``path`` for the ``with`` block (``spark`` may be None for local paths).

    Raises:
        TmaSparkError: another live job holds it (exit status 2, nothing written).
    """
    host = platform.node()
    me = {"host": host, "pid": os.getpid(), "command": command,
          "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    where = claim_path(path)
    if not fs.create_exclusive(spark, where, json.dumps(me)):
        holder = _read(spark, where)
        alive = holder_alive(holder, host)
        if alive is not False:
            who = (f"{holder.get('command', '?')} (host {holder.get('host', '?')}, process {holder.get('pid', '?')}, "
                   f"since {holder.get('started', '?')})")
            raise TmaSparkError(
                f"{fs.qualify(path)} is being written by another job: {who}. Fix: wait for it to finish, or write "
                f"elsewhere; if that job is gone ({'it runs on another host' if alive is None else 'it is alive'}"
                f"), delete {where} and run again.")
        log.warning("taking over the claim on %s from process %s, which is gone (%s)", path, holder.get("pid"),
                    holder.get("command"))
        fs.delete(spark, where)
        if not fs.create_exclusive(spark, where, json.dumps(me)):
            raise TmaSparkError(f"{fs.qualify(path)} was claimed by another job just now. Fix: wait for it to "
                                "finish, or write elsewhere.")
    try:
        recover_interrupted_commit(spark, path)
        yield
    finally:
        _release(spark, where)


def _release(spark, where: str) -> None:
    """Delete the claim file; when the session's JVM is gone (it died, e.g. of an OutOfMemoryError), through
    pyarrow instead, so that the failed job leaves no claim behind."""
    try:
        fs.delete(spark, where)
    except Exception:  # noqa: BLE001 -- Py4J errors when the JVM died
        fs.delete(None, where)


def claiming(output: str, command: str, local: bool = False) -> Callable:
    """Decorator of a job ``job(spark, cfg, ...)``: validate ``cfg``, then run the job holding the claim on the
    output path ``getattr(cfg, output)`` (through the session's filesystem, or the local one with ``local``)."""

    def wrap(job: Callable) -> Callable:
        @functools.wraps(job)
        def run(spark, cfg, *args, **kwargs):
            cfg.validate()
            with claimed(None if local else spark, getattr(cfg, output), command):
                return job(spark, cfg, *args, **kwargs)

        return run

    return wrap


def recover_interrupted_commit(spark, path: str) -> Optional[str]:
    """Put the previous version of output ``path`` back when a commit died between its two renames (``path``
    missing, one ``.NAME.previous-*`` sibling present); return the restored sibling, or None."""
    path = fs.qualify(path).rstrip("/")
    if fs.exists(spark, path):
        return None
    parent, name = path.rsplit("/", 1)
    names = fs.list_names(spark, parent) if fs.exists(spark, parent) else None
    previous = sorted(n for n in names or () if n.startswith(f".{name}.previous-"))
    if not previous:
        return None
    if len(previous) > 1:
        raise TmaSparkError(f"{path} is missing and several earlier versions lie beside it ({', '.join(previous)}): "
                            f"a commit was interrupted more than once. Fix: rename the one to keep to {path} "
                            "and delete the others.")
    fs.rename(spark, f"{parent}/{previous[0]}", path)
    log.warning("%s: a commit was interrupted between its two renames; restored the previous version (%s)",
                path, previous[0])
    return previous[0]
