"""What ``--overwrite`` may replace: only a folder that carries this project's marker for that kind of output.

``ingest --lake /data --overwrite`` (a typo for ``/data/lake``) must not delete ``/data``. Every job that
replaces an existing output first checks it here: the folder must hold the marker file its kind of output
always has (a lake its ``_tma_lake.json``, a run its ``config.json``, ...), or be empty. Anything else is
refused with a message naming the path and what was expected there, before any Spark job and before
anything is deleted.

:func:`refusal` is pure (it judges a folder listing); :func:`check_replaceable` lists the folder through
:mod:`tma_spark.fs` (Hadoop's filesystem with a session, pyarrow without).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from . import fs
from .errors import TmaSparkError

__all__ = ["OutputKind", "KINDS", "PREDICTIONS_MARKER", "BENCH_MARKER", "refusal", "check_replaceable"]

#: Written into a prediction table's folder by ``tma-spark infer`` (Spark and Delta ignore ``_`` files).
PREDICTIONS_MARKER = "_tma_predictions.json"
#: Written into a benchmark folder by ``tma-spark bench`` when it starts.
BENCH_MARKER = "_tma_bench.json"


@dataclass(frozen=True)
class OutputKind:
    """A kind of output: its name in messages, the files of which any one marks it, and the command writing it."""

    what: str
    markers: Tuple[str, ...]
    command: str


KINDS: Dict[str, OutputKind] = {
    "lake": OutputKind("lake", ("_tma_lake.json",), "tma-spark ingest"),
    "partitions": OutputKind("partitions folder", ("_tma_parts.json",), "tma-spark partition"),
    "run": OutputKind("run folder", ("config.json",), "tma-spark train"),
    # a Delta table is replaced by a new table version (the previous one stays readable), never deleted
    "predictions": OutputKind("prediction table", (PREDICTIONS_MARKER, "_delta_log"), "tma-spark infer"),
    "benchmark": OutputKind("benchmark folder", (BENCH_MARKER, "results.json", "results.partial.json"),
                            "tma-spark bench"),
}


def refusal(path: str, kind: str, names: Optional[Iterable[str]]) -> Optional[str]:
    """Why ``--overwrite`` must not replace ``path`` (None when it may).

    Args:
        path: the output path (for the message).
        kind: a key of :data:`KINDS`.
        names: the entries of the folder at ``path``; None when ``path`` is a file, not a folder.
    """
    k = KINDS[kind]
    expected = " or ".join(k.markers)
    if names is None:
        return (f"--overwrite refused: {path} is a file, not a {k.what}. Fix: check the path; a {k.what} is a "
                f"folder written by '{k.command}'.")
    names = set(names)
    if not names or names & set(k.markers):
        return None
    return (f"--overwrite refused: {path} is not a {k.what} written by '{k.command}' (it has no {expected}), so "
            f"replacing it could delete data that is not tma_spark's. Fix: check the path (a typo, or the folder "
            f"above the one you meant?); delete it yourself if it really should go, or choose another path.")


def check_replaceable(spark, path: str, kind: str) -> None:
    """Raise a :class:`TmaSparkError` unless the existing ``path`` may be replaced as a ``kind`` output."""
    problem = refusal(path, kind, fs.list_names(spark, path))
    if problem:
        raise TmaSparkError(problem)
