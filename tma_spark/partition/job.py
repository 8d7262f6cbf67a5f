"""``tma-spark partition``: assign nodes to K parts, keep intra-part edges, write parts and diagnostics.

Output (``PARTS``)::

    assignment/   id long, part int
    nodes/        lake node columns + part            (partitioned by part)
    edges/        src, dst [, split] + part           (intra-part edges only; partitioned by part)
    stats.json    strategy, parts, seed, edge_retention, label_tv, node_balance, per-part statistics
    stats.png     per-part sizes and label distributions
    _tma_parts.json  the effective configuration and the lake it came from

Self-loops are dropped (GNN layers add their own) and counted; duplicate
edges are counted and kept (trainers coalesce them when they build their CSR).
Like a lake, PARTS is written to a staging folder and renamed into place.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Optional

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import fs
from ..errors import ConfigError, TmaSparkError
from ..lake import LAKE_FORMATS, check_output_path, open_lake
from . import strategies
from .stats import partition_stats, write_stats_png

__all__ = ["PartitionConfig", "partition", "STRATEGIES"]

log = logging.getLogger(__name__)

STRATEGIES = ("random", "metis")
PARTS_META = "_tma_parts.json"


@dataclass
class PartitionConfig:
    """What ``tma-spark partition`` does."""

    lake: str
    out: str
    strategy: str = "random"
    parts: int = 4
    seed: int = 0
    overwrite: bool = False
    format: str = "delta"
    metis_max_edges: int = strategies.METIS_MAX_EDGES

    def validate(self) -> "PartitionConfig":
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}.")
        if self.parts < 1:
            raise ConfigError(f"--parts {self.parts}: K must be at least 1.")
        if self.format not in LAKE_FORMATS:
            raise ConfigError(f"--format {self.format!r} is not one of {', '.join(LAKE_FORMATS)}.")
        if not self.out:
            raise ConfigError("--out is required: the folder to write the partitions to.")
        return self


def _assign(spark: SparkSession, cfg: PartitionConfig, nodes: DataFrame, edges: DataFrame, num_nodes: int):
    """(nodes with part, all non-loop edges with src_part/dst_part, assignment)."""
    if cfg.strategy == "random":
        part = lambda c: strategies.random_part(F.col(c), cfg.parts, cfg.seed)  # noqa: E731
        nodes_p = nodes.withColumn("part", part("id"))
        edges_p = edges.withColumn("src_part", part("src")).withColumn("dst_part", part("dst"))
        return nodes_p, edges_p, nodes_p.select("id", "part")
    assignment = strategies.metis_assignment(spark, edges, num_nodes, cfg.parts, cfg.seed, cfg.metis_max_edges)
    assignment = assignment.cache()
    nodes_p = nodes.join(assignment, "id")
    a_src = assignment.select(F.col("id").alias("src"), F.col("part").alias("src_part"))
    a_dst = assignment.select(F.col("id").alias("dst"), F.col("part").alias("dst_part"))
    edges_p = edges.join(a_src, "src").join(a_dst, "dst")
    return nodes_p, edges_p, assignment


def partition(spark: SparkSession, cfg: PartitionConfig) -> dict:
    """Partition ``cfg.lake`` into ``cfg.parts`` parts at ``cfg.out``; return the statistics."""
    cfg.validate()
    started = time.time()
    lake = open_lake(spark, cfg.lake)
    if cfg.parts > lake.meta.num_nodes:
        raise ConfigError(
            f"--parts {cfg.parts} is larger than the number of nodes ({lake.meta.num_nodes:,}) in {lake.path}. "
            "Fix: choose K <= number of nodes (a few parts per executor GPU or core is typical)."
        )
    out = check_output_path(spark, cfg.out, cfg.overwrite, what="Partitions folder")
    nodes, edges = lake.nodes(), lake.edges()
    nodes_p, edges_p, assignment = _assign(spark, cfg, nodes, edges, lake.meta.num_nodes)
    intra = edges_p.where((F.col("src_part") == F.col("dst_part")) & (F.col("src") != F.col("dst")))
    kept = intra.withColumn("part", F.col("src_part")).drop("src_part", "dst_part")

    staging = fs.staging_sibling(out)
    try:
        for name, df in (("assignment", assignment), ("nodes", nodes_p), ("edges", kept)):
            log.info("writing %s/%s", out, name)
            writer = df.write.format(cfg.format).mode("errorifexists")
            if name != "assignment":
                writer = writer.partitionBy("part")
            writer.save(f"{staging}/{name}")
        log.info("computing partition statistics")
        stats = partition_stats(spark, cfg, lake, f"{staging}/nodes", f"{staging}/edges", edges)
        stats["seconds"] = round(time.time() - started, 2)
        fs.write_text(spark, f"{staging}/stats.json", json.dumps(stats, indent=2))
        fs.write_text(spark, f"{staging}/{PARTS_META}", json.dumps(
            {"config": asdict(cfg), "lake": lake.path, "lake_created_at": lake.meta.created_at,
             "num_nodes": lake.meta.num_nodes, "num_edges": lake.meta.num_edges}, indent=2))
        write_stats_png(spark, stats, f"{staging}/stats.png")
        fs.replace_dir(spark, staging, out)
    except BaseException:
        fs.delete(spark, staging)
        raise
    finally:
        if cfg.strategy != "random":
            assignment.unpersist()
    log.info("partitioned %s into %d parts (%s) at %s: edge retention %.3f, label TV %.3f, balance %.3f, %.1f s",
             lake.path, cfg.parts, cfg.strategy, out, stats["edge_retention"], stats["label_tv"],
             stats["node_balance"], stats["seconds"])
    return stats
