"""Live data files of a Delta table, from its JSON commit log (no Spark, no torch).

Used by trainer tasks to read their part with pyarrow, and by benchmarks.
"""

from __future__ import annotations

import json
import os
from typing import List, Optional
from urllib.parse import unquote

from .errors import TmaSparkError

__all__ = ["delta_live_files", "local_path"]


def local_path(path: str) -> str:
    """A filesystem path for a ``file:`` URI or plain path."""
    return path[len("file:"):] if path.startswith("file:") else path


def delta_live_files(table: str, partition: Optional[dict] = None) -> List[str]:
    """Live data files of a Delta table (JSON log replay), optionally filtered by partition values."""
    table = local_path(table)
    log_dir = os.path.join(table, "_delta_log")
    if not os.path.isdir(log_dir):
        raise TmaSparkError(f"{table} is not a Delta table (no _delta_log).")
    commits = sorted(f for f in os.listdir(log_dir) if f.endswith(".json") and f[:20].isdigit())
    if any(f.endswith(".checkpoint.parquet") for f in os.listdir(log_dir)) and not commits[:1] == ["0" * 20 + ".json"]:
        raise TmaSparkError(f"{table}: Delta log starts at a checkpoint; rewrite the table with tma_spark.")
    live = {}
    for name in commits:
        with open(os.path.join(log_dir, name)) as fh:
            for line in fh:
                action = json.loads(line)
                if "add" in action:
                    live[action["add"]["path"]] = action["add"].get("partitionValues", {})
                elif "remove" in action:
                    live.pop(action["remove"]["path"], None)
    want = {k: str(v) for k, v in (partition or {}).items()}
    return [os.path.join(table, unquote(p)) for p, pv in sorted(live.items())
            if all(pv.get(k) == v for k, v in want.items())]
