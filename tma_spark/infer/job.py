"""``tma-spark infer``: exact full-graph inference of a trained model as Spark jobs, and exact test metrics.

For each layer, Spark aggregates neighbour vectors with
:func:`tma_spark.graphops.propagate.propagate` (joins plus Arrow vectorized UDFs)
and applies the layer's dense weights with torch inside ``mapInArrow``
(:mod:`tma_spark.infer.layers`). Each layer's node vectors are written to a
staging Parquet folder and read back by the next layer, so an executor's memory
is bounded by Arrow batches and shuffle blocks however large the graph, and the
graph never reaches the driver.

Output ``PRED`` (Delta by default), one row per node:
``id``, ``node_id`` (the original id, through the lake's ``id_map``; equal to
``id`` when the input ids were dense), and ``prediction``, ``probabilities``,
``logits`` (node task) or ``embedding`` (link task). ``RUN/eval.json`` gets the
exact validation and test metric computed from that table: accuracy over every
labelled validation/test node, or MRR over every held-out edge, each ranked
against the same ``eval_negatives`` random nodes.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import asdict
from typing import Tuple

import numpy as np
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .. import commits, fs
from ..claims import claiming
from ..errors import TmaSparkError
from ..lake import Lake, check_output_path, open_lake
from ..outputs import PREDICTIONS_MARKER
from ..train.contract import ModelSpec
from ..train.run_dir import read_config, read_model_spec
from . import layers
from .attention import attention_propagate
from .config import InferConfig
from ..graphops.propagate import degrees, propagate, undirected_edges, vector_matrix

__all__ = ["InferConfig", "infer", "load_run"]

log = logging.getLogger(__name__)


def load_run(run: str, checkpoint: str = "best") -> Tuple[dict, dict, ModelSpec]:
    """(run config, state dict, :class:`ModelSpec`) of a run folder, with clear errors for anything missing or
    foreign. The spec is the run's ``model.json`` (derived from config.json and the weights for older runs)."""
    cfg_path, ckpt = fs.join(run, "config.json"), fs.join(run, f"{checkpoint}.pt")
    if not fs.is_file(cfg_path):
        raise TmaSparkError(f"{run} is not a run folder ({cfg_path} is missing). Fix: pass the --out folder of "
                            "'tma-spark train'.")
    if not fs.is_file(ckpt):
        raise TmaSparkError(f"Checkpoint {ckpt} is missing. Fix: let the training run finish a round, or use "
                            "--checkpoint last.")
    run_cfg = read_config(run)  # a corrupted config.json is a clear error, not a traceback
    data = fs.read_bytes(ckpt)  # the run folder may be on a store: read whole, then deserialized in memory
    try:
        state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # a truncated, corrupted or non-torch file
        raise TmaSparkError(f"Checkpoint {ckpt} could not be read as a tma_spark state dict ({exc}). Fix: "
                            "re-run training, or restore the file.") from exc
    spec = read_model_spec(run, run_cfg, state, ckpt)
    try:
        spec.build().load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise TmaSparkError(f"Checkpoint {ckpt} does not match the model of run {run} ({spec.kind}, "
                            f"{spec.layers} layers, hidden {spec.hidden}): {str(exc).splitlines()[0]}. "
                            "Fix: use the checkpoint of this run folder.") from exc
    return run_cfg, state, spec


def _materialize(spark: SparkSession, df: DataFrame, path: str) -> DataFrame:
    """Write ``df`` as Parquet and read it back: cuts lineage, bounds memory, and is read once per use."""
    df.write.mode("overwrite").parquet(path)
    return spark.read.parquet(path)


def _layer_outputs(spark: SparkSession, lake: Lake, spec: ModelSpec, task: str, state: bytes,
                   scratch: str) -> DataFrame:
    """(id, vec) of the model's last layer for every node, layer by layer."""
    edges = lake.edges()
    if task == "link" and "split" in edges.columns:  # held-out edges stay out of the graph, as in training
        edges = edges.where(F.col("split").isNull() | (F.col("split") == "train"))
    und = _materialize(spark, undirected_edges(edges), f"{scratch}/edges")
    deg = _materialize(spark, degrees(und, lake.nodes()), f"{scratch}/deg") if spec.kind == "gcn" else None
    h = lake.nodes().select("id", F.col("features").alias("vec"))
    for i in range(spec.layers):
        started = time.time()
        if spec.kind == "mlp":
            out = h.mapInArrow(layers.post_fn(spec, state, i), "id long, vec array<float>")
        else:
            pre = _materialize(spark, h.mapInArrow(layers.pre_fn(spec, state, i), layers.PRE_SCHEMA[spec.kind]),
                               f"{scratch}/pre{i}")
            if spec.kind == "gat":
                joined = attention_propagate(und, pre, layers.heads(spec, state, i)).withColumnRenamed("vec", "agg")
            else:
                how = "mean" if spec.kind == "sage" else "gcn"
                agg = propagate(und, pre.select("id", F.col("msg").alias("vec")), how, deg)
                joined = pre.select("id", "root").join(agg.select("id", F.col("vec").alias("agg")), "id")
            out = joined.mapInArrow(layers.post_fn(spec, state, i), "id long, vec array<float>")
        h = _materialize(spark, out, f"{scratch}/layer{i}")
        log.info("inference layer %d/%d done in %.1f s", i + 1, spec.layers, time.time() - started)
    return h


def _with_node_id(lake: Lake, df: DataFrame) -> DataFrame:
    id_map = lake.id_map()
    if id_map is None:
        return df.withColumn("node_id", F.col("id"))
    return df.join(id_map.withColumnRenamed("orig_id", "node_id"), "id", "left")


def _evaluate(spark: SparkSession, lake: Lake, pred: DataFrame, task: str, negatives: int, seed: int) -> dict:
    """Exact validation and test metrics from the prediction table."""
    if task == "node":
        labelled = lake.nodes().where(F.col("label").isNotNull() & F.col("split").isin("val", "test"))
        rows = (labelled.join(pred.select("id", "prediction"), "id")
                .groupBy("split").agg(F.avg((F.col("prediction") == F.col("label")).cast("double")).alias("m"),
                                      F.count(F.lit(1)).alias("n")).collect())
        out = {r["split"]: r["m"] for r in rows}
        return {"metric": "accuracy", "val": out.get("val"), "test": out.get("test"),
                "counts": {r["split"]: r["n"] for r in rows}}
    rng = np.random.default_rng(seed)
    pool_ids = rng.choice(lake.meta.num_nodes, min(negatives, lake.meta.num_nodes), replace=False)
    pool_rows = pred.where(F.col("id").isin([int(i) for i in pool_ids])).select("embedding").toArrow()
    pool = vector_matrix(pool_rows.column("embedding").combine_chunks())
    emb = pred.select("id", "embedding")
    held = lake.edges().where(F.col("split").isin("val", "test"))
    pairs = (held.join(emb.select(F.col("id").alias("src"), F.col("embedding").alias("zs")), "src")
             .join(emb.select(F.col("id").alias("dst"), F.col("embedding").alias("zd")), "dst"))
    out, counts = {}, {}
    for split in ("val", "test"):
        rr = pairs.where(F.col("split") == split).select("zs", "zd").mapInArrow(layers.link_ranks(pool), "rr double")
        row = rr.agg(F.avg("rr").alias("m"), F.count(F.lit(1)).alias("n")).first()
        out[split], counts[split] = row["m"], row["n"]
    return {"metric": "mrr", "val": out["val"], "test": out["test"], "counts": counts, "negatives": len(pool)}


@claiming("out", "tma-spark infer")  # one writer per prediction table
def infer(spark: SparkSession, cfg: InferConfig) -> dict:
    """Apply the run's checkpoint to every node of ``cfg.lake``; write ``cfg.out`` and ``RUN/eval.json``."""
    started = time.time()
    lake = open_lake(spark, cfg.lake)
    run_cfg, state, spec = load_run(cfg.run, cfg.checkpoint)
    task = run_cfg["task"]
    if spec.in_dim != lake.meta.feature_dim:
        raise TmaSparkError(f"The model of run {cfg.run} takes {spec.in_dim} features but lake {lake.path} has "
                            f"{lake.meta.feature_dim}. Fix: infer on the lake the model was trained on.")
    if task == "link" and not lake.meta.has_edge_split:
        raise TmaSparkError(f"Lake {lake.path} has no edge split; link-prediction metrics need held-out edges. "
                            "Fix: re-ingest the lake (ingest adds a seeded edge split).")
    out = check_output_path(spark, cfg.out, cfg.overwrite, what="Prediction table", kind="predictions")
    scratch = commits.staging_sibling(out, "infer")
    ckpt = layers.state_bytes(state)
    try:
        log.info("inference of %s (%s, %d layers) on %s: %d nodes, %d edges", cfg.run, spec.kind,
                 spec.layers, lake.path, lake.meta.num_nodes, lake.meta.num_edges)
        h = _layer_outputs(spark, lake, spec, task, ckpt, scratch)
        schema = ("id long, embedding array<float>" if task == "link"
                  else "id long, prediction int, probabilities array<float>, logits array<float>")
        pred = _with_node_id(lake, h.mapInArrow(layers.output_fn(task), schema))
        cols = ["id", "node_id"] + [c for c in pred.columns if c not in ("id", "node_id")]
        marker = json.dumps({"run": fs.qualify(cfg.run), "checkpoint": cfg.checkpoint, "lake": lake.path})
        if cfg.format == "delta":  # an overwrite is one Delta transaction: readers see the old or the new version
            pred.select(*cols).write.format("delta").mode("overwrite" if cfg.overwrite else "errorifexists").save(out)
            fs.write_text(spark, f"{out}/{PREDICTIONS_MARKER}", marker)  # what --overwrite may replace
        else:
            staged = f"{scratch}/out"
            pred.select(*cols).write.parquet(staged)
            fs.write_text(spark, f"{staged}/{PREDICTIONS_MARKER}", marker)
            commits.replace_dir(spark, staged, out)
    finally:
        fs.delete(spark, scratch)
    pred = spark.read.format(cfg.format).load(out)
    negatives = cfg.eval_negatives or run_cfg.get("eval_negatives", 100)
    result = _evaluate(spark, lake, pred, task, negatives, run_cfg.get("seed", 0))
    result.update(task=task, model=spec.kind, checkpoint=cfg.checkpoint, predictions=out,
                  lake=lake.path, nodes=lake.meta.num_nodes, seconds=round(time.time() - started, 2),
                  config=asdict(cfg))
    fs.write_json(fs.join(cfg.run, "eval.json"), result)
    log.info("inference done in %.1f s: %s %s val %.4f, test %.4f -> %s", result["seconds"], task,
             result["metric"], result["val"] or float("nan"), result["test"] or float("nan"), out)
    return result
