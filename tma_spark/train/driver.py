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
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

import torch
from pyspark.sql import SparkSession

from .. import fs
from ..errors import ConfigError, TmaSparkError
from ..lake import open_lake
from .averaging import average_state_dicts
from .config import TrainConfig
from .evaluation import Evaluator, build_evaluator
from .executor import from_bytes, run_trainer_task, to_bytes
from .models import build_model
from .objectives import build_objective

__all__ = ["train", "check_slots"]

log = logging.getLogger(__name__)


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


def _check_run_dir(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not overwrite:
        raise TmaSparkError(f"Run folder {os.path.abspath(out)} already exists. Fix: choose another --out or pass "
                            "--overwrite.")


def _prepare_run_dir(out: str, overwrite: bool) -> str:
    _check_run_dir(out, overwrite)
    out = os.path.abspath(out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    return out


def _save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


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


class _Recorder:
    """Evaluates each averaged model, checkpoints it and writes its metrics line, in round order.

    Evaluation of round r runs in a background thread while round r+1 trains, so
    it adds nothing to a round's wall time (on a cluster the driver's cores are
    otherwise idle during a round).
    """

    def __init__(self, run_dir: str, eval_model, evaluator: Evaluator, cfg: TrainConfig, k: int):
        self.run_dir, self.model, self.evaluator, self.cfg, self.k = run_dir, eval_model, evaluator, cfg, k
        self.best = {"val": float("-inf"), "test": float("nan"), "round": 0, "wall": 0.0}
        self.since_best = 0
        self.history: List[dict] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tma-eval")
        self._pending = None

    def submit(self, row: dict, state: Dict[str, torch.Tensor]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._record, row, state)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()  # re-raises an evaluation error in the driver thread
            self._pending = None

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()

    def _record(self, row: dict, state: Dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
        scores = self.evaluator.evaluate(self.model)
        _save_atomic(state, os.path.join(self.run_dir, "last.pt"))
        if scores["val"] > self.best["val"]:
            self.best = {"val": scores["val"], "test": scores["test"], "round": row["round"],
                         "wall": row["wall_seconds"]}
            _save_atomic(state, os.path.join(self.run_dir, "best.pt"))
            self.since_best = 0
        else:
            self.since_best += 1
        row.update(scores)
        self.history.append(row)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as fh:
            fh.write(json.dumps(row) + "\n")
        sps = " ".join(f"{n / max(row['round_seconds'], 1e-9):.1f}" for n in row["steps"])
        log.info("round %d | %.0f s | val %s %.4f (best %.4f @%d) | steps/s %s | loss %.3f | overhead %.2f s | "
                 "%.0f s left", row["round"], row["wall_seconds"], self.evaluator.metric, scores["val"],
                 self.best["val"], self.best["round"], sps, sum(row["loss"]) / self.k, row["overhead_seconds"],
                 max(self.cfg.time_limit - row["wall_seconds"], 0))


def _llcg_correction(model, opt, objective, steps: int) -> Dict[str, torch.Tensor]:
    """LLCG's server correction: a few full-graph steps of the training objective on the averaged model."""
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = objective.loss(model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_lake(cfg: TrainConfig, lake) -> None:
    """Fail before any Spark job when the lake cannot serve the task."""
    if cfg.task == "node" and lake.meta.num_classes < 2:
        raise TmaSparkError(f"Lake {lake.path} has {lake.meta.num_classes} classes; node classification needs "
                            "labels with at least 2 classes. Fix: ingest labels, or use --task link.")
    if cfg.task == "link" and not lake.meta.has_edge_split:
        raise TmaSparkError(f"Lake {lake.path} has no edge split, which link prediction needs to hold out "
                            "validation and test edges. Fix: re-run 'tma-spark ingest' (it adds a seeded edge "
                            "split, --edge-split) or give the edges a 'split' column.")


def _source(spark: SparkSession, cfg: TrainConfig, lake):
    """Where trainers read their graphs, the number of trainers, and the partition strategy."""
    if cfg.mode == "central":
        return {"kind": "lake", "path": lake.path, "format": lake.meta.format, "version": lake.meta.created_at}, 1, \
            "none"
    info = _parts_info(spark, cfg, lake)
    version = os.path.getmtime(os.path.join(info["path"], "_tma_parts.json"))
    return ({"kind": "parts", "path": info["path"], "format": info["format"], "version": version}, info["parts"],
            info["strategy"])


def train(spark: SparkSession, cfg: TrainConfig) -> dict:
    """Train with ``cfg``; write the run folder; return the summary."""
    cfg.validate()
    lake = open_lake(spark, cfg.lake)
    _check_lake(cfg, lake)
    source, k, strategy = _source(spark, cfg, lake)
    check_slots(spark, k)
    _check_run_dir(cfg.out, cfg.overwrite)
    evaluator = build_evaluator(spark, lake, cfg)
    if cfg.mode == "llcg" and not evaluator.exact:
        raise TmaSparkError(f"--mode llcg corrects the model on the whole graph on the driver, but lake {lake.path} "
                            f"({lake.meta.num_edges:,} edges) is evaluated with --eval sampled. Fix: use --mode "
                            "psgd-pa or tma for graphs this large, or --eval full if the driver can hold the graph.")
    run_dir = _prepare_run_dir(cfg.out, cfg.overwrite)
    threads = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    if k == 1 and spark.sparkContext.master.startswith("local"):
        threads = os.cpu_count() or threads  # one trainer on one machine uses all its cores, as PyG would
    fs.write_json_local(os.path.join(run_dir, "config.json"),
                        {**cfg.to_dict(), "parts": k, "partition_strategy": strategy, "lake_path": lake.path,
                         "eval_mode": "full" if evaluator.exact else "sampled"})
    out_dim = lake.meta.num_classes if cfg.task == "node" else cfg.hidden  # link: embeddings
    spec = {"model": cfg.model, "in_dim": lake.meta.feature_dim, "hidden": cfg.hidden, "out_dim": out_dim,
            "layers": cfg.layers, "dropout": cfg.dropout, "lr": cfg.lr, "seed": cfg.seed, "source": source,
            "task": cfg.task, "sampler": cfg.sampler, "fanouts": list(cfg.hop_fanouts), "batch_size": cfg.batch_size,
            "optimizer_state": cfg.optimizer_state, "run_id": uuid.uuid4().hex}

    def new_model():
        return build_model(cfg.model, lake.meta.feature_dim, cfg.hidden, out_dim, cfg.layers, cfg.dropout,
                           seed=cfg.seed)

    model = new_model()
    global_state = {k_: v.clone() for k_, v in model.state_dict().items()}
    server_opt = server_objective = None
    if cfg.mode == "llcg":
        server_opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        server_objective = build_objective(evaluator.graph, {**spec, "sampler": "full"}, torch.device("cpu"))
    recorder = _Recorder(run_dir, new_model(), evaluator, cfg, k)
    opts: Dict[int, bytes] = {}
    # Warm-up stage (not counted in the budget): start Python workers, import torch, load and cache the parts.
    t_start = time.monotonic()
    _run_round(spark, k, spec, to_bytes(global_state), {}, 0.0, 0, threads)
    startup = time.monotonic() - t_start
    log.info("startup: %d trainers ready in %.1f s (workers started, parts loaded)", k, startup)
    started = time.monotonic()
    round_index = 0
    try:
        while True:
            remaining = cfg.time_limit - (time.monotonic() - started)
            if remaining < min(1.0, cfg.round_seconds) or (cfg.max_rounds and round_index >= cfg.max_rounds):
                break
            if cfg.patience and recorder.since_best >= cfg.patience:
                log.info("stopping: no better validation %s for %d rounds", evaluator.metric, cfg.patience)
                break
            round_index += 1
            seconds = min(cfg.round_seconds, remaining)
            t0 = time.monotonic()
            results = _run_round(spark, k, spec, to_bytes(global_state), opts, seconds, round_index, threads)
            stage = time.monotonic() - t0
            counts = {"nodes": [r["train_nodes"] for r in results], "edges": [r["edges"] for r in results]}
            global_state = average_state_dicts([from_bytes(r["state"]) for r in results], counts.get(cfg.weighting))
            opts = {r["part"]: r["opt"] for r in results}
            if server_opt is not None:
                model.load_state_dict(global_state)
                global_state = _llcg_correction(model, server_opt, server_objective, cfg.llcg_steps)
            round_wall = time.monotonic() - t0
            recorder.submit({
                "round": round_index, "wall_seconds": round(time.monotonic() - started, 3),
                "round_seconds": round(seconds, 3), "round_wall_seconds": round(round_wall, 3),
                "overhead_seconds": round(round_wall - seconds, 3), "stage_seconds": round(stage, 3),
                "driver_seconds": round(round_wall - stage, 3), "task_seconds": [r["task_seconds"] for r in results],
                "steps": [r["steps"] for r in results], "loss": [round(r["loss"], 5) for r in results],
                "load_seconds": [r["load_seconds"] for r in results],
                "devices": sorted({r["device"] for r in results}),
                "gpu_addresses": [r["gpus"] for r in results],
                "samplers": sorted({r["sampler"] for r in results}),
                "optimizer_state_misses": sum(bool(r["opt_miss"]) for r in results),
            }, global_state)
        recorder.wait()
    finally:
        recorder.close()
    best, history = recorder.best, recorder.history
    summary = {"task": cfg.task, "metric": evaluator.metric, "eval": "full" if evaluator.exact else "sampled",
               "best_val": best["val"], "test": best["test"],
               "rounds": round_index, "wall_seconds": round(time.monotonic() - started, 3),
               "time_to_best_seconds": round(best["wall"], 3), "best_round": best["round"], "mode": cfg.mode,
               "parts": k, "partition_strategy": strategy, "model": cfg.model,
               "total_steps": sum(sum(h["steps"]) for h in history), "startup_seconds": round(startup, 3),
               "mean_overhead_seconds": round(sum(h["overhead_seconds"] for h in history) / max(len(history), 1), 3)}
    fs.write_json_local(os.path.join(run_dir, "summary.json"), summary)
    log.info("done: best val %s %.4f at round %d, test %.4f, %d rounds in %.0f s", evaluator.metric, best["val"],
             best["round"], best["test"], round_index, summary["wall_seconds"])
    return summary
