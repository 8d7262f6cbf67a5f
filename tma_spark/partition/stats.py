"""Partition diagnostics: retention, data uniformity, balance and per-part statistics, plus a plot.

Everything is computed with Spark aggregations whose results are K x C small;
only those small results reach the driver.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import fs
from .metrics import idle_parts, label_tv, node_balance

__all__ = ["partition_stats", "stats_figure", "write_stats_png"]

log = logging.getLogger(__name__)


def partition_stats(spark: SparkSession, cfg, lake, nodes_path: str, edges_path: str, all_edges: DataFrame,
                    totals: dict, full: bool) -> dict:
    """Statistics of written parts (``nodes_path``/``edges_path``) against the lake's whole graph.

    ``totals`` (edges, self_loops) were observed during the write. Per-part
    counts come from scans of the written tables with map-side aggregation (K x C
    rows shuffled). With ``full``, also the statistics that shuffle every edge:
    duplicate edges, isolated nodes and per-part degree quantiles.
    """
    nodes = spark.read.format(cfg.format).load(nodes_path)
    kept = spark.read.format(cfg.format).load(edges_path)
    k = cfg.parts
    non_loop = totals["edges"] - totals["self_loops"]

    per = {p: {"part": p, "nodes": 0, "edges": 0, "train_edges": 0, "train": 0, "val": 0, "test": 0,
               "label_hist": {}} for p in range(k)}
    for r in nodes.groupBy("part", "split").count().collect():
        per[r["part"]]["nodes"] += r["count"]
        if r["split"] in ("train", "val", "test"):
            per[r["part"]][r["split"]] = r["count"]
    hist = defaultdict(dict)
    for r in (nodes.where("split = 'train' AND label IS NOT NULL").groupBy("part", "label").count().collect()):
        hist[r["part"]][int(r["label"])] = r["count"]
    for p in range(k):
        per[p]["label_hist"] = {str(c): n for c, n in sorted(hist[p].items())}
    # training edges of link prediction: split train or null (all of them when the edges have no split)
    train_edge = (F.col("split").isNull() | (F.col("split") == "train")) if "split" in kept.columns else F.lit(True)
    for r in kept.groupBy("part").agg(F.count(F.lit(1)).alias("count"),
                                      F.sum(train_edge.cast("long")).alias("train")).collect():
        per[r["part"]]["edges"] = r["count"]
        per[r["part"]]["train_edges"] = r["train"]
    for d in per.values():
        d["degree"] = {"mean": round(2 * d["edges"] / d["nodes"], 3) if d["nodes"] else 0.0}
    graph = {"self_loops_dropped": totals["self_loops"], "duplicate_edges": None, "isolated_nodes": None}
    if full:
        non_loops = all_edges.where("src != dst")
        pairs = non_loops.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b"))
        graph["duplicate_edges"] = non_loop - pairs.distinct().count()
        ends = non_loops.select(F.explode(F.array("src", "dst")).alias("id")).distinct().count()
        graph["isolated_nodes"] = lake.meta.num_nodes - ends
        deg = (kept.select("part", F.explode(F.array("src", "dst")).alias("id")).groupBy("part", "id").count()
               .groupBy("part").agg(F.count(F.lit(1)).alias("connected"), F.max("count").alias("max"),
                                    F.percentile_approx("count", 0.5).alias("median")))
        found = {r["part"]: r for r in deg.collect()}
        for p, d in per.items():
            r = found.get(p)
            d["degree"].update({"median_connected": r["median"] if r else 0, "max": r["max"] if r else 0,
                                "isolated_in_part": d["nodes"] - (r["connected"] if r else 0)})
    parts = [per[p] for p in range(k)]
    kept_total = sum(d["edges"] for d in parts)
    return {
        "strategy": cfg.strategy,
        "parts": k,
        "seed": cfg.seed,
        "lake": lake.path,
        "nodes": lake.meta.num_nodes,
        "edges": totals["edges"],
        "edges_kept": kept_total,
        "edge_retention": round(kept_total / non_loop, 6) if non_loop else 0.0,
        "label_tv": round(label_tv([{int(c): n for c, n in d["label_hist"].items()} for d in parts],
                                   max(lake.meta.num_classes, 1)), 6),
        "node_balance": round(node_balance([d["nodes"] for d in parts]), 6),
        **graph,
        **idle_parts(parts),
        "full_stats": full,
        "per_part": parts,
    }


def stats_figure(stats: dict):
    """Two panels: nodes and kept edges per part; training-label distribution per part vs. global.

    A plain :class:`matplotlib.figure.Figure` (no pyplot, no backend switch), so it can be saved by a job or
    displayed by a notebook without changing the notebook's plotting backend.
    """
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    parts = stats["per_part"]
    k = len(parts)
    classes = sorted({int(c) for d in parts for c in d["label_hist"]})
    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(k)
    ax1.bar(x - 0.2, [d["nodes"] for d in parts], 0.4, label="nodes")
    ax1.bar(x + 0.2, [d["edges"] for d in parts], 0.4, label="intra-part edges")
    ax1.set_xticks(x)
    ax1.set_xlabel("part")
    ax1.set_title(f"{stats['strategy']}, K={k}: retention {stats['edge_retention']:.3f}, "
                  f"balance {stats['node_balance']:.3f}")
    ax1.legend()
    if classes:
        m = np.array([[d["label_hist"].get(str(c), 0) for c in classes] for d in parts], dtype=float)
        totals = m.sum(0)
        rows = np.vstack([totals / max(totals.sum(), 1), m / np.maximum(m.sum(1, keepdims=True), 1)])
        bottom = np.zeros(len(rows))
        cmap = colormaps["tab20"]
        for j, c in enumerate(classes):
            ax2.bar(np.arange(len(rows)), rows[:, j], bottom=bottom, color=cmap(j % 20), label=str(c))
            bottom += rows[:, j]
        ax2.set_xticks(np.arange(len(rows)), ["all"] + [str(p) for p in range(k)])
        ax2.set_xlabel("part")
        ax2.set_ylabel("share of training labels")
        ax2.set_title(f"training-label distribution (mean TV {stats['label_tv']:.3f})")
        if len(classes) <= 20:
            ax2.legend(title="class", fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def write_stats_png(spark: SparkSession, stats: dict, path: str) -> None:
    """Save :func:`stats_figure` as a PNG at ``path`` (any Hadoop filesystem)."""
    buf = io.BytesIO()
    stats_figure(stats).savefig(buf, format="png", dpi=110)
    fs.write_bytes(spark, path, buf.getvalue())
