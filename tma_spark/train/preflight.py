"""Pre-flight checks of a training run: everything that can fail is checked before any training starts.

The lake serves the task, the partitions come from that lake (and suit the mode, and some part has training
targets), there is something to validate on, the run folder can be used as asked (and, with ``--resume``,
holds a checkpoint of the same training problem), the cluster can gang-schedule the trainers (and has no
setting that breaks that: dynamic allocation, speculation), injected faults name existing trainers, and the
evaluation fits the mode.
The result is a :class:`RunPlan`: what the driver needs to train.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from pyspark.sql import SparkSession

from .. import fs
from ..errors import ConfigError, TmaSparkError
from ..lake import Lake, open_lake
from ..partition.meta import PartsMeta, open_parts
from ..partition.metrics import part_targets
from .checkpoint import Checkpoint, load_checkpoint
from .cluster import check_slots
from .config import TrainConfig
from .contract import ModelSpec, Source
from .evaluation import Evaluator, build_evaluator
from .run_dir import check_resumable, check_run_dir, open_run_dir, read_config

__all__ = ["RunPlan", "preflight", "no_targets_error"]

log = logging.getLogger(__name__)


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


def no_targets_error(where: str, task: str) -> TmaSparkError:
    """The error of a run in which no trainer would have anything to train (``where``: the partitions or lake)."""
    if task == "link":
        what, fix = ("training edges (split 'train' or null) inside a part",
                     "partition into fewer parts (--parts), or re-ingest with a larger training share (--edge-split)")
    else:
        what, fix = ("labelled nodes with split 'train'",
                     "give labelled nodes a split: re-run 'tma-spark ingest' (labelled nodes without any split get a "
                     "seeded train/val/test split, --split), then 'tma-spark partition'")
    return TmaSparkError(f"{where}: no trainer has training targets for --task {task} (no {what}), so every trainer "
                         f"would train 0 steps. Fix: {fix}.")


def _check_part_targets(spark: SparkSession, cfg: TrainConfig, meta: PartsMeta) -> None:
    """Fail before training when no part has training targets, as the partition's ``stats.json`` counts them
    (parts without targets are only left out of the average; statistics that cannot tell are skipped: the
    trainers' own counts are checked again after the warm-up stage)."""
    try:
        stats = json.loads(fs.read_text(spark, f"{meta.path}/stats.json"))
        counts = [part_targets(d, cfg.task) for d in stats["per_part"]]
    except Exception as exc:  # best effort (absent, older or unreadable statistics): the backstop remains
        log.debug("partition statistics of %s unreadable (%s): targets checked after the warm-up", meta.path, exc)
        return
    if counts and None not in counts and not any(counts):
        raise no_targets_error(f"Partitions {meta.path} (of lake {meta.lake})", cfg.task)


def _check_validation(lake: Lake, task: str, evaluator: Evaluator) -> None:
    """Fail before training when there is nothing to validate on: every round's validation metric would be
    undefined (NaN) and no round could become best.pt."""
    val = evaluator.targets.get("val")
    n = 0 if val is None else int(val.numel()) if isinstance(val, torch.Tensor) else len(val[0])
    if n:
        return
    if task == "link":
        what, fix = "edges with split 'val'", "re-run 'tma-spark ingest' with a validation share in --edge-split"
    else:
        what, fix = ("labelled nodes with split 'val'",
                     "give some labelled nodes split 'val' (re-run 'tma-spark ingest': labelled nodes without any "
                     "split get a seeded train/val/test split, --split)")
    raise TmaSparkError(f"Lake {lake.path} has no validation targets for --task {task} (no {what}): the "
                        f"validation metric that picks best.pt would be undefined. Fix: {fix}.")


def _source(spark: SparkSession, cfg: TrainConfig, lake: Lake) -> Tuple[Source, int, str]:
    """Where trainers read their graphs, the number of trainers, and the partition strategy."""
    if cfg.mode in ("central", "ddp"):  # ddp: every trainer holds the whole graph
        return (Source("lake", lake.path, lake.meta.format, lake.meta.created_at, _storage()),
                1 if cfg.mode == "central" else cfg.workers, "none")
    meta = _parts_info(spark, cfg, lake)
    _check_part_targets(spark, cfg, meta)
    return Source("parts", meta.path, meta.format, meta.version, _storage()), meta.parts, meta.strategy


def _storage() -> tuple:
    """The object-store settings the trainers read with (those the driver's session was given)."""
    return tuple(sorted(fs.settings().items()))


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
    run_config = {**cfg.to_dict(), "out": fs.qualify(cfg.out), "lake": lake.path,
                  "partitions": source.path if source.kind == "parts" else None,
                  "parts": k, "partition_strategy": strategy, "lake_path": lake.path}
    checkpoint = None
    if cfg.resume:
        run_dir = open_run_dir(cfg.out, cfg.overwrite, cfg.resume)  # with resume: only finds the folder
        check_resumable(read_config(run_dir), run_config, run_dir)
        checkpoint = load_checkpoint(run_dir)
    check_slots(spark, k, tolerant=cfg.tolerate_failures, lockstep=cfg.mode == "ddp")
    _check_faults(spark, cfg, k)
    evaluator = build_evaluator(spark, lake, cfg)
    _check_validation(lake, cfg.task, evaluator)
    if cfg.mode == "llcg" and not evaluator.exact:
        raise TmaSparkError(f"--mode llcg corrects the model on the whole graph on the driver, but lake {lake.path} "
                            f"({lake.meta.num_edges:,} edges) is evaluated with --eval sampled. Fix: use --mode "
                            "psgd-pa or tma for graphs this large, or --eval full if the driver can hold the graph.")
    out_dim = lake.meta.num_classes if cfg.task == "node" else cfg.hidden  # link: embeddings
    model = ModelSpec(cfg.model, lake.meta.feature_dim, cfg.hidden, out_dim, cfg.layers, cfg.dropout)
    return RunPlan(lake, source, k, strategy, model, evaluator, run_config, checkpoint)
