"""SuperTMA: group nodes into super-nodes, then assign super-nodes to parts at random.

Super-nodes come from label propagation on the undirected graph (GraphFrames
when its JVM classes are on the classpath, otherwise the same synchronous
algorithm written with DataFrame joins and aggregations), or from pymetis
clusters on the driver (``method="metis"``, the authors' choice, for graphs
that fit there). Label propagation on real graphs makes a few giant
communities, so every community larger than ``cap = ceil(N / M)`` is cut into
random chunks of at most about ``cap`` nodes. Super-nodes are then assigned to
the K parts by :func:`balanced_assignment` (seeded, balanced by node count).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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


def _builtin_lpa(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iter: int) -> DataFrame:
    """Label propagation: each node takes its neighbours' most frequent label.

    Semi-synchronous: in each iteration only half of the nodes (by a hash of the
    id, alternating) update, which avoids the label oscillation of fully
    synchronous updates on bipartite-like structure. Ties go to the smallest
    label, so the result is deterministic. Nodes without neighbours keep their
    own id as label. Returns ``(id, community)``.
    """
    adj = undirected_edges(edges).cache()
    labels = nodes.select("id", F.col("id").alias("community")).localCheckpoint()
    for it in range(max_iter):
        counts = (adj.join(labels.withColumnRenamed("id", "src"), "src")
                  .groupBy(F.col("dst").alias("id"), "community").count())
        movers = F.pmod(F.xxhash64("id", F.lit("lpa")), F.lit(2)) == F.lit(it % 2)
        best = counts.where(movers).groupBy("id").agg(F.max_by("community", F.struct(F.col("count"), -F.col("community")))
                                        .alias("new"))
        new = (labels.join(best, "id", "left")
               .select("id", F.coalesce("new", "community").alias("community"), (F.col("new").isNotNull() &
                       (F.col("new") != F.col("community"))).alias("changed")))
        changed = new.where("changed").count()
        labels = new.select("id", "community").localCheckpoint()
        log.info("label propagation iteration %d/%d: %d nodes changed community", it + 1, max_iter, changed)
        if changed == 0:
            break
    adj.unpersist()
    return labels


def label_propagation(spark: SparkSession, nodes: DataFrame, edges: DataFrame, max_iter: int = 5,
                      implementation: str = "auto") -> DataFrame:
    """Communities ``(id, community)`` by label propagation on the undirected graph."""
    if implementation not in LPA_IMPLEMENTATIONS:
        raise TmaSparkError(f"--lpa {implementation!r} is not one of {', '.join(LPA_IMPLEMENTATIONS)}.")
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
    log.info("label propagation with the built-in DataFrame implementation (%d iterations)", max_iter)
    return _builtin_lpa(spark, nodes, edges, max_iter)


def super_assignment(spark: SparkSession, nodes: DataFrame, edges: DataFrame, num_nodes: int, parts: int,
                     seed: int, super_nodes: int, method: str = "lpa", lpa_iter: int = 10,
                     lpa_implementation: str = "auto", metis_max_edges: int = METIS_MAX_EDGES):
    """``(id, part)`` of SuperTMA, plus facts about the super-nodes for the statistics."""
    if method not in SUPER_METHODS:
        raise TmaSparkError(f"--super-method {method!r} is not one of {', '.join(SUPER_METHODS)}.")
    if method == "metis":
        communities = metis_assignment(spark, edges, num_nodes, super_nodes, seed, metis_max_edges)
        communities = communities.withColumnRenamed("part", "community")
    else:
        communities = label_propagation(spark, nodes, edges, lpa_iter, lpa_implementation)
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
