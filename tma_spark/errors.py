"""User-facing errors.

Every error a user can cause (bad input, bad configuration, an existing output)
is a :class:`TmaSparkError` whose message names the input, the problem and the
fix. The CLI prints the message without a traceback and exits with status 2.

A JVM running out of memory (Java's ``OutOfMemoryError``, Spark's ``SparkOutOfMemoryError``) is not a bug of
the job but a setting too small for the data: :func:`out_of_memory_message` turns the error's text into one
line naming the command, the step, the size involved and the setting to raise, which the CLI prints instead
of a Py4J traceback, exiting with :attr:`OutOfMemory.exit_code`. Pure Python: no Spark needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

__all__ = ["TmaSparkError", "InputValidationError", "ConfigError", "OutOfMemory", "MemoryFailure", "JVM_OOM_EXIT",
           "classify_out_of_memory", "out_of_memory_message", "note_size", "noted_size"]


class TmaSparkError(Exception):
    """Base class for errors caused by the user's input or environment."""

    exit_code = 2


class InputValidationError(TmaSparkError):
    """An input table or file does not satisfy the lake's contract."""


class ConfigError(TmaSparkError):
    """A configuration value is missing, malformed or out of range."""


class OutOfMemory(TmaSparkError):
    """A JVM of the job ran out of memory; the message names the setting to raise."""

    exit_code = 3


# -- out of memory -----------------------------------------------------------------------------------------

_SIZE = {"what": None}  # what the running command works on, set by the job (note_size)

#: The JVM's own words for running out of memory, most specific first.
_REASONS = (
    r"java\.lang\.OutOfMemoryError(?::[^\n]*)?",
    r"(?:org\.apache\.spark\.memory\.)?SparkOutOfMemoryError(?::[^\n]*)?",
    r"\[UNABLE_TO_ACQUIRE_MEMORY\][^\n]*",
)
#: A failed task names where it ran: "Lost task 6.0 in stage 1.0 (TID 15) (localhost executor driver): ...".
_TASK = re.compile(r"Lost task \S+ in stage \S+ \(TID \d+\) \([^)]*?executor (\S+?)\)"
                   r"|ExecutorLostFailure \(executor (\S+?)\b")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_DEFAULT_MEMORY = "1g"  # Spark's default driver and executor memory
#: The exit status of a Spark JVM that died of an OutOfMemoryError (``SparkExitCode.OOM``). A task's
#: OutOfMemoryError is fatal to its JVM: in local mode the driver's, whose Py4J errors then carry no text.
JVM_OOM_EXIT = 52


def note_size(what: Optional[str]) -> None:
    """Remember what the running command works on (e.g. ``"34,493 nodes x 8,415 features (1.16 GB as dense
    float32)"``), for the out-of-memory message of the CLI; None forgets it."""
    _SIZE["what"] = what


def noted_size() -> Optional[str]:
    """What :func:`note_size` last remembered, or None."""
    return _SIZE["what"]


@dataclass(frozen=True)
class MemoryFailure:
    """Which JVM ran out of memory and how it said so."""

    where: str  # "driver" (the driver itself), "local-task" (a task in the driver JVM, local mode), "executor"
    reason: str  # the JVM's words, e.g. "java.lang.OutOfMemoryError: Java heap space"
    executor: Optional[str] = None  # the executor id of a failed task


def classify_out_of_memory(text: str, jvm_exit_status: Optional[int] = None) -> Optional[MemoryFailure]:
    """The out-of-memory failure an error's text (a Py4J or pyspark exception, its causes) reports, or None.

    An executor's out-of-memory error reaches the driver as a task failure naming the executor ("Lost task
    ... (host executor 3): java.lang.OutOfMemoryError ..."); in local mode that executor is ``driver``, the
    driver's own JVM. Anything else is the driver's heap (a collect, a broadcast, the job's planning). When the
    text says nothing (the driver JVM died before Py4J could ask it), a ``jvm_exit_status`` of
    :data:`JVM_OOM_EXIT` says the driver JVM ran out of memory.
    """
    reason = None
    for pattern in _REASONS:
        match = re.search(pattern, text)
        if match:
            reason = match.group(0).strip()
            break
    if reason is None:
        if jvm_exit_status == JVM_OOM_EXIT:
            return MemoryFailure("driver", f"it exited with status {JVM_OOM_EXIT}, Spark's out-of-memory exit")
        return None
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    task = _TASK.search(text)
    if task is None:
        return MemoryFailure("driver", reason)
    executor = task.group(1) or task.group(2)
    return MemoryFailure("local-task" if executor == "driver" else "executor", reason, executor)


def _doubled(memory: str) -> str:
    """Twice a JVM memory setting ("4g" -> "8g", "512m" -> "1g"); "2x VALUE" when it cannot be read."""
    match = _MEMORY.match(memory)
    if not match:
        return f"2x {memory}"
    value, unit = float(match.group(1)) * 2, (match.group(2) or "").lower()
    units = ["", "k", "m", "g", "t"]
    while unit != "t" and value >= 1024 and value % 1024 == 0:
        value, unit = value / 1024, units[units.index(unit) + 1]
    return f"{value:g}{unit}"


def out_of_memory_message(text: str, command: str, conf: Optional[Mapping[str, str]] = None,
                          step: Optional[str] = None, size: Optional[str] = None,
                          jvm_exit_status: Optional[int] = None) -> Optional[str]:
    """One line for an error whose ``text`` reports a JVM out of memory (:func:`classify_out_of_memory`), else
    None: the command, where and how it ran out, the ``step`` it was at and the ``size`` involved where known,
    the current memory setting (``conf``: the session's ``spark.driver.memory``/``spark.executor.memory``)
    and the flag that raises it. ``jvm_exit_status``: the driver JVM's, when it has exited.

    Example::

        >>> out_of_memory_message("java.lang.OutOfMemoryError: Java heap space", "info",
        ...                       {"spark.driver.memory": "4g"})  # doctest: +NORMALIZE_WHITESPACE
        'tma-spark info ran out of memory in the driver JVM (java.lang.OutOfMemoryError: Java heap space);
        spark.driver.memory is 4g. Fix: raise it, e.g. --conf spark.driver.memory=8g (under spark-submit:
        --driver-memory 8g).'
    """
    failure = classify_out_of_memory(text, jvm_exit_status)
    if failure is None:
        return None
    conf = conf or {}
    key, flag = (("spark.executor.memory", "--executor-memory") if failure.where == "executor"
                 else ("spark.driver.memory", "--driver-memory"))
    current = conf.get(key)
    shown = current or f"unset (Spark's default, {_DEFAULT_MEMORY})"
    more = _doubled(current or _DEFAULT_MEMORY)
    where = {"driver": "the driver JVM",
             "local-task": "a task in the driver JVM (local mode: the driver's memory is the executors')",
             "executor": f"executor {failure.executor}"}[failure.where]
    parts = [f"tma-spark {command} ran out of memory in {where} ({failure.reason})"]
    if step:
        parts.append(f" at step '{step[:120]}'")
    if size:
        parts.append(f"; input: {size}")
    parts.append(f"; {key} is {shown}. Fix: raise it, e.g. --conf {key}={more} (under spark-submit: {flag} {more})")
    if failure.where == "executor":
        parts.append(", or give each task less data (more partitions)")
    return "".join(parts) + "."
