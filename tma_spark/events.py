"""Structured events: what a job has reached, for programs that watch it (benchmarks, tests, dashboards).

A job calls ``emit("partition.phase", phase="edges")``; the event goes out through :mod:`logging` as a DEBUG
record of the logger ``tma_spark.events`` whose attribute ``tma_event`` holds an :class:`Event`. Watchers read
that attribute, never the message text, so jobs can reword their human log lines freely. Events are emitted
on the driver only. Events emitted so far:

* ``partition.phase`` (``phase``: setup, assignment, nodes, edges, stats, commit): the partition job starts
  that phase; each phase lasts until the next one starts or the job returns.
* ``partition.lpa_iteration`` (``iteration``, ``changed``, ``nodes``, ``seconds``, ``partitions``): an iteration
  of the built-in label propagation finished.

Example::

    with Recorder("partition.phase") as rec:
        partition(spark, cfg)
    [(e.fields["phase"], e.time) for e in rec.events]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

__all__ = ["EVENT_LOGGER", "Event", "emit", "Recorder"]

EVENT_LOGGER = "tma_spark.events"
_log = logging.getLogger(EVENT_LOGGER)


@dataclass(frozen=True)
class Event:
    """One event.

    Args:
        name: what happened, ``<job>.<what>`` (e.g. ``partition.phase``).
        fields: the event's details (plain, JSON-serialisable values).
        time: ``time.perf_counter()`` when it was emitted (comparable with the watcher's own clock readings
            in the same process).
    """

    name: str
    fields: dict = field(default_factory=dict)
    time: float = 0.0


def emit(name: str, /, **fields) -> None:
    """Emit event ``name`` with ``fields`` as a DEBUG record of ``tma_spark.events`` (attribute ``tma_event``)."""
    if not _log.isEnabledFor(logging.DEBUG):
        return  # nobody listens: no record is built
    event = Event(name, dict(fields), time.perf_counter())
    _log.debug("%s %s", name, " ".join(f"{k}={v}" for k, v in fields.items()), extra={"tma_event": event})


class Recorder(logging.Handler):
    """Collects events (all, or those named ``names``) in ``events`` while its ``with`` block runs.

    It attaches itself to the ``tma_spark.events`` logger and lowers that logger's level to DEBUG for the
    block (so the events are emitted), restoring both on exit.
    """

    def __init__(self, *names: str):
        super().__init__(logging.DEBUG)
        self.names = set(names)
        self.events: list[Event] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "tma_event", None)
        if isinstance(event, Event) and (not self.names or event.name in self.names):
            self.events.append(event)

    def __enter__(self) -> "Recorder":
        self._level = _log.level
        if not _log.isEnabledFor(logging.DEBUG):
            _log.setLevel(logging.DEBUG)
        _log.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        _log.removeHandler(self)
        _log.setLevel(self._level)
