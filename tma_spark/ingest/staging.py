"""Staging an in-memory graph (an npz file, a named dataset) as Parquet tables that Spark then reads.

Why: shipping the graph with ``spark.createDataFrame`` put every node's features in the driver's JVM at once
(34,493 nodes x 8,415 sparse features are 1.2 GB dense: an ``OutOfMemoryError`` at the default driver
memory). Here the driver writes the nodes in chunks of bounded size with pyarrow, straight to a staging
folder beside the lake (local disk or an object store, :func:`tma_spark.fs.arrow_filesystem`): sparse
features stay sparse until their chunk is densified and written, one chunk at a time. Spark then reads the
staged Parquet tables like any input table, so validation and the lake writes are Spark jobs whose tasks
stream the files; the driver's JVM never holds the graph. The edge arrays stay numpy on the driver
(2 x 8 bytes per edge) and are written in chunks too.

Each chunk is its own Parquet file, so Spark reads the files in parallel, made of small row groups (about
:data:`ROW_GROUP_BYTES` of dense features): Spark's Parquet reader decodes a row group in batches of up to
4,096 rows, which for thousands of features per node are hundreds of MB per task and several times slower
than small ones. Features are written without dictionary encoding (their values are rarely repeated
enough to pay for it, and writing and reading plain values is faster), Snappy-compressed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from .. import fs
from ..lake import SPLITS
from .datasets import GraphArrays

__all__ = ["CHUNK_BYTES", "ROW_GROUP_BYTES", "EDGE_CHUNK_ROWS", "StagedGraph", "node_chunk_rows", "node_batch",
           "stage_graph", "read_staged", "dense_size"]

log = logging.getLogger(__name__)

#: Dense float32 feature bytes of one node chunk (one staged file): the most the driver densifies at once.
CHUNK_BYTES = 64 * 2**20
#: Dense float32 feature bytes of one Parquet row group of a node file: bounds the batches Spark decodes.
ROW_GROUP_BYTES = 4 * 2**20
#: Edges per staged edge file (src and dst int64: 64 MB).
EDGE_CHUNK_ROWS = 4 * 2**20

_NODE_SCHEMA = pa.schema([("id", pa.int64()), ("features", pa.list_(pa.float32())), ("label", pa.int32()),
                          ("split", pa.string())])
_EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64())])
_SPLIT_NAMES = np.array(list(SPLITS) + [None], dtype=object)  # code -1 (no split) indexes the None


@dataclass
class StagedGraph:
    """Where :func:`stage_graph` wrote a graph's tables, and how many files each has."""

    nodes: str
    edges: str
    node_files: int
    edge_files: int


def node_chunk_rows(feature_dim: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Nodes per chunk such that the chunk's dense float32 features take at most ``chunk_bytes`` (at least 1).

    Example::

        >>> node_chunk_rows(8000)  # 64 MiB / (8000 x 4 bytes)
        2097
    """
    return max(1, int(chunk_bytes) // (4 * max(1, int(feature_dim))))


def dense_size(num_nodes: int, feature_dim: int) -> str:
    """``"34,493 nodes x 8,415 features (1.16 GB as dense float32)"``: the size an out-of-memory message names."""
    gigabytes = num_nodes * feature_dim * 4 / 1e9
    return f"{num_nodes:,} nodes x {feature_dim:,} features ({gigabytes:.2f} GB as dense float32)"


def node_batch(graph: GraphArrays, start: int, stop: int) -> pa.RecordBatch:
    """Nodes ``start..stop-1`` as an Arrow batch of the lake's node columns (features densified here)."""
    feats = graph.feature_rows(start, stop)
    if feats.size >= 2**31:
        raise ValueError(f"a chunk of {feats.size} feature values is too large for one Arrow list array")
    offsets = (np.arange(stop - start + 1, dtype=np.int64) * feats.shape[1]).astype(np.int32)
    features = pa.ListArray.from_arrays(pa.array(offsets), pa.array(feats.ravel(), pa.float32()))  # no copy
    labels = graph.labels[start:stop] if graph.labels is not None else None
    label = (pa.array(labels, pa.int32(), mask=labels < 0) if labels is not None
             else pa.nulls(stop - start, pa.int32()))
    split = pa.array(_SPLIT_NAMES[graph.split[start:stop]], pa.string())
    ids = pa.array(np.arange(start, stop, dtype=np.int64))
    return pa.RecordBatch.from_arrays([ids, features, label, split], schema=_NODE_SCHEMA)


def _node_batches(graph: GraphArrays, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, graph.num_nodes, rows):
        yield node_batch(graph, start, min(start + rows, graph.num_nodes))


def _edge_batches(src: np.ndarray, dst: np.ndarray, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(src), rows):
        stop = min(start + rows, len(src))
        yield pa.RecordBatch.from_arrays([pa.array(src[start:stop].astype(np.int64, copy=False)),
                                          pa.array(dst[start:stop].astype(np.int64, copy=False))],
                                         schema=_EDGE_SCHEMA)


def _write_files(folder: str, batches: Iterator[pa.RecordBatch], schema: pa.Schema, **options) -> int:
    """Write each batch as its own Parquet file ``folder/part-NNNNN.parquet`` with ``pq.write_table``'s
    ``options`` (an empty table gets one empty file, so that Spark finds the schema); return the number of
    files."""
    fs.makedirs(folder)
    filesystem, inner = fs.arrow_filesystem(folder)
    count = 0
    for batch in batches:
        pq.write_table(pa.Table.from_batches([batch], schema=schema), f"{inner}/part-{count:05d}.parquet",
                       filesystem=filesystem, **options)
        count += 1
    if count == 0:
        pq.write_table(schema.empty_table(), f"{inner}/part-00000.parquet", filesystem=filesystem, **options)
        count = 1
    return count


def stage_graph(graph: GraphArrays, staging: str, chunk_bytes: int = CHUNK_BYTES,
                edge_rows: int = EDGE_CHUNK_ROWS) -> StagedGraph:
    """Write ``graph``'s nodes and edges as Parquet tables under ``staging`` (``nodes/``, ``edges/``), in chunks
    of at most ``chunk_bytes`` of dense features and ``edge_rows`` edges; the caller deletes ``staging``."""
    rows = node_chunk_rows(graph.feature_dim, chunk_bytes)
    log.info("staging %s as Parquet in chunks of %d nodes (%s)", dense_size(graph.num_nodes, graph.feature_dim),
             rows, staging)
    nodes, edges = fs.join(staging, "nodes"), fs.join(staging, "edges")
    node_files = _write_files(nodes, _node_batches(graph, rows), _NODE_SCHEMA, use_dictionary=["label", "split"],
                              row_group_size=node_chunk_rows(graph.feature_dim, min(chunk_bytes, ROW_GROUP_BYTES)))
    edge_files = _write_files(edges, _edge_batches(graph.src, graph.dst, edge_rows), _EDGE_SCHEMA)
    return StagedGraph(nodes=nodes, edges=edges, node_files=node_files, edge_files=edge_files)


def read_staged(spark: SparkSession, staged: StagedGraph) -> Tuple[DataFrame, DataFrame]:
    """The staged tables as DataFrames with the lake's columns: ``(id, features, label, split)``, ``(src, dst)``."""
    nodes = spark.read.parquet(fs.qualify(staged.nodes)).select("id", "features", "label", "split")
    edges = spark.read.parquet(fs.qualify(staged.edges)).select("src", "dst")
    return nodes, edges
