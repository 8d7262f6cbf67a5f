"""The partitions folder's metadata (``PARTS/_tma_parts.json``) and its one reader, :func:`open_parts`.

Every reader of a partitions folder (the train driver, the pipeline's reuse check, the command line's
choice of task slots, benchmarks) goes through :func:`open_parts`, which reads through the same filesystem
layer as lakes (:mod:`tma_spark.fs`) and turns a missing, corrupted or foreign file into one clear error.
Pure Python: no torch; Spark only when a session is passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .. import fs
from ..errors import TmaSparkError

__all__ = ["PARTS_META", "PartsMeta", "open_parts", "parts_meta_json"]

PARTS_META = "_tma_parts.json"


@dataclass(frozen=True)
class PartsMeta:
    """What a partitions folder holds, as its ``_tma_parts.json`` says.

    Args:
        path: the qualified partitions folder.
        parts: K, the number of parts.
        strategy: ``random``, ``super`` or ``metis``.
        format: table format of ``nodes``, ``edges`` and ``assignment`` (``delta`` or ``parquet``).
        lake: the lake the parts were made from, and ``lake_created_at`` its version.
        num_nodes, num_edges: the lake's sizes.
        config: the effective partition settings.
        version: when the metadata was written (seconds since the epoch); a re-written folder has a new one,
            so trainers reload their cached parts.
    """

    path: str
    parts: int
    strategy: str
    format: str
    lake: str
    lake_created_at: Optional[str]
    num_nodes: int
    num_edges: int
    config: dict = field(default_factory=dict)
    version: float = 0.0


def parts_meta_json(config: dict, lake: str, lake_created_at: str, num_nodes: int, num_edges: int) -> str:
    """The text of ``_tma_parts.json`` for a partitions folder made with ``config`` from ``lake``."""
    return json.dumps({"config": config, "lake": lake, "lake_created_at": lake_created_at,
                       "num_nodes": num_nodes, "num_edges": num_edges}, indent=2)


def _problem(meta_file: str, problem: str) -> TmaSparkError:
    return TmaSparkError(f"{meta_file} {problem}. Fix: re-create the folder with 'tma-spark partition "
                         "--overwrite', or point --partitions at a folder written by 'tma-spark partition'.")


def open_parts(spark, path: str) -> PartsMeta:
    """Read the metadata of the partitions folder ``path`` (``spark`` may be None before a session starts).

    Raises:
        TmaSparkError: ``path`` is not a partitions folder, or its ``_tma_parts.json`` is unreadable,
            not JSON or lacks what a partitions folder records.
    """
    path = fs.qualify(path).rstrip("/")
    meta_file = f"{path}/{PARTS_META}"
    try:
        text = fs.read_text(spark, meta_file)
    except FileNotFoundError:
        raise TmaSparkError(f"{path} is not a partitions folder ({meta_file} is missing). "
                            "Fix: create it with 'tma-spark partition'.") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise _problem(meta_file, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
        raise _problem(meta_file, "is not tma_spark partitions metadata (no 'config' mapping)")
    cfg = raw["config"]
    missing = [k for k in ("parts", "strategy", "format") if k not in cfg] + (["lake"] if "lake" not in raw else [])
    if missing:
        raise _problem(meta_file, f"lacks {', '.join(missing)}")
    parts, strategy, fmt, lake = cfg["parts"], str(cfg["strategy"]), str(cfg["format"]), str(raw["lake"])
    if not isinstance(parts, int) or isinstance(parts, bool):
        raise _problem(meta_file, f"says parts = {parts!r}, not a whole number")
    if parts < 1:
        raise _problem(meta_file, f"says parts = {parts}; K must be at least 1")
    return PartsMeta(path=path, parts=parts, strategy=strategy, format=fmt, lake=lake,
                     lake_created_at=raw.get("lake_created_at"), num_nodes=int(raw.get("num_nodes") or 0),
                     num_edges=int(raw.get("num_edges") or 0), config=cfg,
                     version=fs.modified_time(spark, meta_file))
