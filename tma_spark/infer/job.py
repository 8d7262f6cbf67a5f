"""``tma-spark infer``: exact full-graph inference of a trained model as Spark jobs, and exact test metrics.

For each layer, Spark aggregates neighbour vectors with
:func:`tma_spark.graphops.propagate.propagate` (one message shuffle and one
node-level join, float32 throughout, partitions sized from the data with
``--shuffle-partition-mb``) and applies the layer's dense weights in numpy
inside ``mapInArrow`` (:mod:`tma_spark.infer.layers`; the executors never
import torch). Each layer's node vectors are written to a staging Parquet folder
and read back by the next layer, so an executor's memory is bounded by Arrow
batches (``--arrow-batch-mb``) and shuffle blocks however large the graph, and
the graph never reaches the driver.

Output ``PRED`` (Delta by default), one row per node:
``id``, ``node_id`` (the original id, through the lake's ``id_map``; equal to
``id`` when the input ids were dense), and ``prediction``, ``probabilities``,
``logits`` (node task) or ``embedding`` (link task). ``RUN/eval.json`` gets the
exact validation and test metric computed from that table: accuracy over every
labelled validation/test node, or MRR over every held-out edge, each ranked
against the same ``eval_negatives`` random nodes.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import time
from dataclasses import asdict
from typing import Dict, Iterator, Optional, Tuple

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
from ..graphops.sizing import arrow_batch_conf, row_bytes, shuffle_batches, shuffle_partitions

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


class _Shuffles:
    """Partition counts of one inference's shuffles, sized from the lake (2E directed messages, N nodes) and the
    widths of each layer's rows, about ``partition_mb`` MB per partition and never fewer than the cores."""

    def __init__(self, spark: SparkSession, lake: Lake, partition_mb: float, batch_gb: float):
        self.edges, self.nodes, self.mb = lake.meta.num_edges, lake.meta.num_nodes, partition_mb
        self.batch_gb = batch_gb
        self.cores = spark.sparkContext.defaultParallelism

    def _parts(self, rows: int, floats: int, fields: int, arrays: int) -> int:
        return shuffle_partitions(rows, row_bytes(floats, fields, arrays), self.mb, self.cores)

    def messages(self, floats: int, fields: int = 4, arrays: int = 1, self_loops: bool = False) -> int:
        """Partitions of a message shuffle of rows ``(src, dst, vector[, scale])`` (GAT: plus a self loop per node)."""
        return self._parts(2 * self.edges + (self.nodes if self_loops else 0), floats, fields, arrays)

    def batches(self, floats: int, fields: int) -> int:
        """Batches of the message shuffle of rows ``(dst, vector...)`` so that each writes at most
        ``--message-batch-gb`` (:func:`~tma_spark.graphops.sizing.shuffle_batches`)."""
        return shuffle_batches(2 * self.edges, row_bytes(floats, fields, 1), self.batch_gb)

    def nodes_join(self, floats: int) -> int:
        """Partitions of the join of per-node sums with the node rows (``floats`` in all, both sides together)."""
        return self._parts(self.nodes, floats, 6, 2)


def _propagated_layer(spark: SparkSession, und: DataFrame, pre: DataFrame, deg: Optional[DataFrame],
                      spec: ModelSpec, state: layers.Weights, i: int, shuffles: "_Shuffles", path: str) -> DataFrame:
    """Layer ``i`` of SAGE or GCN from its ``pre`` rows: messages, sums, ``post``; written under ``path``.

    A message shuffle larger than ``--message-batch-gb`` runs in batches of destination nodes (``id mod B``),
    each written before the next starts, and each batch's shuffle files are freed after it (the JVM's
    garbage collection lets Spark's cleaner delete them): at 10^8 edges and 64 features layer 1's messages
    are about 60 GB, more than this machine's free disk beside the lake and the layer's other files."""
    msg, root = layers.widths(spec, i)
    how, own = ("mean", ["root"]) if spec.kind == "sage" else ("gcn", [])  # GCN has no own term
    fields = 3 if how == "mean" else 4
    batches = shuffles.batches(msg, fields)
    parts = -(-shuffles.messages(msg, fields=fields) // batches)
    node_parts = -(-shuffles.nodes_join(msg + root + (msg if how == "gcn" else 0)) // batches)  # GCN keeps its msg
    log.info("layer %d: %d message partitions, %d node partitions%s", i + 1, parts, node_parts,
             f", in {batches} batches of destinations" if batches > 1 else "")
    values = pre.select("id", F.col("msg").alias("vec"), *own)
    for b in range(batches):
        agg = propagate(und, values, how, deg, num_partitions=parts, node_partitions=node_parts,
                        batch=(batches, b) if batches > 1 else None)
        out = agg.withColumnRenamed("vec", "agg").mapInArrow(layers.post_fn(spec, state, i),
                                                              "id long, vec array<float>")
        out.write.mode("overwrite" if b == 0 else "append").parquet(path)
        if batches > 1:
            del agg, out
            _free_shuffles(spark)
            log.info("layer %d: batch %d/%d written", i + 1, b + 1, batches)
    return spark.read.parquet(path)


def _free_shuffles(spark: SparkSession) -> None:
    """Let Spark delete the shuffle files of jobs whose DataFrames are gone: Python drops its references, then
    the JVM collects garbage, which Spark's ContextCleaner watches (otherwise it waits for
    ``spark.cleaner.periodicGC.interval``, 30 minutes)."""
    gc.collect()
    spark.sparkContext._jvm.System.gc()


def _layer_outputs(spark: SparkSession, lake: Lake, spec: ModelSpec, task: str, state: layers.Weights,
                   scratch: str, partition_mb: float, batch_gb: float) -> DataFrame:
    """(id, vec) of the model's last layer for every node, layer by layer.

    Per message-passing layer: ``pre`` (written), one message shuffle, and one node-level join inside
    :func:`propagate`, whose result already carries each node's own term ``root`` (a passthrough column), so
    ``post`` follows without another join. Shuffle partitions are sized from the data (:class:`_Shuffles`).
    """
    edges = lake.edges()
    if task == "link" and "split" in edges.columns:  # held-out edges stay out of the graph, as in training
        edges = edges.where(F.col("split").isNull() | (F.col("split") == "train"))
    und = _materialize(spark, undirected_edges(edges), f"{scratch}/edges")
    deg = _materialize(spark, degrees(und, lake.nodes()), f"{scratch}/deg") if spec.kind == "gcn" else None
    shuffles = _Shuffles(spark, lake, partition_mb, batch_gb)
    h = lake.nodes().select("id", F.col("features").alias("vec"))
    for i in range(spec.layers):
        started = time.time()
        if spec.kind == "mlp":
            out = h.mapInArrow(layers.post_fn(spec, state, i), "id long, vec array<float>")
        else:
            pre = _materialize(spark, h.mapInArrow(layers.pre_fn(spec, state, i), layers.PRE_SCHEMA[spec.kind]),
                               f"{scratch}/pre{i}")
            if spec.kind == "gat":
                heads = layers.heads(spec, state, i)
                parts = shuffles.messages(layers.widths(spec, i, heads)[0], fields=5, arrays=3, self_loops=True)
                joined = attention_propagate(und, pre, heads, num_partitions=parts).withColumnRenamed("vec", "agg")
            else:
                h = _propagated_layer(spark, und, pre, deg, spec, state, i, shuffles, f"{scratch}/layer{i}")
                log.info("inference layer %d/%d done in %.1f s", i + 1, spec.layers, time.time() - started)
                continue
            out = joined.mapInArrow(layers.post_fn(spec, state, i), "id long, vec array<float>")
        h = _materialize(spark, out, f"{scratch}/layer{i}")
        log.info("inference layer %d/%d done in %.1f s", i + 1, spec.layers, time.time() - started)
    return h


@contextlib.contextmanager
def _session_conf(spark: SparkSession, settings: Dict[str, str]) -> Iterator[None]:
    """Spark SQL ``settings`` for the block's jobs; the session's previous values (or none) afterwards."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


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
    """Apply the run's checkpoint to every node of ``cfg.lake``; write ``cfg.out`` and ``RUN/eval.json``.

    Arrow batches to Python workers are capped at ``cfg.arrow_batch_mb`` for the job's duration (the session's
    setting is restored afterwards), so a worker's memory is bounded by that setting, not by the graph."""
    with _session_conf(spark, arrow_batch_conf(cfg.arrow_batch_mb)):
        return _infer(spark, cfg)


def _infer(spark: SparkSession, cfg: InferConfig) -> dict:
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
    ckpt = layers.weights(spec, state)  # numpy arrays: the executors need no torch
    try:
        log.info("inference of %s (%s, %d layers) on %s: %d nodes, %d edges", cfg.run, spec.kind,
                 spec.layers, lake.path, lake.meta.num_nodes, lake.meta.num_edges)
        h = _layer_outputs(spark, lake, spec, task, ckpt, scratch, cfg.shuffle_partition_mb, cfg.message_batch_gb)
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
