"""Driver side of training: rounds of barrier-mode Spark stages, averaging, evaluation, checkpoints.

Each round is one barrier stage with one task per part (gang scheduled): every
trainer trains its part's model for T seconds from the current global weights
(:mod:`tma_spark.train.executor`). The driver averages the returned weights,
evaluates the average on the whole graph, checkpoints, and starts the next
round, until the time limit, the round limit or patience stops it. Spark's
stage retry re-runs a round whose task failed; no custom networking is used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Dict, List, Optional

import torch
from pyspark.sql import SparkSession

from ..errors import ConfigError, TmaSparkError
from ..lake import open_lake
from .averaging import average_state_dicts
from .config import TrainConfig
from .executor import from_bytes, run_trainer_task, to_bytes
from .graphdata import GraphTensors, build_graph, read_table
from .models import build_model

__all__ = ["train", "check_slots", "EVAL_MAX_EDGES"]

log = logging.getLogger(__name__)

#: Largest graph evaluated exactly on the driver.
EVAL_MAX_EDGES = 20_000_000


def check_slots(spark: SparkSession, needed: int) -> None:
    """Fail before training when a barrier stage of ``needed`` tasks cannot be gang scheduled."""
    sc = spark.sparkContext
    cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    slots = sc.defaultParallelism // cpus
    if slots < needed:
        raise TmaSparkError(
            f"Training needs {needed} task slots at once (one barrier task per part) but the cluster has {slots} "
            f"(defaultParallelism {sc.defaultParallelism} / spark.task.cpus {cpus}). Fix: run with --master "
            f"local[{needed}] locally, add executors or cores (spark.executor.instances, spark.executor.cores), "
            "or partition into fewer parts."
        )


def _parts_info(spark: SparkSession, cfg: TrainConfig, lake) -> dict:
    path = cfg.partitions.rstrip("/")
    meta_file = os.path.join(path, "_tma_parts.json")
    if not os.path.isfile(meta_file):
        raise TmaSparkError(f"{path} is not a partitions folder ({meta_file} is missing). "
                            "Fix: create it with 'tma-spark partition'.")
    meta = json.loads(open(meta_file).read())
    if meta["lake"] != lake.path or meta.get("lake_created_at") != lake.meta.created_at:
        raise TmaSparkError(
            f"Partitions {path} were made from lake {meta['lake']} (written {meta.get('lake_created_at')}), not from "
            f"{lake.path} (written {lake.meta.created_at}). Fix: re-run 'tma-spark partition --lake {lake.path}'."
        )
    strategy = meta["config"]["strategy"]
    if cfg.mode in ("psgd-pa", "llcg") and strategy != "metis":
        raise ConfigError(f"--mode {cfg.mode} trains on METIS parts, but {path} holds {strategy} parts. "
                          "Fix: partition with --strategy metis, or use --mode tma.")
    return {"path": path, "parts": int(meta["config"]["parts"]), "format": meta["config"]["format"],
            "strategy": strategy}


def _prepare_run_dir(out: str, overwrite: bool) -> str:
    out = os.path.abspath(out)
    if os.path.exists(out):
        if not overwrite:
            raise TmaSparkError(f"Run folder {out} already exists. Fix: choose another --out or pass --overwrite.")
        shutil.rmtree(out)
    os.makedirs(out)
    return out


def _save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
    os.replace(tmp, path)


def _accuracy(model, g: GraphTensors) -> Dict[str, float]:
    model.eval()
    with torch.no_grad():
        pred = model(g.x, g.edge_index).argmax(-1)
    out = {}
    for split in ("train", "val", "test"):
        m = g.mask(split)
        out[split] = float((pred[m] == g.y[m]).float().mean()) if bool(m.any()) else float("nan")
    return out


def _run_round(spark: SparkSession, k: int, spec: dict, state: bytes, opts: Dict[int, bytes], seconds: float,
               round_index: int, threads: int) -> List[dict]:
    """One barrier stage: K trainer tasks, gang scheduled; returns their results ordered by part.

    The global weights are broadcast once; each trainer's optimizer state travels
    inside its own RDD partition, so a task receives only its own.
    """
    sc = spark.sparkContext
    shared = sc.broadcast(state)

    def task(rows):
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        # Consume the whole input: a Python worker whose input is not drained is not reused, and a new
        # worker would re-import torch and reload the part (seconds per round).
        (part, opt_state), = list(rows)
        gpu = ctx.resources().get("gpu")
        addresses = list(gpu.addresses) if gpu is not None else None
        global_state = shared.value
        # No ctx.barrier() here: gang scheduling already starts the K tasks together, and a barrier() call
        # costs about a second (its polling interval).
        yield run_trainer_task(part, spec, global_state, opt_state, seconds, round_index, addresses, threads)

    try:
        sc.setJobDescription(f"tma_spark train round {round_index}")
        rdd = sc.parallelize([(p, opts.get(p)) for p in range(k)], k)
        results = rdd.barrier().mapPartitions(task).collect()
    finally:
        shared.unpersist()
    return sorted(results, key=lambda r: r["part"])


def train(spark: SparkSession, cfg: TrainConfig) -> dict:
    """Train with ``cfg``; write the run folder; return the summary."""
    cfg.validate()
    lake = open_lake(spark, cfg.lake)
    if lake.meta.num_classes < 2:
        raise TmaSparkError(f"Lake {lake.path} has {lake.meta.num_classes} classes; node classification needs "
                            "labels with at least 2 classes.")
    if lake.meta.num_edges > EVAL_MAX_EDGES:
        raise TmaSparkError(f"Lake {lake.path} has {lake.meta.num_edges:,} edges; exact evaluation on the driver is "
                            f"limited to {EVAL_MAX_EDGES:,} and sampled evaluation is not implemented yet.")
    if cfg.mode == "central":
        source = {"kind": "lake", "path": lake.path, "format": lake.meta.format}
        k, strategy = 1, "none"
    else:
        info = _parts_info(spark, cfg, lake)
        source = {"kind": "parts", "path": info["path"], "format": info["format"]}
        k, strategy = info["parts"], info["strategy"]
    check_slots(spark, k)
    run_dir = _prepare_run_dir(cfg.out, cfg.overwrite)
    threads = int(spark.sparkContext.getConf().get("spark.task.cpus", str(cfg.task_cpus)))
    _write_json(os.path.join(run_dir, "config.json"),
                {**cfg.to_dict(), "parts": k, "partition_strategy": strategy, "lake_path": lake.path})

    log.info("loading the whole graph on the driver for evaluation")
    full = build_graph(read_table(f"{lake.path}/nodes", lake.meta.format, ["id", "features", "label", "split"]),
                       read_table(f"{lake.path}/edges", lake.meta.format, ["src", "dst"]))
    spec = {"model": cfg.model, "in_dim": lake.meta.feature_dim, "hidden": cfg.hidden,
            "out_dim": lake.meta.num_classes, "layers": cfg.layers, "dropout": cfg.dropout, "lr": cfg.lr,
            "seed": cfg.seed, "source": source}
    model = build_model(cfg.model, lake.meta.feature_dim, cfg.hidden, lake.meta.num_classes, cfg.layers,
                        cfg.dropout, seed=cfg.seed)
    global_state = {k_: v.clone() for k_, v in model.state_dict().items()}
    server_opt = torch.optim.Adam(model.parameters(), lr=cfg.lr) if cfg.mode == "llcg" else None
    opts: Dict[int, bytes] = {}
    best = {"val": -1.0, "test": float("nan"), "round": 0, "wall": 0.0}
    since_best, history = 0, []
    # Warm-up stage (not counted in the budget): start Python workers, import torch, load and cache the parts.
    t_start = time.monotonic()
    _run_round(spark, k, spec, to_bytes(global_state), {}, 0.0, 0, threads)
    startup = time.monotonic() - t_start
    log.info("startup: %d trainers ready in %.1f s (workers started, parts loaded)", k, startup)
    started = time.monotonic()
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    round_index = 0
    while True:
        elapsed = time.monotonic() - started
        remaining = cfg.time_limit - elapsed
        if remaining < min(1.0, cfg.round_seconds) or (cfg.max_rounds and round_index >= cfg.max_rounds):
            break
        round_index += 1
        seconds = min(cfg.round_seconds, remaining)
        t0 = time.monotonic()
        results = _run_round(spark, k, spec, to_bytes(global_state), opts, seconds, round_index, threads)
        round_wall = time.monotonic() - t0
        t_driver = time.monotonic()
        weights = None
        if cfg.weighting == "nodes":
            weights = [r["train_nodes"] for r in results]
        elif cfg.weighting == "edges":
            weights = [r["edges"] for r in results]
        global_state = average_state_dicts([from_bytes(r["state"]) for r in results], weights)
        opts = {r["part"]: r["opt"] for r in results}
        model.load_state_dict(global_state)
        if server_opt is not None:  # LLCG: a few correction steps on the whole graph on the driver
            model.train()
            mask = full.mask("train")
            for _ in range(cfg.llcg_steps):
                server_opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(full.x, full.edge_index)[mask], full.y[mask])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                server_opt.step()
            global_state = {k_: v.detach().clone() for k_, v in model.state_dict().items()}
        acc = _accuracy(model, full)
        _save_atomic(global_state, os.path.join(run_dir, "last.pt"))
        if acc["val"] > best["val"]:
            best = {"val": acc["val"], "test": acc["test"], "round": round_index, "wall": time.monotonic() - started}
            _save_atomic(global_state, os.path.join(run_dir, "best.pt"))
            since_best = 0
        else:
            since_best += 1
        driver_seconds = time.monotonic() - t_driver
        wall = time.monotonic() - started
        overhead = round_wall + driver_seconds - seconds
        row = {"round": round_index, "wall_seconds": round(wall, 3), "round_seconds": round(seconds, 3),
               "round_wall_seconds": round(round_wall + driver_seconds, 3), "overhead_seconds": round(overhead, 3),
               "stage_seconds": round(round_wall, 3), "driver_seconds": round(driver_seconds, 3),
               "task_seconds": [r["task_seconds"] for r in results],
               "steps": [r["steps"] for r in results], "loss": [round(r["loss"], 5) for r in results],
               "load_seconds": [r["load_seconds"] for r in results], "val": acc["val"], "test": acc["test"],
               "train": acc["train"], "devices": sorted({r["device"] for r in results})}
        history.append(row)
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        sps = " ".join(f"{r['steps'] / max(seconds, 1e-9):.1f}" for r in results)
        log.info("round %d | %.0f s | val acc %.4f (best %.4f @%d) | steps/s %s | loss %.3f | overhead %.2f s | "
                 "%.0f s left", round_index, wall, acc["val"], best["val"], best["round"], sps,
                 sum(r["loss"] for r in results) / k, overhead, max(cfg.time_limit - wall, 0))
        if cfg.patience and since_best >= cfg.patience:
            log.info("stopping: no better validation accuracy for %d rounds", cfg.patience)
            break
    summary = {"task": cfg.task, "metric": "accuracy", "best_val": best["val"], "test": best["test"],
               "rounds": round_index, "wall_seconds": round(time.monotonic() - started, 3),
               "time_to_best_seconds": round(best["wall"], 3), "best_round": best["round"], "mode": cfg.mode,
               "parts": k, "partition_strategy": strategy, "model": cfg.model,
               "total_steps": sum(sum(h["steps"]) for h in history), "startup_seconds": round(startup, 3),
               "mean_overhead_seconds": round(sum(h["overhead_seconds"] for h in history) / max(len(history), 1), 3)}
    _write_json(os.path.join(run_dir, "summary.json"), summary)
    log.info("done: best val acc %.4f at round %d, test acc %.4f, %d rounds in %.0f s", best["val"], best["round"],
             best["test"], round_index, summary["wall_seconds"])
    return summary
