"""The lake: a folder of graph tables that every tma_spark job reads.

Layout::

    LAKE/nodes            id long, features array<float>, label int (nullable), split string (nullable)
    LAKE/edges            src long, dst long [, split string]
    LAKE/id_map           orig_id (input type), id long     -- only when input ids were not dense 0..N-1
    LAKE/_tma_lake.json   metadata: format, counts, feature dimension, classes, provenance, format_version

Node ids in ``nodes`` and ``edges`` are always dense (0..N-1). Tables are Delta
by default (Parquet optional). A lake is written to a staging sibling and
renamed into place, so a lake folder is either complete or absent.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from . import __version__, commits, fs
from .errors import TmaSparkError
from .outputs import check_replaceable

__all__ = [
    "NODE_SCHEMA", "EDGE_SCHEMA", "SPLITS", "LAKE_FORMATS", "LAKE_FORMAT_VERSION", "LakeMeta", "Lake", "open_lake",
    "write_lake",
]

log = logging.getLogger(__name__)

META_FILE = "_tma_lake.json"
#: Version of the lake layout this code writes and the newest it reads; lakes written before the field existed
#: (no ``format_version`` in ``_tma_lake.json``) are version 1.
LAKE_FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
LAKE_FORMATS = ("delta", "parquet")

NODE_SCHEMA = T.StructType([
    T.StructField("id", T.LongType(), False),
    T.StructField("features", T.ArrayType(T.FloatType(), False), False),
    T.StructField("label", T.IntegerType(), True),
    T.StructField("split", T.StringType(), True),
])
EDGE_SCHEMA = T.StructType([
    T.StructField("src", T.LongType(), False),
    T.StructField("dst", T.LongType(), False),
])


@dataclass
class LakeMeta:
    """What a lake holds, written as ``_tma_lake.json`` beside its tables."""

    format: str
    num_nodes: int
    num_edges: int
    feature_dim: int
    num_classes: int
    has_id_map: bool
    has_edge_split: bool
    directed: bool
    source: dict = field(default_factory=dict)
    created_at: str = ""
    tma_spark_version: str = __version__
    format_version: int = LAKE_FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass
class Lake:
    """An opened lake: its path, metadata and table readers."""

    spark: SparkSession
    path: str
    meta: LakeMeta

    def _read(self, table: str) -> DataFrame:
        return self.spark.read.format(self.meta.format).load(f"{self.path}/{table}")

    def nodes(self) -> DataFrame:
        return self._read("nodes")

    def edges(self) -> DataFrame:
        return self._read("edges")

    def id_map(self) -> Optional[DataFrame]:
        return self._read("id_map") if self.meta.has_id_map else None


def open_lake(spark: SparkSession, path: str) -> Lake:
    """Open an existing lake, failing clearly when ``path`` is not one."""
    path = fs.qualify(path)
    if not fs.exists(spark, path):
        raise TmaSparkError(f"Lake {path} does not exist. Fix: create it with 'tma-spark ingest ... --lake {path}'.")
    meta_path = f"{path}/{META_FILE}"
    if not fs.exists(spark, meta_path):
        raise TmaSparkError(
            f"{path} is not a tma_spark lake: {META_FILE} is missing. "
            "Fix: point --lake at a folder written by 'tma-spark ingest'."
        )
    try:
        raw = json.loads(fs.read_text(spark, meta_path))
        _check_format_version(meta_path, raw)
        meta = LakeMeta(**raw)
    except (ValueError, TypeError) as exc:
        raise TmaSparkError(f"{meta_path} is not valid lake metadata ({exc}). Fix: re-run 'tma-spark ingest'.") from exc
    for table in ("nodes", "edges") + (("id_map",) if meta.has_id_map else ()):
        if not fs.exists(spark, f"{path}/{table}"):
            raise TmaSparkError(f"Lake {path} is incomplete: table '{table}' is missing. Fix: re-run 'tma-spark ingest'.")
    return Lake(spark, path, meta)


def _check_format_version(meta_path: str, raw) -> None:
    """Refuse a lake written in a newer layout than this code reads (a clear error, not a wrong read)."""
    version = raw.get("format_version", 1) if isinstance(raw, dict) else 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TmaSparkError(f"{meta_path}: format_version {version!r} is not a lake format version (a whole number "
                            "from 1). Fix: re-run 'tma-spark ingest'.")
    if version > LAKE_FORMAT_VERSION:
        raise TmaSparkError(f"{meta_path}: the lake has format version {version}, written by a newer tma_spark "
                            f"({raw.get('tma_spark_version', 'unknown')}); tma_spark {__version__} reads versions up "
                            f"to {LAKE_FORMAT_VERSION}. Fix: upgrade tma_spark, or re-ingest the lake with this "
                            "version.")


def check_output_path(spark: SparkSession, path: str, overwrite: bool, what: str = "Lake",
                      kind: str = "lake") -> str:
    """Refuse an existing output unless ``overwrite``, and with ``overwrite`` unless it is a ``kind`` output
    (:func:`tma_spark.outputs.check_replaceable`); return the qualified path."""
    path = fs.qualify(path)
    if fs.exists(spark, path):
        if not overwrite:
            raise TmaSparkError(f"{what} {path} already exists. Fix: choose another path or pass --overwrite.")
        check_replaceable(spark, path, kind)
    return path


def write_lake(
    spark: SparkSession,
    path: str,
    nodes: DataFrame,
    edges: DataFrame,
    id_map: Optional[DataFrame],
    meta: LakeMeta,
    overwrite: bool = False,
) -> Lake:
    """Write the tables and metadata to a staging folder, then rename it to ``path``.

    A failure at any point deletes the staging folder and leaves ``path`` as it
    was (absent, or the previous lake when overwriting).
    """
    path = check_output_path(spark, path, overwrite)
    if meta.format not in LAKE_FORMATS:
        raise TmaSparkError(f"Lake format {meta.format!r} is not one of {LAKE_FORMATS}.")
    meta.created_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    staging = commits.staging_sibling(path)
    try:
        tables = {"nodes": nodes, "edges": edges}
        if id_map is not None:
            tables["id_map"] = id_map
        for name, df in tables.items():
            log.info("writing %s/%s (%s)", path, name, meta.format)
            df.write.format(meta.format).mode("errorifexists").save(f"{staging}/{name}")
        fs.write_text(spark, f"{staging}/{META_FILE}", meta.to_json())
        commits.replace_dir(spark, staging, path)
    except BaseException:
        fs.delete(spark, staging)
        raise
    return Lake(spark, path, meta)
