"""How a round's weights travel between the driver and its trainers: through Spark, or through files.

Each round the driver sends the global weights (and, with ``--optimizer-state shipped``, each part's Adam
state) to the K trainers, and each trainer sends its weights (and state) back. Two transports:

* ``spark``: broadcasts out and task results back. Works on every cluster, but the bytes pass through every
  JVM on the way: the driver's Python to its JVM, the JVM's block manager to each executor JVM, on to the Python
  worker, and back the same way (task results above 1 MB go through the executors' block managers). On a
  machine whose cores all train, that JVM work sits on the round's critical path: at round end the driver JVM
  used 0.3-0.6 CPU-seconds against 0.06-0.1 in its Python, and started a G1 marking cycle at most round ends,
  set off by the ~3 MB weight arrays.
* ``files``: the sender writes the bytes to a file in a folder on the driver's machine and sends its path;
  the receiver reads the file (from the page cache) and deletes the ones addressed to it. Only paths cross
  the JVMs. For ``local[...]`` and ``local-cluster[...]`` masters, whose executors run on the driver's
  machine and so reach its temporary folder.

:class:`Parcel` is what goes into a task closure or comes back in a result under ``files``; it answers
``.value`` and ``.unpersist()`` like the Spark ``Broadcast`` it stands in for, so the round code treats the
two alike. Driver and trainer side alike: plain files, no Spark, no torch.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional

__all__ = ["TRANSPORTS", "Parcel", "Exchange", "resolve_transport", "open_exchange", "sweep_stale"]

log = logging.getLogger(__name__)

#: The ``--weights-transport`` choices (``auto``: ``files`` on local masters, ``spark`` elsewhere).
TRANSPORTS = ("auto", "spark", "files")


def _on_driver_machine(master: str) -> bool:
    """Whether every executor of ``master`` runs on the driver's machine (``local``, ``local[N]``, ``local[N,F]``,
    ``local-cluster[...]``)."""
    return master.strip().startswith("local")


def resolve_transport(setting: str, master: str) -> str:
    """``spark`` or ``files`` for the ``--weights-transport`` ``setting`` under Spark master ``master``; a
    ``ValueError`` naming the fix when ``files`` is asked for executors that may run on other machines."""
    if setting == "auto":
        return "files" if _on_driver_machine(master) else "spark"
    if setting == "files" and not _on_driver_machine(master):
        raise ValueError(f"--weights-transport files needs every executor on the driver's machine (a local[...] or "
                         f"local-cluster[...] master), but the master is {master!r}. Fix: drop the setting (auto "
                         "picks spark here) or pass --weights-transport spark.")
    return setting


@dataclass(frozen=True)
class Parcel:
    """Bytes in a file that its one receiver reads (:attr:`value`) and deletes (:meth:`unpersist`)."""

    path: str

    @property
    def value(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()

    def unpersist(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Exchange:
    """A folder every trainer and the driver reach, through which :class:`Parcel` s travel."""

    folder: str

    def put(self, data: bytes, name: str) -> Parcel:
        """``data`` written whole to a new file (a reader never sees a half-written one), named after ``name``
        and unique, so a retried round or a re-run task never overwrites a parcel still to be read. Not
        :func:`tma_spark.fs.write_bytes`, which fsyncs: a parcel lives for one round on the critical path, and a
        crash loses the round anyway (the checkpoint, which is fsynced, holds what survives)."""
        path = os.path.join(self.folder, f"{name}-{uuid.uuid4().hex[:12]}.pt")
        with open(path + ".tmp", "wb") as fh:
            fh.write(data)
        os.replace(path + ".tmp", path)
        return Parcel(path)

    def close(self) -> None:
        """Delete the folder with whatever is left in it (parcels of a failed round's trainers)."""
        shutil.rmtree(self.folder, ignore_errors=True)


#: An exchange folder's name: the driver's process id, then a random suffix (:func:`tempfile.mkdtemp`).
_FOLDER = re.compile(r"tma-spark-weights-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(parent: str) -> List[str]:
    """Delete the exchange folders in ``parent`` whose driver process is gone (a driver killed mid-run cannot
    delete its own); returns them. A folder of a live process, or of a reused process id, is kept."""
    stale = []
    for name in os.listdir(parent):
        match = _FOLDER.match(name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            stale.append(name)
    if stale:
        log.info("deleted %d weights folder(s) left by driver(s) that are gone: %s", len(stale), ", ".join(stale))
    return stale


@contextmanager
def open_exchange(transport: str) -> Iterator[Optional[Exchange]]:
    """For the ``files`` transport, a new :class:`Exchange` in this machine's temporary folder, deleted with what is
    left in it on exit (and those of killed drivers before: :func:`sweep_stale`); None for ``spark``."""
    if transport != "files":
        yield None
        return
    sweep_stale(tempfile.gettempdir())
    exchange = Exchange(tempfile.mkdtemp(prefix=f"tma-spark-weights-{os.getpid()}-"))
    log.info("weights travel through files in %s (--weights-transport files)", exchange.folder)
    try:
        yield exchange
    finally:
        exchange.close()
