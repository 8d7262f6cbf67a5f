"""Fault injection, for tests and demos of what tma_spark survives.

Two kinds of faults:

* Trainer faults (``tma-spark train --inject-failure KIND:PART:ROUND``): trainer ``PART`` fails in round
  ``ROUND``. ``trainer`` kills the trainer's Python worker process half-way through the round (as an
  out-of-memory kill or a crash would); ``executor`` kills the whole executor JVM that runs it (as a lost
  machine would), which needs separate executor processes (``local-cluster`` or a real cluster); ``hang``
  lets the trainer stop making progress half-way through the round and sleep far past any round bound (as a
  stalled file read or a CUDA hang would), until the driver cancels the round (``round_timeout``). These
  fire on the first attempt of that round only, so the retried round can succeed. ``diverge`` lets the trainer
  finish the round but turns its weights into NaN (as a far too large learning rate would); it fires on
  every attempt of the round, as a real divergence replays from the same weights and seeds.
* Crash points (environment variable ``TMA_SPARK_CRASH_AT=NAME``): the job process kills itself with
  SIGKILL at the named point, e.g. just before a finished output is renamed into place, so tests can show
  that a job killed while writing leaves the previous output readable and no half-written one visible.

Parsing is pure; the killing functions are only ever called when a fault was asked for.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .errors import ConfigError

__all__ = ["Fault", "FAULT_KINDS", "REPLAYED_KINDS", "parse_faults", "fault_for", "crash_point", "kill_self",
           "kill_executor", "hang", "CRASH_ENV"]

log = logging.getLogger(__name__)

FAULT_KINDS = ("trainer", "executor", "diverge", "hang")
#: Kinds that fire on every attempt of their round (the others on the first attempt only).
REPLAYED_KINDS = ("diverge",)
CRASH_ENV = "TMA_SPARK_CRASH_AT"


@dataclass(frozen=True)
class Fault:
    """Trainer ``part`` fails in round ``round`` (1-based): ``kind`` is what fails (its Python worker, its
    executor, or its weights, which diverge)."""

    kind: str
    part: int
    round: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.part}:{self.round}"


def parse_faults(text: Optional[str]) -> Tuple[Fault, ...]:
    """``"trainer:1:2,executor:0:3"`` -> faults; a clear :class:`ConfigError` for anything else."""
    if not text:
        return ()
    faults = []
    for item in text.split(","):
        fields = item.strip().split(":")
        try:
            kind, part, round_ = fields[0], int(fields[1]), int(fields[2])
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(f"--inject-failure {item!r} must be KIND:PART:ROUND, e.g. trainer:1:2 (kill "
                              "trainer 1 during round 2).") from None
        if kind not in FAULT_KINDS:
            raise ConfigError(f"--inject-failure {item!r}: kind {kind!r} is not one of {', '.join(FAULT_KINDS)}.")
        if part < 0 or round_ < 1:
            raise ConfigError(f"--inject-failure {item!r}: PART must be >= 0 and ROUND >= 1.")
        faults.append(Fault(kind, part, round_))
    return tuple(faults)


def fault_for(faults: Sequence[Fault], part: int, round_index: int, first_attempt: bool) -> Optional[Fault]:
    """The fault that should fire in this task, if any: a kill only on the round's first attempt, a
    divergence on every attempt."""
    return next((f for f in faults if f.part == part and f.round == round_index
                 and (first_attempt or f.kind in REPLAYED_KINDS)), None)


def kill_self(reason: str) -> None:
    """SIGKILL this process: no cleanup, no ``finally`` blocks, exactly like an external kill."""
    log.error("fault injection: killing process %d (%s)", os.getpid(), reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_executor(reason: str) -> None:
    """SIGKILL the executor JVM this Python worker belongs to (its nearest ``java`` ancestor), then itself."""
    import psutil

    proc = psutil.Process().parent()
    while proc is not None and "java" not in proc.name().lower():
        proc = proc.parent()
    if proc is None:
        raise RuntimeError("fault injection: no executor JVM above this Python worker")
    log.error("fault injection: killing executor JVM %d (%s)", proc.pid, reason)
    proc.kill()
    kill_self(reason)


def hang(reason: str, seconds: float) -> None:
    """Stop making progress, as a stalled read or a CUDA hang would: sleep ``seconds`` (far past the round's bound)
    or until the driver cancels the round and Spark kills this Python worker. Bounded, so that a test whose
    cancellation failed ends eventually."""
    log.error("fault injection: hanging for %.0f s in process %d (%s)", seconds, os.getpid(), reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    time.sleep(seconds)


def crash_point(name: str) -> None:
    """Kill this process here when ``$TMA_SPARK_CRASH_AT`` names this point (tests of killed jobs)."""
    if os.environ.get(CRASH_ENV) == name:
        kill_self(f"{CRASH_ENV}={name}")
