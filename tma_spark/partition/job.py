"""``tma-spark partition``: assign nodes to K parts, keep intra-part edges, write parts and diagnostics.

Output (``PARTS``)::

    assignment/   id long, part int
    nodes/        lake node columns + part            (partitioned by part)
    edges/        src, dst [, split] + part           (intra-part edges only; partitioned by part)
    stats.json    strategy, parts, seed, edge_retention, label_tv, node_balance, per-part statistics,
                  the parts whose trainers would train nothing (empty_parts, parts_without_train_nodes/edges)
    stats.png     per-part sizes and label distributions
    _tma_parts.json  the effective configuration and the lake it came from

Self-loops are dropped (GNN layers add their own) and counted; duplicate
edges are counted and kept (trainers coalesce them when they build their CSR).
Like a lake, PARTS is written to a staging folder and renamed into place. The super and metis strategies
keep their intermediate results (label propagation's iterations, the assignment) in a hidden scratch sibling
``.PARTS.scratch-*`` on the same store, deleted when the job ends, whether it succeeds or fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from .. import commits, events, fs, jsonsafe
from ..claims import claiming
from ..errors import ConfigError
from ..lake import check_output_path, open_lake
from . import strategies, supernodes
from .config import STRATEGIES, PartitionConfig
from .meta import PARTS_META, parts_meta_json
from .stats import partition_stats, write_stats_png

__all__ = ["PartitionConfig", "partition", "STRATEGIES"]

log = logging.getLogger(__name__)

#: With full_stats="auto", graph-wide statistics that need a shuffle of all edges (duplicates, isolated
#: nodes, per-part degree quantiles) are computed up to this many edges.
FULL_STATS_AUTO_MAX_EDGES = 20_000_000


def _assign(spark: SparkSession, cfg: PartitionConfig, nodes: DataFrame, edges: DataFrame, num_nodes: int,
            num_edges: int, scratch: str):
    """(nodes with part, edges with src_part/dst_part, assignment, extra statistics). ``scratch``: a folder
    for label propagation's iterations and the computed assignment, which the caller deletes when the job
    ends."""
    if cfg.strategy == "random":
        part = lambda c: strategies.random_part(F.col(c), cfg.parts, cfg.seed)  # noqa: E731
        nodes_p = nodes.withColumn("part", part("id"))
        edges_p = edges.withColumn("src_part", part("src")).withColumn("dst_part", part("dst"))
        return nodes_p, edges_p, nodes_p.select("id", "part"), {}
    extra = {}
    if cfg.strategy == "metis":
        assignment = strategies.metis_assignment(spark, edges, num_nodes, cfg.parts, cfg.seed, cfg.metis_max_edges)
    else:
        m = cfg.super_nodes or supernodes.default_super_nodes(num_nodes, cfg.parts)
        assignment, _, extra = supernodes.super_assignment(
            spark, nodes, edges, num_nodes, cfg.parts, cfg.seed, m, cfg.super_method, cfg.lpa_iter, cfg.lpa,
            cfg.metis_max_edges, scratch, cfg.lpa_tolerance, num_edges)
    assignment = _stored(spark, assignment, fs.join(scratch, "assignment"))
    nodes_p = nodes.join(assignment, "id")
    a_src = assignment.select(F.col("id").alias("src"), F.col("part").alias("src_part"))
    a_dst = assignment.select(F.col("id").alias("dst"), F.col("part").alias("dst_part"))
    edges_p = edges.join(a_src, "src").join(a_dst, "dst")
    return nodes_p, edges_p, assignment, extra


def _stored(spark: SparkSession, df: DataFrame, path: str) -> DataFrame:
    """``df`` written as Parquet at ``path`` and read back: computed once, on reliable storage (unlike
    ``localCheckpoint``, it survives the loss of an executor), and with its real size known to Spark, which
    then broadcasts it to the node and edge joins when it is small (``spark.sql.autoBroadcastJoinThreshold``)
    instead of shuffling every edge twice (10^7 edges, 10^6 nodes: 3-4 s against 15-17 s)."""
    df.write.mode("errorifexists").parquet(path)
    return spark.read.parquet(path)


def _delete_scratch(spark: SparkSession, scratch: str) -> None:
    """Delete the job's scratch folder (success or failure); a failure to do so is logged, not raised, so that
    it never hides the job's own outcome."""
    try:
        fs.delete(spark, scratch)
    except Exception as exc:  # noqa: BLE001 - cleanup only
        log.warning("could not delete the scratch folder %s (%s): delete it by hand", scratch, exc)


def _warn_idle_parts(stats: dict, num_nodes: int, num_classes: int) -> None:
    """Name the parts whose trainers would train nothing (``stats.json``: empty_parts,
    parts_without_train_nodes, parts_without_train_edges); ``train`` leaves them out of the average."""
    k = stats["parts"]
    if stats["empty_parts"]:
        log.warning("part(s) %s of %d are empty (no nodes): their trainers will train nothing and are left out of "
                    "the average. Fix: fewer parts (--parts; %d for %d nodes)", stats["empty_parts"], k, k, num_nodes)
    if stats["parts_without_train_nodes"] and num_classes:
        log.warning("part(s) %s have no labelled training nodes: for node classification their trainers train "
                    "nothing and are left out of the average. Fix: fewer parts (--parts), or more training "
                    "labels", stats["parts_without_train_nodes"])
    if stats["parts_without_train_edges"]:
        log.warning("part(s) %s have no training edges: for link prediction their trainers train nothing and are "
                    "left out of the average. Fix: fewer parts (--parts)", stats["parts_without_train_edges"])


@claiming("out", "tma-spark partition")  # one writer per partitions folder
def partition(spark: SparkSession, cfg: PartitionConfig) -> dict:
    """Partition ``cfg.lake`` into ``cfg.parts`` parts at ``cfg.out``; return the statistics."""
    started = time.time()
    events.emit("partition.phase", phase="setup")
    lake = open_lake(spark, cfg.lake)
    if cfg.super_nodes is not None and not cfg.parts <= cfg.super_nodes <= lake.meta.num_nodes:
        raise ConfigError(
            f"--super-nodes {cfg.super_nodes} must be between K ({cfg.parts}) and the number of nodes "
            f"({lake.meta.num_nodes:,}). Fix: leave it unset for about 200 nodes per super-node."
        )
    if cfg.parts > lake.meta.num_nodes:
        raise ConfigError(
            f"--parts {cfg.parts} is larger than the number of nodes ({lake.meta.num_nodes:,}) in {lake.path}. "
            "Fix: choose K <= number of nodes (a few parts per executor GPU or core is typical)."
        )
    out = check_output_path(spark, cfg.out, cfg.overwrite, what="Partitions folder",
                            kind="partitions")
    nodes, edges = lake.nodes(), lake.edges()
    staging = commits.staging_sibling(out)
    scratch = commits.staging_sibling(out, "scratch")  # label propagation's iterations and the assignment
    try:
        events.emit("partition.phase", phase="assignment")
        nodes_p, edges_p, assignment, extra = _assign(spark, cfg, nodes, edges, lake.meta.num_nodes,
                                                      lake.meta.num_edges, scratch)
        # Graph-wide totals are observed while the edges stream through the write: no extra pass.
        totals = Observation("edge_totals")
        edges_p = edges_p.observe(totals, F.count(F.lit(1)).alias("edges"),
                                  F.sum((F.col("src") == F.col("dst")).cast("long")).alias("self_loops"))
        intra = edges_p.where((F.col("src_part") == F.col("dst_part")) & (F.col("src") != F.col("dst")))
        kept = intra.withColumn("part", F.col("src_part")).drop("src_part", "dst_part")
        for name, df in (("assignment", assignment), ("nodes", nodes_p), ("edges", kept)):
            log.info("writing %s/%s", out, name)
            writer = df.write.format(cfg.format).mode("errorifexists")
            if name != "assignment":  # (the assignment phase started before the strategy ran)
                events.emit("partition.phase", phase=name)
                writer = writer.partitionBy("part")
            writer.save(f"{staging}/{name}")
        log.info("computing partition statistics")
        events.emit("partition.phase", phase="stats")
        full = cfg.full_stats == "on" or (cfg.full_stats == "auto" and lake.meta.num_edges <= FULL_STATS_AUTO_MAX_EDGES)
        stats = partition_stats(spark, cfg, lake, f"{staging}/nodes", f"{staging}/edges", edges, totals.get, full)
        stats.update(extra)
        stats["seconds"] = round(time.time() - started, 2)
        events.emit("partition.phase", phase="commit")
        fs.write_text(spark, f"{staging}/stats.json", jsonsafe.dumps(stats, indent=2))
        fs.write_text(spark, f"{staging}/{PARTS_META}", parts_meta_json(
            asdict(cfg), lake.path, lake.meta.created_at, lake.meta.num_nodes, lake.meta.num_edges))
        write_stats_png(spark, stats, f"{staging}/stats.png")
        commits.replace_dir(spark, staging, out)
    except BaseException:
        fs.delete(spark, staging)
        raise
    finally:
        _delete_scratch(spark, scratch)
    _warn_idle_parts(stats, lake.meta.num_nodes, lake.meta.num_classes)
    log.info("partitioned %s into %d parts (%s) at %s: edge retention %.3f, label TV %.3f, balance %.3f, %.1f s",
             lake.path, cfg.parts, cfg.strategy, out, stats["edge_retention"], stats["label_tv"],
             stats["node_balance"], stats["seconds"])
    return stats
