"""Pre-flight checks of a training run: everything that can fail is checked before any training starts.

The lake serves the task, the partitions come from that lake (and suit the mode), the run folder can be
used as asked (and, with ``--resume``, holds a checkpoint of the same training problem), the cluster can
gang-schedule the trainers, injected faults name existing trainers, and the evaluation fits the mode.
The result is a :class:`RunPlan`: what the driver needs to train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

from pyspark.sql import SparkSession

from ..errors import ConfigError, TmaSparkError
from ..lake import Lake, open_lake
from ..partition.meta import PartsMeta, open_parts
from .config import TrainConfig
from .contract import ModelSpec, Source
from .evaluation import Evaluator, build_evaluator
from .rounds import check_slots
from .run_dir import Checkpoint, check_resumable, check_run_dir, load_checkpoint, open_run_dir, read_config

__all__ = ["RunPlan", "preflight"]


@dataclass
class RunPlan:
    """What the pre-flight checks established: the data, the trainers, the model and the evaluation."""

    lake: Lake
    source: Source
    k: int
    strategy: str
    model: ModelSpec
    evaluator: Evaluator
    run_config: dict
    checkpoint: Optional[Checkpoint]  # --resume: the checkpoint to continue from (None: no round finished)


def _parts_info(spark: SparkSession, cfg: TrainConfig, lake: Lake) -> PartsMeta:
    meta = open_parts(spark, cfg.partitions)  # qualified path: executors do not share the driver's cwd
    if meta.lake != lake.path or meta.lake_created_at != lake.meta.created_at:
        raise TmaSparkError(
            f"Partitions {meta.path} were made from lake {meta.lake} (written {meta.lake_created_at}), not from "
            f"{lake.path} (written {lake.meta.created_at}). Fix: re-run 'tma-spark partition --lake {lake.path}'."
        )
    if cfg.mode in ("psgd-pa", "llcg") and meta.strategy != "metis":
        raise ConfigError(f"--mode {cfg.mode} trains on METIS parts, but {meta.path} holds {meta.strategy} parts. "
                          "Fix: partition with --strategy metis, or use --mode tma.")
    return meta


def _check_lake(cfg: TrainConfig, lake: Lake) -> None:
    """Fail before any Spark job when the lake cannot serve the task."""
    if cfg.task == "node" and lake.meta.num_classes < 2:
        raise TmaSparkError(f"Lake {lake.path} has {lake.meta.num_classes} classes; node classification needs "
                            "labels with at least 2 classes. Fix: ingest labels, or use --task link.")
    if cfg.task == "link" and not lake.meta.has_edge_split:
        raise TmaSparkError(f"Lake {lake.path} has no edge split, which link prediction needs to hold out "
                            "validation and test edges. Fix: re-run 'tma-spark ingest' (it adds a seeded edge "
                            "split, --edge-split) or give the edges a 'split' column.")


def _source(spark: SparkSession, cfg: TrainConfig, lake: Lake) -> Tuple[Source, int, str]:
    """Where trainers read their graphs, the number of trainers, and the partition strategy."""
    if cfg.mode in ("central", "ddp"):  # ddp: every trainer holds the whole graph
        return (Source("lake", lake.path, lake.meta.format, lake.meta.created_at),
                1 if cfg.mode == "central" else cfg.workers, "none")
    meta = _parts_info(spark, cfg, lake)
    return Source("parts", meta.path, meta.format, meta.version), meta.parts, meta.strategy


def _check_faults(spark: SparkSession, cfg: TrainConfig, k: int) -> None:
    for fault in cfg.faults:
        if fault.part >= k:
            raise ConfigError(f"--inject-failure {fault}: part {fault.part} does not exist; the run has {k} "
                              f"trainers (parts 0..{k - 1}).")
        master = spark.sparkContext.master
        if fault.kind == "executor" and master.startswith("local") and not master.startswith("local-cluster"):
            raise ConfigError(f"--inject-failure {fault}: in --master {master} the executor is the driver's own "
                              "JVM. Fix: use --master local-cluster[2,1,1024] or a cluster, or kind 'trainer'.")


def preflight(spark: SparkSession, cfg: TrainConfig) -> RunPlan:
    """Every check that can fail before training starts; writes nothing (except reading a lake's sample for
    sampled evaluation)."""
    cfg.validate()
    lake = open_lake(spark, cfg.lake)
    _check_lake(cfg, lake)
    source, k, strategy = _source(spark, cfg, lake)
    check_run_dir(cfg.out, cfg.overwrite, cfg.resume)
    run_config = {**cfg.to_dict(), "out": os.path.abspath(cfg.out), "lake": lake.path,
                  "partitions": source.path if source.kind == "parts" else None,
                  "parts": k, "partition_strategy": strategy, "lake_path": lake.path}
    checkpoint = None
    if cfg.resume:
        run_dir = open_run_dir(cfg.out, cfg.overwrite, cfg.resume)  # with resume: only finds the folder
        check_resumable(read_config(run_dir), run_config, run_dir)
        checkpoint = load_checkpoint(run_dir)
    check_slots(spark, k)
    _check_faults(spark, cfg, k)
    evaluator = build_evaluator(spark, lake, cfg)
    if cfg.mode == "llcg" and not evaluator.exact:
        raise TmaSparkError(f"--mode llcg corrects the model on the whole graph on the driver, but lake {lake.path} "
                            f"({lake.meta.num_edges:,} edges) is evaluated with --eval sampled. Fix: use --mode "
                            "psgd-pa or tma for graphs this large, or --eval full if the driver can hold the graph.")
    out_dim = lake.meta.num_classes if cfg.task == "node" else cfg.hidden  # link: embeddings
    model = ModelSpec(cfg.model, lake.meta.feature_dim, cfg.hidden, out_dim, cfg.layers, cfg.dropout)
    return RunPlan(lake, source, k, strategy, model, evaluator, run_config, checkpoint)
