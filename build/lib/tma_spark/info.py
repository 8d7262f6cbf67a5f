"""``tma-spark info``: a summary of a lake, computed with a few Spark aggregations."""

from __future__ import annotations

import logging
from typing import Optional

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from .lake import Lake, open_lake

__all__ = ["lake_summary", "format_summary"]

log = logging.getLogger(__name__)


def _table_version(lake: Lake, table: str) -> Optional[int]:
    if lake.meta.format != "delta":
        return None
    from delta.tables import DeltaTable

    hist = DeltaTable.forPath(lake.spark, f"{lake.path}/{table}").history(1).select("version").first()
    return int(hist["version"]) if hist else None


def lake_summary(spark: SparkSession, path: str) -> dict:
    """Counts, feature dimension, classes, splits, degree statistics, format and versions of a lake."""
    lake = open_lake(spark, path)
    nodes, edges = lake.nodes(), lake.edges()
    node_row = nodes.agg(
        F.count(F.lit(1)).alias("nodes"),
        F.max(F.size("features")).alias("feature_dim"),
        F.countDistinct("label").alias("classes_present"),
        F.count("label").alias("labelled"),
    ).first()
    splits = {r["split"] or "none": r["count"] for r in nodes.groupBy("split").count().collect()}
    edge_row = edges.agg(
        F.count(F.lit(1)).alias("edges"),
        F.sum((F.col("src") == F.col("dst")).cast("long")).alias("self_loops"),
    ).first()
    distinct_pairs = edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b")).distinct().count()
    # Undirected degree: each edge end counts once for its node.
    deg = edges.select(F.explode(F.array("src", "dst")).alias("id")).groupBy("id").count()
    d = deg.agg(
        F.count(F.lit(1)).alias("non_isolated"),
        F.min("count").alias("min"),
        F.sum("count").alias("sum"),
        F.percentile_approx("count", 0.5).alias("median"),
        F.percentile_approx("count", 0.99).alias("p99"),
        F.max("count").alias("max"),
    ).first()
    n = node_row["nodes"]
    isolated = n - d["non_isolated"]
    summary = {
        "lake": lake.path,
        "format": lake.meta.format,
        "table_versions": {t: _table_version(lake, t) for t in ("nodes", "edges")},
        "tma_spark_version": lake.meta.tma_spark_version,
        "created_at": lake.meta.created_at,
        "source": lake.meta.source,
        "directed": lake.meta.directed,
        "nodes": n,
        "edges": edge_row["edges"],
        "feature_dim": node_row["feature_dim"],
        "classes": lake.meta.num_classes,
        "classes_present": node_row["classes_present"],
        "labelled_nodes": node_row["labelled"],
        "splits": splits,
        "has_id_map": lake.meta.has_id_map,
        "has_edge_split": lake.meta.has_edge_split,
        "self_loops": edge_row["self_loops"],
        "duplicate_edges": edge_row["edges"] - distinct_pairs,
        "isolated_nodes": isolated,
        "degree": {
            "min": 0 if isolated else d["min"],
            "mean": round(2 * edge_row["edges"] / n, 3) if n else 0.0,
            "median": d["median"],
            "p99": d["p99"],
            "max": d["max"],
        },
    }
    return summary


def format_summary(s: dict) -> str:
    """Human-readable multi-line rendering of :func:`lake_summary`."""
    versions = ", ".join(f"{t} v{v}" for t, v in s["table_versions"].items() if v is not None)
    deg = s["degree"]
    lines = [
        f"lake            {s['lake']}",
        f"format          {s['format']}" + (f" ({versions})" if versions else ""),
        f"source          {s['source'].get('kind')} {s['source'].get('dataset') or s['source'].get('path') or ''}".rstrip(),
        f"nodes           {s['nodes']:,}",
        f"edges           {s['edges']:,} ({'directed' if s['directed'] else 'undirected'}; "
        f"{s['self_loops']:,} self-loops, {s['duplicate_edges']:,} duplicates)",
        f"features        {s['feature_dim']}",
        f"classes         {s['classes']} ({s['classes_present']} present, {s['labelled_nodes']:,} labelled nodes)",
        "splits          " + ", ".join(f"{k} {v:,}" for k, v in sorted(s["splits"].items())),
        f"degree          min {deg['min']}, mean {deg['mean']}, median {deg['median']}, p99 {deg['p99']}, "
        f"max {deg['max']}; {s['isolated_nodes']:,} isolated nodes",
        f"id map          {'yes (input ids were not dense)' if s['has_id_map'] else 'no (ids are dense)'}",
        f"written by      tma_spark {s['tma_spark_version']} at {s['created_at']}",
    ]
    return "\n".join(lines)
