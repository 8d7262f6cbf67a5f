"""Executor side: telling apart the Python workers of one executor that runs several of a round's trainers.

Placement (:mod:`tma_spark.train.placement`) keeps a part where it was loaded by the executor address of each
barrier task. In local mode (and on any executor running all K trainers) every task has the same address,
and the executor hands each round's tasks to its Python workers in whatever order they come free: without
more, a part moved to another worker, which read it again from the lake, in most rounds (loads [4, 5, 5, 5]
over 6 rounds in ``local[4]``; at 10^8 edges a part takes tens of seconds to load).

In local mode the tasks share this machine, so they tell each other which worker process they run in
through files: each writes its worker's pid into a folder named after the round attempt and reads the
others' (a few milliseconds; ``BarrierTaskContext.allGather`` would take about a second, as PySpark polls
for its answer once a second). Each task's slot is then ``address/pid``, which the driver records per part
like an executor address, and a worker that trained a part last round takes it again.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from typing import List, Optional, Sequence

__all__ = ["worker_slots", "rendezvous_dir", "meets_locally"]

log = logging.getLogger(__name__)

#: How long a task waits for the other tasks of its round to say where they run (they start together).
WAIT_SECONDS = 60.0


def meets_locally(master: str) -> bool:
    """Whether a round's tasks meet through files: Spark's local mode (``local``, ``local[N]``, ``local[*]``),
    where they share this machine and a failed task is never retried inside the stage (so a round attempt's
    folder holds only its own tasks' files); ``local[N,F]`` retries tasks and is left out."""
    return re.fullmatch(r"local(\[(\d+|\*)\])?", master.strip()) is not None


def rendezvous_dir(token: str) -> str:
    """The folder (on the executor's machine) where the tasks of round attempt ``token`` meet."""
    return os.path.join(tempfile.gettempdir(), f"tma-spark-{token}")


def worker_slots(addresses: Sequence[str], task: int, folder: str, pid: Optional[int] = None,
                 wait: float = WAIT_SECONDS) -> List[str]:
    """Each task's slot, by partition id: its executor address, or ``address/pid`` when every task runs on the
    one executor ``addresses[0]`` (the tasks then meet in ``folder``, which this writes and reads).

    If the other tasks have not all written within ``wait`` seconds (one failed before it could), the plain
    addresses come back and the round falls back to part = task index, as every task then does."""
    k = len(addresses)
    if k < 2 or len(set(addresses)) > 1:
        return list(addresses)
    os.makedirs(folder, exist_ok=True)
    mine = os.path.join(folder, str(task))
    with open(mine + ".tmp", "w") as fh:
        fh.write(str(os.getpid() if pid is None else pid))
    os.replace(mine + ".tmp", mine)  # whole or absent: a reader never sees a half-written pid
    deadline = time.monotonic() + wait
    while True:
        names = [n for n in os.listdir(folder) if n.isdigit()]
        if len(names) >= k:
            break
        if time.monotonic() > deadline:
            log.warning("only %d of %d trainers said which worker they run in within %g s; parts follow the task "
                        "index this round", len(names), k, wait)
            return list(addresses)
        time.sleep(0.005)
    pids = []
    for t in range(k):
        with open(os.path.join(folder, str(t))) as fh:
            pids.append(fh.read().strip())
    return [f"{a}/{p}" for a, p in zip(addresses, pids)]
