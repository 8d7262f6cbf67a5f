"""``tma-spark run``: the whole pipeline from one config file, and MLflow tracking of train runs.

Every step's settings are parsed and validated before Spark starts, so a typo in the infer section fails
in a second, not after an hour of training. Then, in order:

1. ingest, when the file has an ``ingest`` section and the lake is absent (or ``overwrite``); without an
   ``ingest`` section the existing ``lake`` is used;
2. partition, unless ``partitions`` already holds parts of this lake version with the same settings;
3. train (``run`` folder), with per-round progress and, when enabled, MLflow tracking;
4. infer (``predictions`` table and ``RUN/eval.json``).

The effective settings of every step are saved as ``RUN/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict
from typing import Optional

from . import fs
from .errors import TmaSparkError
from .tracking import Tracker, tracking_settings

__all__ = ["run_pipeline", "train_tracked"]

log = logging.getLogger(__name__)


def _run_name(out: str) -> str:
    """The MLflow run name of run folder ``out``: its last path element (local paths and URIs alike)."""
    return fs.qualify(out).rstrip("/").rsplit("/", 1)[-1]


def _resumed_run_id(cfg) -> Optional[str]:
    """The MLflow run that a ``--resume`` of train settings ``cfg`` continues (from ``RUN/tracking.json``)."""
    if not getattr(cfg, "resume", False):
        return None
    from .train.run_dir import read_tracking

    return (read_tracking(cfg.out) or {}).get("run_id")


def train_tracked(spark, cfg, tracker: Tracker, params: Optional[dict] = None) -> dict:
    """Train with ``cfg``, logging parameters, per-round metrics, the summary, the best model and the
    partition statistics to ``tracker`` (a no-op when tracking is off).

    Tracking failures never stop training: they are logged and the tracker sends them again when the run ends
    (:class:`~tma_spark.tracking.Tracker`). A resumed run continues the MLflow run of ``RUN/tracking.json``.
    """
    from .train import train
    from .train.run_dir import write_tracking

    own_run = tracker.enabled and not tracker.started
    if own_run:
        tracker.start(_run_name(cfg.out), params or asdict(cfg), _resumed_run_id(cfg))
    ok = False
    try:
        summary = train(spark, cfg, on_round=tracker.log_round, tracking=tracker.info())
        tracker.log_metrics({f"final_{k}": v for k, v in summary.items()})
        run_dir = fs.qualify(cfg.out)
        parts = fs.qualify(cfg.partitions) if cfg.partitions else None
        tracker.log_artifacts([(fs.join(run_dir, name), "run") for name in
                               ("best.pt", "summary.json", "config.json", "metrics.jsonl")] +
                              ([(fs.join(parts, name), "partitions") for name in ("stats.json", "stats.png")]
                               if parts else []))
        ok = True
        tracker.flush()  # a first retry of what failed during the rounds; end() retries what is still unsent
        write_tracking(run_dir, tracker.info())  # the MLflow run may have been created only now, by the retry
        return summary
    finally:
        if own_run:
            tracker.end(ok)


def _reusable_parts(spark, cfg, lake) -> bool:
    """Whether ``cfg.out`` already holds parts of this lake version made with the same settings."""
    from .partition.meta import PARTS_META, open_parts

    if not fs.exists(spark, f"{cfg.out.rstrip('/')}/{PARTS_META}"):
        return False
    meta = open_parts(spark, cfg.out)
    wanted = {k: v for k, v in asdict(cfg).items() if k not in ("overwrite", "lake", "out")}
    same = (meta.lake_created_at == lake.meta.created_at
            and all(meta.config.get(k) == v for k, v in wanted.items()))
    if not same:
        raise TmaSparkError(f"Partitions {cfg.out} exist but were made from another version of the lake or with "
                            "other settings. Fix: pass --overwrite (or partition.overwrite: true) to re-partition, "
                            "or point 'partitions' elsewhere.")
    return True


def run_pipeline(args: argparse.Namespace) -> dict:
    """Run the pipeline described by ``args.config`` (with ``args.set`` overrides); return a summary."""
    from .commands import config_from_file, config_paths, spark_settings
    from .configfile import STEPS, apply_overrides, load_config
    from .session import get_spark, running_under_cluster_launcher

    doc = apply_overrides(load_config(args.config), args.set)
    steps = [s for s in STEPS if s != "ingest" or doc.get("ingest")]
    if args.overwrite:
        for step in steps:
            doc[step] = {**(doc.get(step) or {}), "overwrite": True}
    cfgs = {step: config_from_file(doc, step) for step in steps}  # all validated before Spark
    tracker = Tracker(tracking_settings(args.mlflow, doc.get("mlflow")))
    master = args.master or doc.get("master")
    if master is None and not running_under_cluster_launcher():
        master = f"local[{max(cfgs['partition'].parts, os.cpu_count() or 1)}]"  # one task slot per trainer
    conf = spark_settings(args.conf, doc)
    spark = get_spark(master=master, quiet=args.quiet, conf=conf,
                      object_store=any(fs.is_remote(p) for c in cfgs.values() for p in config_paths(c)))
    for path in sorted({p for c in cfgs.values() for p in config_paths(c)}):
        fs.check_reachable(path)
    params = {f"{step}.{k}": v for step, cfg in cfgs.items() for k, v in asdict(cfg).items()}
    tracker.start(_run_name(cfgs["train"].out), params, _resumed_run_id(cfgs["train"]))
    ok = False
    try:
        result = _run_steps(spark, cfgs, tracker)
        run_dir = fs.qualify(cfgs["train"].out)
        fs.write_json(fs.join(run_dir, "pipeline.json"),
                      {"config_file": os.path.abspath(args.config), "overrides": args.set or [],
                       **{step: asdict(cfg) for step, cfg in cfgs.items()}})
        tracker.log_artifacts([(fs.join(run_dir, "pipeline.json"), "run")])
        result["mlflow_run_id"] = tracker.run_id
        ok = True
        return result
    finally:
        tracker.end(ok)


def _run_steps(spark, cfgs: dict, tracker: Tracker) -> dict:
    from .infer import infer
    from .ingest import ingest
    from .lake import open_lake
    from .partition import partition

    lake_path = cfgs["partition"].lake
    if "ingest" in cfgs and (cfgs["ingest"].overwrite or not fs.exists(spark, lake_path)):
        log.info("[1/4] ingest -> %s", lake_path)
        ingest(spark, cfgs["ingest"])
    else:
        log.info("[1/4] using the existing lake %s%s", lake_path, "" if "ingest" not in cfgs else
                 " (set ingest.overwrite or pass --overwrite to ingest again)")
    lake = open_lake(spark, lake_path)
    pcfg = cfgs["partition"]
    if not pcfg.overwrite and _reusable_parts(spark, pcfg, lake):
        log.info("[2/4] using the existing partitions %s (same lake version and settings)", pcfg.out)
        stats = json.loads(fs.read_text(spark, f"{pcfg.out.rstrip('/')}/stats.json"))
    else:
        log.info("[2/4] partition -> %s (%s, K = %d)", pcfg.out, pcfg.strategy, pcfg.parts)
        stats = partition(spark, pcfg)
    keys = ("edge_retention", "label_tv", "node_balance", "edges_kept")
    tracker.log_metrics({f"partition_{k}": stats.get(k) for k in keys})
    log.info("[3/4] train -> %s", cfgs["train"].out)
    summary = train_tracked(spark, cfgs["train"], tracker)
    log.info("[4/4] infer -> %s", cfgs["infer"].out)
    evaluation = {k: v for k, v in infer(spark, cfgs["infer"]).items() if k != "config"}
    tracker.log_metrics({f"infer_{k}": evaluation.get(k) for k in ("val", "test", "seconds")})
    tracker.log_artifacts([(fs.join(fs.qualify(cfgs["infer"].run), "eval.json"), "run")])
    return {"lake": lake.path, "partitions": pcfg.out, "run": fs.qualify(cfgs["train"].out),
            "predictions": cfgs["infer"].out, "partition": {k: stats.get(k) for k in keys}, "train": summary,
            "infer": evaluation}
