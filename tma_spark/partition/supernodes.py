"""SuperTMA: group nodes into super-nodes, then assign super-nodes to parts at random.

Super-nodes come from label propagation on the undirected graph (GraphFrames
when its JVM classes are on the classpath, otherwise the same synchronous
algorithm written with DataFrame joins and aggregations, each iteration written
to a scratch folder on the output's store), or from pymetis
clusters on the driver (``method="metis"``, the authors' choice, for graphs
that fit there). Label propagation on real graphs makes a few giant
communities, so every community larger than ``cap = ceil(N / M)`` is cut into
random chunks of at most about ``cap`` nodes. Super-nodes are then assigned to
the K parts by :func:`balanced_assignment` (seeded, balanced by node count).
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
import uuid
from typing import Optional

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from .. import events, fs
from ..errors import TmaSparkError
from ..graphops.propagate import undirected_edges
from .metrics import balanced_assignment
from .strategies import METIS_MAX_EDGES, metis_assignment

__all__ = ["default_super_nodes", "label_propagation", "graphframes_available", "super_assignment"]

log = logging.getLogger(__name__)

SUPER_METHODS = ("lpa", "metis")
LPA_IMPLEMENTATIONS = ("auto", "graphframes", "builtin")


def default_super_nodes(num_nodes: int, parts: int) -> int:
    """About 200 nodes per super-node (the authors: 15,000 clusters over 2.9M nodes), and at least 32 per part."""
    return int(min(num_nodes, max(round(num_nodes / 200), 32 * parts)))


def graphframes_available(spark: SparkSession) -> bool:
    """True when the GraphFrames JVM classes are on the driver's classpath."""
    try:
        spark.sparkContext._jvm.java.lang.Class.forName("org.graphframes.GraphFrame")
        return True
    except Exception:  # py4j raises Py4JJavaError(ClassNotFoundException)
        return False


#: Bytes of adjacency per partition of the built-in label propagation (about 128 MB of edges per task).
LPA_PARTITION_BYTES = 128 << 20
#: Bytes of one cached adjacency row: src and dst (longs) and dst's mover parity (a byte).
_ADJ_ROW_BYTES = 17


def lpa_partitions(spark: SparkSession, num_edges: int) -> int:
    """P, the partitions of label propagation's adjacency and labels: about :data:`LPA_PARTITION_BYTES` of
    adjacency (both directions of every edge) per partition, rounded up to a multiple of the default
    parallelism so that every iteration's tasks run in full waves."""
    cores = max(1, spark.sparkContext.defaultParallelism)
    needed = math.ceil(2 * num_edges * _ADJ_ROW_BYTES / LPA_PARTITION_BYTES)
    return cores * max(1, math.ceil(needed / cores))


def _mover_parity(column: str):
    """Which half of the nodes updates in an iteration: a hash of the id, compared with the iteration's parity."""
    return F.pmod(F.xxhash64(column, F.lit("lpa")), F.lit(2))


def _lpa_adjacency(edges: DataFrame, partitions: int) -> DataFrame:
    """``(src, dst, dst_parity)``: the undirected graph partitioned by ``src`` into ``partitions`` and persisted
    (memory, spilling to disk), so that every iteration joins it with the labels without moving it."""
    adj = (undirected_edges(edges).repartition(partitions, "src")
           .withColumn("dst_parity", _mover_parity("dst").cast("byte")))
    return adj.persist(StorageLevel.MEMORY_AND_DISK)


def _read_labels(spark: SparkSession, path: str, partitions: int) -> DataFrame:
    """``(id, community)`` of an iteration written at ``path``, partitioned by ``id`` as the adjacency is by src."""
    # (not null: the filter Spark would infer for the inner join, stated once so that both joins of
    # :func:`_lpa_step` share one exchange)
    return spark.read.parquet(path).select("id", "community").where(F.col("id").isNotNull()).repartition(
        partitions, "id")


def _lpa_step(labels: DataFrame, adj: DataFrame, it: int, partitions: int) -> DataFrame:
    """``(id, community, changed)`` after iteration ``it`` (0-based) of label propagation.

    The nodes whose :func:`_mover_parity` equals ``it % 2`` take the label most frequent among their
    neighbours (ties: the smallest label); the others, and nodes without neighbours, keep theirs. ``labels``
    and ``adj`` are partitioned alike (by id / src), so only the labels and the messages (one row per edge
    into a mover) are exchanged; the adjacency stays where it is cached.

    In the first iteration every label is its node's own (distinct) id and the adjacency holds no pair twice,
    so every label is counted once and the smallest wins: one ``min`` aggregation gives exactly that result
    at less than half the cost of the general counting.
    """
    messages = (adj.where(F.col("dst_parity") == F.lit(it % 2))
                .join(labels.withColumnRenamed("id", "src").hint("shuffle_hash"), "src")
                .select(F.col("dst").alias("id"), "community"))
    # Partitioned by id once: the aggregations and the join with the labels below need no further exchange.
    by_id = messages.repartition(partitions, "id")
    if it == 0:
        best = by_id.groupBy("id").agg(F.min("community").alias("new"))
    else:
        best = (by_id.groupBy("id", "community").count().groupBy("id")
                .agg(F.max_by("community", F.struct(F.col("count"), -F.col("community"))).alias("new")))
    return (labels.join(best.hint("shuffle_hash"), "id", "left")
            .select("id", F.coalesce("new", "community").alias("community"),
                    (F.col("new").isNotNull() & (F.col("new") != F.col("community"))).alias("changed")))


def _builtin_lpa(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iter: int, scratch: str,
                 tolerance: float = 0.0, num_edges: Optional[int] = None) -> DataFrame:
    """Label propagation: each node takes its neighbours' most frequent label.

    Semi-synchronous: in each iteration only half of the nodes (by a hash of the
    id, alternating) update, which avoids the label oscillation of fully
    synchronous updates on bipartite-like structure. Ties go to the smallest
    label, so the result is deterministic. Nodes without neighbours keep their
    own id as label. Returns ``(id, community)``, read from ``scratch``.

    Each iteration is computed once: written as Parquet ``(id, community, changed)`` to ``scratch/iter-N``
    (reliable storage, unlike ``localCheckpoint``: it survives the loss of an executor), with its counts
    observed during the write, and the next iteration starts from those files. Only the last two
    iterations' folders are kept; the caller deletes ``scratch``. Stops after ``max_iter`` iterations, when
    no node changed, or when at most ``tolerance`` of the nodes changed.
    """
    partitions = lpa_partitions(spark, edges.count() if num_edges is None else num_edges)
    started = time.perf_counter()
    adj = _lpa_adjacency(edges, partitions)
    directed = adj.count()  # materialises the cache
    log.info("label propagation: %d directed edges in %d partitions (%.1f s)", directed, partitions,
             time.perf_counter() - started)
    labels = (nodes.select("id", F.col("id").alias("community")).where(F.col("id").isNotNull())
              .repartition(partitions, "id"))  # (as :func:`_read_labels` reads them)
    written = []
    try:
        for it in range(max_iter):
            started = time.perf_counter()
            path = fs.join(scratch, f"iter-{it + 1}")
            counts = Observation(f"lpa_{it + 1}")
            (_lpa_step(labels, adj, it, partitions)
             .observe(counts, F.count(F.lit(1)).alias("nodes"),
                      F.sum(F.col("changed").cast("long")).alias("changed"))
             .write.mode("errorifexists").parquet(path))
            written.append(path)
            if len(written) > 2:
                fs.delete(spark, written.pop(0))
            labels = _read_labels(spark, path, partitions)
            num_nodes, changed = counts.get["nodes"], counts.get["changed"] or 0
            seconds = time.perf_counter() - started
            log.info("label propagation iteration %d/%d: %d of %d nodes changed community (%.1f s)", it + 1,
                     max_iter, changed, num_nodes, seconds)
            events.emit("partition.lpa_iteration", iteration=it + 1, changed=changed, nodes=num_nodes,
                        seconds=round(seconds, 3), partitions=partitions)
            if changed <= tolerance * num_nodes:
                break
    finally:
        adj.unpersist()
    return spark.read.parquet(written[-1]).select("id", "community")


@contextlib.contextmanager
def _own_scratch(spark: SparkSession):
    """A scratch folder for label propagation when the caller gives none, deleted on exit: under Spark's
    checkpoint directory when one is set, else (local masters only) a local temporary folder."""
    checkpoints = spark.sparkContext.getCheckpointDir()
    if checkpoints:
        path = fs.join(checkpoints, f"tma-lpa-{uuid.uuid4().hex[:12]}")
    elif spark.sparkContext.master.startswith("local"):
        path = tempfile.mkdtemp(prefix="tma_lpa_")
    else:
        raise TmaSparkError(
            "label propagation needs a scratch folder that every executor can read, and none was given. Fix: "
            "pass scratch= (a folder on the cluster's storage) or set spark.sparkContext.setCheckpointDir(...).")
    try:
        yield path
    finally:
        fs.delete(spark, path)


def label_propagation(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iter: int = 5,
                      implementation: str = "auto", scratch: Optional[str] = None, tolerance: float = 0.0,
                      num_edges: Optional[int] = None) -> DataFrame:
    """Communities ``(id, community)`` by label propagation on the undirected graph.

    The built-in implementation writes its iterations under ``scratch`` (a folder on the output's store, which
    the caller deletes once the result has been used; the result is read from it). Without ``scratch``, a
    folder of its own is used and deleted before returning, and the result is held by ``localCheckpoint``.
    ``tolerance``: stop once at most this fraction of the nodes changed in an iteration (0: on convergence
    or after ``max_iter``). GraphFrames, when chosen, runs ``max_iter`` iterations.
    """
    if implementation not in LPA_IMPLEMENTATIONS:
        raise TmaSparkError(f"--lpa {implementation!r} is not one of {', '.join(LPA_IMPLEMENTATIONS)}.")
    if max_iter < 1:
        raise TmaSparkError(f"--lpa-iter {max_iter}: label propagation needs at least 1 iteration.")
    have_gf = graphframes_available(spark)
    if implementation == "graphframes" and not have_gf:
        raise TmaSparkError(
            "--lpa graphframes: the GraphFrames JVM classes (io.graphframes:graphframes-spark4_2.13) are not on "
            "the classpath. Fix: add them (spark-submit --packages / cluster library) or use --lpa builtin."
        )
    if implementation == "graphframes" or (implementation == "auto" and have_gf):
        from graphframes import GraphFrame

        log.info("label propagation with GraphFrames (%d iterations)", max_iter)
        g = GraphFrame(nodes.select("id"), undirected_edges(edges))
        return g.labelPropagation(maxIter=max_iter).select("id", F.col("label").alias("community"))
    log.info("label propagation with the built-in DataFrame implementation (at most %d iterations)", max_iter)
    if scratch is not None:
        return _builtin_lpa(spark, nodes, edges, max_iter, scratch, tolerance, num_edges)
    with _own_scratch(spark) as own:
        return _builtin_lpa(spark, nodes, edges, max_iter, own, tolerance, num_edges).localCheckpoint()


def super_assignment(spark: SparkSession, nodes: DataFrame, edges: DataFrame, num_nodes: int, parts: int,
                     seed: int, super_nodes: int, method: str = "lpa", lpa_iter: int = 10,
                     lpa_implementation: str = "auto", metis_max_edges: int = METIS_MAX_EDGES,
                     scratch: Optional[str] = None, lpa_tolerance: float = 0.0, num_edges: Optional[int] = None):
    """``(id, part)`` of SuperTMA, plus facts about the super-nodes for the statistics.

    ``scratch``, ``lpa_tolerance`` and ``num_edges``: see :func:`label_propagation` (the result may be read
    from ``scratch``: delete it only once the assignment has been used).
    """
    if method not in SUPER_METHODS:
        raise TmaSparkError(f"--super-method {method!r} is not one of {', '.join(SUPER_METHODS)}.")
    if method == "metis":
        communities = metis_assignment(spark, edges, num_nodes, super_nodes, seed, metis_max_edges)
        communities = communities.withColumnRenamed("part", "community")
    else:
        communities = label_propagation(spark, nodes, edges, lpa_iter, lpa_implementation, scratch, lpa_tolerance,
                                        num_edges)
    cap = math.ceil(num_nodes / super_nodes)
    sizes = communities.groupBy("community").agg(F.count(F.lit(1)).alias("csize"))
    # Communities above the cap are cut into ceil(size / cap) random chunks.
    chunked = (communities.join(sizes, "community")
               .withColumn("chunks", F.ceil(F.col("csize") / F.lit(cap)).cast("long"))
               .withColumn("chunk", F.pmod(F.xxhash64("id", F.lit(seed), F.lit("chunk")), F.col("chunks")))
               .select("id", "community", "chunk")).cache()
    groups = chunked.groupBy("community", "chunk").count().collect()
    # Sorted: collect() returns rows in shuffle order, and the seeded placement must not depend on it.
    keys = {(r["community"], r["chunk"]): r["count"] for r in sorted(groups, key=lambda r: (r["community"], r["chunk"]))}
    index = {key: i for i, key in enumerate(keys)}
    placed = balanced_assignment({index[k]: n for k, n in keys.items()}, parts, seed)
    import pyarrow as pa

    table = pa.table({
        "community": pa.array([k[0] for k in keys], pa.int64()),
        "chunk": pa.array([k[1] for k in keys], pa.int64()),
        "part": pa.array([placed[index[k]] for k in keys], pa.int32()),
    })
    assignment = chunked.join(F.broadcast(spark.createDataFrame(table)), ["community", "chunk"]).select("id", "part")
    size_arr = np.fromiter(keys.values(), dtype=np.int64)
    facts = {"super_method": method, "super_nodes_target": super_nodes, "super_node_cap": cap,
             "super_nodes": len(keys), "communities": len({k[0] for k in keys}),
             "super_node_size": {"mean": round(float(size_arr.mean()), 2), "max": int(size_arr.max()),
                                 "median": float(np.median(size_arr))}}
    log.info("%d super-nodes (cap %d nodes) from %d communities", facts["super_nodes"], cap, facts["communities"])
    return assignment, chunked, facts
