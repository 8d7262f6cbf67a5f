"""One step of message passing over the whole graph as a Spark job (joins + Arrow vectorized UDFs).

The graph never reaches the driver. For ``values(id, vec, *passthrough)``:

1. messages = ``und`` joined to ``values`` on ``src = id``: one row ``(src, dst, vec[, scale])`` per directed
   edge, ``vec`` float32 as given;
2. ``repartition(P, dst)`` + ``sortWithinPartitions(dst, src)``: each node's messages form one contiguous run
   (ordered by ``src``, so float sums are reproducible). ``P`` is the caller's, sized from the data
   (:func:`tma_spark.graphops.sizing.shuffle_partitions`: about 128 MB per partition);
3. ``mapInArrow``: each Arrow batch's ``list<float>`` column becomes an ``(n, d)`` numpy matrix, runs of equal
   ``dst`` are summed with ``np.add.reduceat`` (in float64 inside the batch), and the last run of a batch is
   carried into the next batch, so each ``dst`` is emitted once per partition. The sums leave the task as
   float32. Memory per task is bounded by the Arrow batch size (``spark.sql.execution.arrow.maxBytesPerBatch``
   / ``maxRecordsPerBatch``), never by a node's degree;
4. the sums are left-joined back to ``values`` ids (isolated nodes get zeros): the only node-level join. Every
   other column of ``values`` rides along (e.g. a layer's own-node term ``root``, FastRP's running sum), so
   the caller needs no second join to bring them back. A second ``mapInArrow`` finishes each node (mean
   division, GCN scaling and self term) and writes float32.

Everything that crosses a shuffle or is written is float32 (messages, sums, results); only the per-batch sums
and the finishing arithmetic run in float64.

Semantics match PyG on the graph :func:`tma_spark.train.graphdata.build_graph` builds (symmetric, no self loops,
no duplicates): ``sum`` is ``scatter_add`` of neighbour vectors, ``mean`` is ``SAGEConv(aggr='mean')``'s
aggregation, ``gcn`` is ``GCNConv``'s ``gcn_norm`` propagation with self loops.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

__all__ = ["HOW", "undirected_edges", "degrees", "propagate", "vector_matrix", "vector_column"]

log = logging.getLogger(__name__)

HOW = ("sum", "mean", "gcn")

_SUMS_SCHEMA = "id long, agg array<float>, cnt long"
#: Columns propagate adds to the node side; a passthrough column of ``values`` may not use these names.
_RESERVED = ("src", "dst", "scale", "agg", "cnt", "deg", "dim")


def vector_matrix(arr: pa.Array, dtype: type = np.float64) -> np.ndarray:
    """An Arrow ``list<number>`` array of equal-length, non-null vectors as an ``(n, d)`` matrix of ``dtype``
    (float64 by default; float32 avoids a double-size copy where float32 arithmetic is what is wanted).

    Vectorized (``flatten`` + ``reshape``); the dimension is inferred from the data.
    """
    n = len(arr)
    if arr.null_count:
        raise ValueError("vector column has null vectors; every row needs a vector")
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    if n == 0:
        return np.zeros((0, 0), dtype)
    lengths = pc.min_max(pc.list_value_length(arr))
    if lengths["min"].as_py() != lengths["max"].as_py():
        raise ValueError(f"vectors have different lengths ({lengths['min']}..{lengths['max']}); all rows must match")
    return np.array(flat, dtype=dtype).reshape(n, flat.size // n)


def vector_column(mat: np.ndarray, value_type: pa.DataType = pa.float32()) -> pa.ListArray:
    """An ``(n, d)`` matrix as an Arrow ``list<value_type>`` array (Spark ``array<...>``)."""
    n, d = mat.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int64) * d, pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(mat).ravel(), value_type))


def undirected_edges(edges: DataFrame) -> DataFrame:
    """(src, dst) with both directions of every distinct non-self-loop pair: the graph the models see.

    Edges may be stored once per pair (undirected lakes) or as directed arcs (e.g. ogbn-arxiv); either way the
    result is symmetric and duplicate-free, like ``build_graph``'s ``edge_index``. Extra columns (``split``) are
    ignored: filter to training edges first for link prediction.
    """
    e = edges.select(F.col("src").cast("long").alias("a"), F.col("dst").cast("long").alias("b")).where("a != b")
    pairs = e.select(F.least("a", "b").alias("src"), F.greatest("a", "b").alias("dst")).distinct()
    return pairs.unionByName(pairs.select(F.col("dst").alias("src"), F.col("src").alias("dst")))


def degrees(und: DataFrame, nodes: DataFrame) -> DataFrame:
    """(id, deg long) for every node in ``nodes`` (id column), 0 for isolated nodes.

    ``und`` is the output of :func:`undirected_edges`, so ``deg`` counts distinct neighbours.
    """
    counts = und.groupBy(F.col("src").alias("id")).agg(F.count(F.lit(1)).alias("deg"))
    return (nodes.select("id").join(counts, "id", "left")
            .select("id", F.coalesce(F.col("deg"), F.lit(0)).cast("long").alias("deg")))


def _sums_batch(ids: np.ndarray, sums: np.ndarray, cnts: np.ndarray) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.int64()), vector_column(sums, pa.float32()), pa.array(cnts, pa.int64())],
        names=["id", "agg", "cnt"])


def _run_sums(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Sum the vectors of each run of equal ``dst`` in a partition sorted by ``dst`` (one row per ``dst``).

    Input batches: ``dst``, ``vec`` and optionally ``scale`` (a per-message factor). The last run of a batch
    may continue in the next batch, so it is carried over and emitted once complete.
    """
    last_id: Optional[int] = None
    last_sum = np.zeros(0)
    last_cnt = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        dst = b.column("dst").to_numpy()
        x = vector_matrix(b.column("vec"))
        if "scale" in b.schema.names:
            x = x * b.column("scale").to_numpy()[:, None]
        if np.any(dst[1:] < dst[:-1]) or (last_id is not None and dst[0] < last_id):
            raise RuntimeError("propagate: messages reached the reducer unsorted by dst")
        starts = np.flatnonzero(np.concatenate(([True], dst[1:] != dst[:-1])))
        ids = dst[starts]
        sums = np.add.reduceat(x, starts, axis=0)
        cnts = np.diff(np.append(starts, len(dst)))
        if last_id is not None:
            if ids[0] == last_id:  # the carried run continues in this batch
                sums[0] += last_sum
                cnts[0] += last_cnt
            else:
                ids = np.concatenate(([last_id], ids))
                sums = np.vstack([last_sum[None, :], sums])
                cnts = np.concatenate(([last_cnt], cnts))
        if len(ids) > 1:
            yield _sums_batch(ids[:-1], sums[:-1], cnts[:-1])
        last_id, last_sum, last_cnt = int(ids[-1]), sums[-1].copy(), int(cnts[-1])
    if last_id is not None:
        yield _sums_batch(np.array([last_id]), last_sum[None, :], np.array([last_cnt]))


def _finisher(how: str, passthrough: Sequence[str]) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Per node: neighbour sum (null for isolated nodes) -> the propagated vector for ``how``, followed by the
    ``passthrough`` columns as they came."""

    def finish(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            n = b.num_rows
            if n == 0:
                continue
            if how == "gcn":
                v = vector_matrix(b.column("vec"))
                d = v.shape[1]
            else:
                dims = pc.min_max(b.column("dim"))
                if dims["min"].as_py() != dims["max"].as_py():
                    raise ValueError("vectors have different lengths; all rows must match")
                d = int(dims["min"].as_py())
            agg = b.column("agg")
            out = np.zeros((n, d))
            valid = agg.is_valid().to_numpy(zero_copy_only=False)
            if valid.any():
                out[valid] = vector_matrix(agg.filter(valid))
            if how == "mean":
                cnt = b.column("cnt").fill_null(0).to_numpy()
                out /= np.maximum(cnt, 1)[:, None]
            elif how == "gcn":
                s = 1.0 / np.sqrt(b.column("deg").to_numpy().astype(np.float64) + 1.0)[:, None]
                out = s * (out + s * v)  # sum_j v_j s_j s_i + v_i s_i^2
            yield pa.RecordBatch.from_arrays([b.column("id"), vector_column(out)] + [b.column(c) for c in passthrough],
                                             names=["id", "vec", *passthrough])

    return finish


def _passthrough(values: DataFrame) -> List[str]:
    """The columns of ``values`` besides ``id`` and ``vec``, refused when they clash with propagate's own."""
    extra = [c for c in values.columns if c not in ("id", "vec")]
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"propagate: values has column(s) {clash}, which propagate uses itself; rename them")
    return extra


def propagate(und: DataFrame, values: DataFrame, how: str, deg: Optional[DataFrame] = None,
              num_partitions: Optional[int] = None, node_partitions: Optional[int] = None,
              batch: Optional[Tuple[int, int]] = None) -> DataFrame:
    """(id, vec array<float>, *passthrough) for every id in ``values(id, vec array<float>, *passthrough)``:

    * ``sum``:  sum over neighbours j of v_j;
    * ``mean``: that sum / deg_i (zero vector for isolated nodes) -- PyG ``SAGEConv(aggr='mean')``;
    * ``gcn``:  sum over j in N(i) ∪ {i} of v_j / sqrt((deg_i+1)(deg_j+1)) -- PyG ``GCNConv`` normalization
      (``gcn_norm``, ``add_self_loops=True``, ``improved=False``).

    Args:
        und: the output of :func:`undirected_edges`.
        values: ``(id, vec)``; all vectors of one length. Neighbours without a row in ``values`` send nothing
            (``mean`` then divides by the number of neighbours that did, as PyG does for the edges it is given).
            Any other column (not one of ``src, dst, scale, agg, cnt, deg, dim``) is passed through to the
            result unchanged, so that what the caller needs beside the aggregate arrives in the same rows
            instead of through another join.
        how: one of :data:`HOW`.
        deg: the output of :func:`degrees` (only ``gcn`` uses it; computed from ``und`` if None).
        num_partitions: partitions of the message shuffle (default ``spark.sql.shuffle.partitions``); size it
            with :func:`tma_spark.graphops.sizing.shuffle_partitions` (2E rows).
        node_partitions: partitions of the node-level join of the sums with ``values`` (default: Spark's join
            planning, ``spark.sql.shuffle.partitions``); size it the same way (N rows). Spark raises a count
            below ``spark.sql.shuffle.partitions`` to that (its floor for a join of two shuffles), so this
            matters for large graphs, where the default is far too few.
        batch: ``(count, index)``: only the nodes with ``id mod count == index`` and the messages to them (every
            node still sends), so that a caller can run a large layer in ``count`` jobs, each writing about
            ``1 / count`` of the message shuffle, and free each job's shuffle files before the next.

    Lazy: nothing runs until an action. Sums are accumulated in float64 inside a batch and shuffled, joined and
    returned as float32.
    """
    if how not in HOW:
        raise ValueError(f"propagate: how={how!r} is not one of {HOW}")
    spark = values.sparkSession
    parts = int(num_partitions or spark.conf.get("spark.sql.shuffle.partitions"))
    extra = _passthrough(values)
    vals = values.select(F.col("id").cast("long").alias("id"), "vec", *extra)
    if how == "gcn":
        deg = deg if deg is not None else degrees(und, vals)
        base = vals.join(deg.select("id", "deg"), "id")
        senders = base.select(F.col("id").alias("src"), "vec",
                              (F.lit(1.0) / F.sqrt(F.col("deg").cast("double") + 1.0)).alias("scale"))
        cols = ["dst", "vec", "scale"]
    else:
        base = vals.select("id", F.size("vec").alias("dim"), *extra)
        senders = vals.select(F.col("id").alias("src"), "vec")
        cols = ["dst", "vec"]
    # Both sides of the message join hashed by src into the same sized partitions: the join's own exchange
    # would otherwise use spark.sql.shuffle.partitions (8 by default here), and at 10^8 edges a task of it
    # sorted 2.5e7 edge rows and ran the driver JVM of local mode out of heap.
    if batch is not None:  # after GCN's degrees, which need every edge
        count, index = batch
        und = und.where(F.pmod(F.col("dst"), F.lit(count)) == index)
        base = base.where(F.pmod(F.col("id"), F.lit(count)) == index)
    messages = (und.select("src", "dst").repartition(parts, "src")
                .join(senders.repartition(parts, "src"), "src"))
    sums = (messages.repartition(parts, "dst").sortWithinPartitions("dst", "src")
            .select(*cols).mapInArrow(_run_sums, _SUMS_SCHEMA))
    if node_partitions:
        base, sums = base.repartition(int(node_partitions), "id"), sums.repartition(int(node_partitions), "id")
    log.debug("propagate how=%s partitions=%d node partitions=%s passthrough=%s", how, parts, node_partitions, extra)
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("vec", T.ArrayType(T.FloatType()))]
                          + [vals.schema[c] for c in extra])
    return base.join(sums, "id", "left").mapInArrow(_finisher(how, extra), schema)
