"""FastRP structural node features (Chen et al., "Fast and Accurate Network Embeddings via Very Sparse Random
Projection", CIKM 2019), computed on Spark with :func:`~tma_spark.graphops.propagate.propagate`.

``R_0`` is a very sparse random projection: entry ``(i, c)`` is ``+sqrt(s)`` or ``-sqrt(s)`` with probability
``1/(2s)`` each, else 0 (``s = 3``), drawn from a hash of ``(id, c, seed)`` inside a ``mapInArrow``, so no matrix
is ever built on the driver and the result does not depend on partitioning. ``H_0 = R_0`` scaled per row by
``deg^normalize_degree``; ``H_k = mean-propagate(H_{k-1})`` (the row-normalized adjacency, ``D^-1 A``);
the embedding is ``sum_k weights[k] * H_k / ||H_k||`` (rows L2-normalized), then each column is standardized
over nodes (zero mean, unit variance) so it can feed a GNN directly.

State between steps (the symmetric edges, degrees, ``(H_k, running sum)``) is written as Parquet to a scratch
folder the caller owns and read back, rather than kept in ``localCheckpoint`` blocks that an executor loss
destroys; each step's state is deleted once the next is written. Each propagation is one message shuffle and
one node-level join (the running sum rides through :func:`~tma_spark.graphops.propagate.propagate` as a
passthrough column), both sized from the data (:mod:`tma_spark.graphops.sizing`).
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence, Tuple

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .. import fs
from ..arrays import splitmix64
from .propagate import degrees, propagate, undirected_edges, vector_column, vector_matrix
from .sizing import SHUFFLE_PARTITION_MB, row_bytes, shuffle_partitions

__all__ = ["fastrp_features", "random_projection"]

log = logging.getLogger(__name__)

SPARSITY = 3.0  # s in the paper: density 1/s
_STATE_SCHEMA = "id long, h array<float>, acc array<float>"


def random_projection(ids: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Rows ``ids`` of the very sparse random matrix ``R_0`` (float64, ``(len(ids), dim)``); a pure function."""
    cols = np.arange(dim, dtype=np.uint64)
    z = splitmix64(splitmix64(np.asarray(ids, np.int64), seed)[:, None] ^ cols[None, :], seed + 1)
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    p = 1.0 / (2.0 * SPARSITY)
    return np.sqrt(SPARSITY) * ((u < p).astype(np.float64) - ((u >= p) & (u < 2 * p)))


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _state_batch(ids: pa.Array, h: np.ndarray, acc: np.ndarray) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([ids, vector_column(h), vector_column(acc)], names=["id", "h", "acc"])


def _moments(x: np.ndarray) -> Tuple[int, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    return len(x), mean, ((x - mean) ** 2).sum(axis=0)


def _merge(a: Tuple[int, np.ndarray, np.ndarray], b: Tuple[int, np.ndarray, np.ndarray]):
    """Chan et al.'s pairwise merge of (count, mean, sum of squared deviations)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    if na == 0 or nb == 0:
        return b if na == 0 else a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + delta ** 2 * (na * nb / n)


def _standardize(df: DataFrame, column: str) -> DataFrame:
    """``df(id, column array<float>)`` with each vector component standardized over rows (population std;
    constant components become 0). Per-partition moments are merged on the driver (2 x dim numbers each)."""

    def moments(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        total = (0, np.zeros(0), np.zeros(0))
        for b in batches:
            if b.num_rows:
                total = _merge(total, _moments(vector_matrix(b.column(column))))
        if total[0]:
            yield pa.RecordBatch.from_arrays(
                [pa.array([total[0]], pa.int64()), vector_column(total[1][None, :], pa.float64()),
                 vector_column(total[2][None, :], pa.float64())], names=["n", "mean", "m2"])

    total = (0, np.zeros(0), np.zeros(0))
    for row in df.mapInArrow(moments, "n long, mean array<double>, m2 array<double>").collect():
        total = _merge(total, (row.n, np.asarray(row.mean), np.asarray(row.m2)))
    n, mean, m2 = total
    std = np.sqrt(m2 / max(n, 1))
    std = np.where(std > 0, std, 1.0)

    def scale(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows:
                x = (vector_matrix(b.column(column)) - mean) / std
                yield pa.RecordBatch.from_arrays([b.column("id"), vector_column(x)], names=["id", column])

    return df.mapInArrow(scale, f"id long, {column} array<float>")


def _stored(df: DataFrame, path: str) -> DataFrame:
    """``df`` written as Parquet at ``path`` and read back: cuts lineage and survives an executor loss."""
    df.write.mode("overwrite").parquet(path)
    return df.sparkSession.read.parquet(path)


def fastrp_features(nodes: DataFrame, edges: DataFrame, scratch: str, dim: int = 128, seed: int = 0,
                    weights: Sequence[float] = (0.0, 1.0, 1.0, 1.0), normalize_degree: float = -0.5,
                    shuffle_partition_mb: float = SHUFFLE_PARTITION_MB) -> DataFrame:
    """(id, features array<float>) for every node of ``nodes(id)``: FastRP embeddings, column-standardized.

    Args:
        nodes, edges: lake tables (``edges`` treated as undirected, self loops and duplicates dropped).
        scratch: a folder for the intermediate state (any store :mod:`tma_spark.fs` takes; it should not exist).
            The returned DataFrame reads the last state from it, so the caller deletes it (``fs.delete``) only
            after it has consumed the result, e.g. in a ``finally`` after the lake is written.
        dim: embedding dimension.
        seed: seed of the random projection; same seed, same features.
        weights: ``weights[k]`` multiplies the L2-normalized ``H_k``, k = 0..len(weights)-1 (the paper's
            default skips ``H_0``).
        normalize_degree: ``beta`` in the paper: ``R_0``'s row i is scaled by ``max(deg_i, 1)^beta``.
        shuffle_partition_mb: target size of a shuffle partition: each propagation's message shuffle and node
            join get partitions for about this many MB each (:func:`~tma_spark.graphops.sizing.shuffle_partitions`).

    Runs ``len(weights) - 1`` propagations plus a moments pass; the returned DataFrame is lazy on the last
    state in ``scratch``. Reproducible up to float rounding of the column statistics (their summation order
    follows shuffle order).
    """
    if dim < 1:
        raise ValueError(f"fastrp_features: dim={dim} must be at least 1")
    if len(weights) < 1:
        raise ValueError("fastrp_features: weights must have at least one entry (for H_0)")
    weights = [float(w) for w in weights]
    beta = float(normalize_degree)
    spark = nodes.sparkSession
    und = _stored(undirected_edges(edges), f"{scratch}/edges")
    deg = _stored(degrees(und, nodes), f"{scratch}/deg")
    cores = spark.sparkContext.defaultParallelism
    messages = shuffle_partitions(und.count(), row_bytes(dim, 3), shuffle_partition_mb, cores)  # src, dst, h
    node_rows = shuffle_partitions(deg.count(), row_bytes(2 * dim, 6, 2), shuffle_partition_mb, cores)  # acc, sum
    log.info("fastrp: %d message partitions, %d node partitions", messages, node_rows)

    def initial(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows:
                ids = b.column("id")
                d = np.maximum(b.column("deg").to_numpy(), 1).astype(np.float64)
                h = random_projection(ids.to_numpy(), dim, seed) * (d ** beta)[:, None]
                yield _state_batch(ids, h, weights[0] * _l2_rows(h))

    state = _stored(deg.mapInArrow(initial, _STATE_SCHEMA), f"{scratch}/state0")
    for k, w in enumerate(weights[1:], start=1):
        log.info("fastrp: propagation %d/%d", k, len(weights) - 1)
        h = propagate(und, state.select("id", F.col("h").alias("vec"), "acc"), "mean", num_partitions=messages,
                      node_partitions=node_rows)  # (id, vec = H_k, acc): the running sum rides along

        def accumulate(batches: Iterator[pa.RecordBatch], w: float = w) -> Iterator[pa.RecordBatch]:
            for b in batches:
                if b.num_rows:
                    hk = vector_matrix(b.column("vec"))
                    yield _state_batch(b.column("id"), hk, vector_matrix(b.column("acc")) + w * _l2_rows(hk))

        state = _stored(h.mapInArrow(accumulate, _STATE_SCHEMA), f"{scratch}/state{k}")
        fs.delete(spark, f"{scratch}/state{k - 1}")
    for done in ("edges", "deg"):
        fs.delete(spark, f"{scratch}/{done}")
    return _standardize(state.select("id", F.col("acc").alias("features")), "features")
