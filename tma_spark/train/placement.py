"""Which part each barrier task trains: parts follow the executors that already hold them.

Spark places a round's K barrier tasks on whatever slots it offers, and the order of its offers changes from
round to round: with task ``i`` always training part ``i``, half the part-rounds of a run moved to another
executor and read their part from the lake again (14 of 28 on one machine, more on a cluster, where a part
is gigabytes). So the part is not fixed by the task: every task of round ``r`` receives the driver's
record of which executor trained which part in round ``r - 1`` (:func:`holders`), reads the executor
address of every task in its stage (``BarrierTaskContext.getTaskInfos``, known before any task runs, no
message exchange), and computes the same assignment as every other task (:func:`assign_parts`): a task on
an executor that holds a part trains that part. Each trainer then loads its part once per run, and once
more when its executor is lost.

This needs one task per executor (one trainer core per executor, as ``spark.task.cpus`` equal to the
executor's cores gives, or one executor per machine with K machines), or local mode, where the one executor's
tasks tell its Python workers apart through files and a task's slot is ``address/pid``
(:mod:`tma_spark.train.rendezvous`). Where several of a round's tasks share an executor of a cluster, the
address cannot tell their workers apart: those tasks keep part = task index, and a part may move between that
executor's Python workers.

Pure functions, tested without Spark.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence

__all__ = ["assign_parts", "holders"]


def assign_parts(addresses: Sequence[str], held: Mapping[str, int], k: int) -> List[int]:
    """The part each of the ``k`` tasks trains, by task (partition id), a permutation of ``range(k)``.

    Args:
        addresses: each task's executor address (``host:port``), by partition id.
        held: executor address -> the part its trainer trained last round (:func:`holders`).
        k: the number of tasks and parts.

    A task on an executor that ran only that task and holds a part keeps it (the first such task wins if two
    claim one part); every other task takes its own index when that part is free, and the parts left over
    go, in order, to the tasks left over. Every task computes the same result from the same inputs.
    """
    if len(addresses) != k:
        raise ValueError(f"assign_parts: {len(addresses)} task addresses for {k} parts")
    shared = Counter(addresses)
    parts: List[Optional[int]] = [None] * k
    taken = set()
    for task, address in enumerate(addresses):
        part = held.get(address) if shared[address] == 1 else None
        if part is not None and 0 <= part < k and part not in taken:
            parts[task] = part
            taken.add(part)
    for task in range(k):
        if parts[task] is None and task not in taken:
            parts[task] = task
            taken.add(task)
    free = iter(p for p in range(k) if p not in taken)
    return [p if p is not None else next(free) for p in parts]


def holders(placed: Sequence[tuple]) -> Dict[str, int]:
    """executor address -> part, from a round's ``(address, part)`` pairs of trainers that finished (address
    None: not known). An address that ran more than one trainer is left out: its workers cannot be told apart."""
    known = [(a, p) for a, p in placed if a]
    shared = Counter(a for a, _ in known)
    return {a: p for a, p in known if shared[a] == 1}
