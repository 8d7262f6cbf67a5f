"""Driver side of training: rounds of barrier-mode Spark stages, averaging, evaluation, checkpoints.

Each round is one barrier stage with one task per part (gang scheduled): every
trainer trains its part's model for T seconds from the current global weights
(:mod:`tma_spark.train.executor`). The driver averages the returned weights,
evaluates the average on the whole graph, checkpoints, and starts the next
round, until the time limit, the round limit or patience stops it. No custom networking is used.

Failures (see the README, "Failures and re-runs"):

* A round whose trainer fails is run again from the same global weights, up to ``round_retries``
  times (Spark does not retry a failed barrier result stage itself).
* With ``tolerate_failures`` the trainers run as K independent single-task jobs, so one failure does
  not abort the others; the round is averaged over the trainers that finished and the lost part
  rejoins in the next round.
* After every averaging the driver writes ``checkpoint.pt`` (global weights, optimizer states, round,
  random state, elapsed budget and the round's metrics row); ``resume`` continues from it, so a killed
  driver loses at most the round in flight.
* ``--overwrite`` of an existing run trains in a hidden sibling (``.RUN.next``) and swaps it in when
  the run finishes: a killed run never replaces a finished one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

import torch
from pyspark.sql import SparkSession

from .. import fs
from ..errors import ConfigError, TmaSparkError
from ..faults import crash_point, fault_for, parse_faults
from ..lake import open_lake
from ..partition.meta import PartsMeta, open_parts
from .averaging import average_state_dicts
from .config import TrainConfig
from .ddp import make_allreduce
from .evaluation import Evaluator, build_evaluator
from .executor import from_bytes, run_trainer_task, to_bytes
from .models import build_model
from .objectives import build_objective
from .plots import curves_figure

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


def _parts_info(spark: SparkSession, cfg: TrainConfig, lake) -> PartsMeta:
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


CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "tma_spark.train.checkpoint/1"
#: Settings a resumed run may change; every other setting must equal the checkpointed run's.
RESUMABLE_CHANGES = {"time_limit", "max_rounds", "patience", "overwrite", "resume", "round_retries",
                     "tolerate_failures", "inject_failures", "round_seconds", "out"}


def _next_dir(out: str) -> str:
    """Where ``--overwrite`` trains until the new run is complete (a hidden sibling of ``out``)."""
    parent, name = os.path.split(os.path.abspath(out).rstrip("/"))
    return os.path.join(parent, f".{name}.next")


def _is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json"))


def _check_run_dir(out: str, overwrite: bool, resume: bool) -> None:
    """Fail before any Spark job when ``out`` cannot be used as asked."""
    out = os.path.abspath(out)
    if resume:
        if not (_is_run(_next_dir(out)) or _is_run(out)):
            raise TmaSparkError(f"--resume: {out} holds no run to resume (no config.json). Fix: start the run "
                                "without --resume.")
        return
    if os.path.exists(out) and not overwrite:
        state = "finished" if os.path.isfile(os.path.join(out, "summary.json")) else "unfinished: no summary.json"
        raise TmaSparkError(f"Run folder {out} already exists ({state}). Fix: pass --resume to continue it, "
                            "--overwrite to replace it, or choose another --out.")


def _open_run_dir(out: str, overwrite: bool, resume: bool) -> str:
    """The folder this run writes to: ``out``, or its hidden ``.next`` sibling while replacing a run."""
    out = os.path.abspath(out)
    staged = _next_dir(out)
    if resume:
        return staged if _is_run(staged) else out
    if os.path.exists(staged):
        shutil.rmtree(staged)  # an earlier --overwrite run that was killed and not resumed
    if os.path.exists(out):
        os.makedirs(staged)
        return staged
    os.makedirs(out)
    return out


def _publish_run_dir(run_dir: str, out: str) -> None:
    """Swap a finished ``.next`` run in for the previous one (renames only: one complete run is always there)."""
    out = os.path.abspath(out)
    if run_dir == out:
        return
    crash_point("before-commit")  # fault injection: a driver killed here must leave the previous run in place
    parent, name = os.path.split(out)
    old = os.path.join(parent, f".{name}.previous-{uuid.uuid4().hex[:8]}")
    if os.path.exists(out):
        os.rename(out, old)
    os.rename(run_dir, out)
    shutil.rmtree(old, ignore_errors=True)


def _save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _read_history(run_dir: str, upto: int) -> List[dict]:
    """Metrics rows of rounds 1..``upto`` (a torn last line or later rounds are dropped), rewritten atomically."""
    path = os.path.join(run_dir, "metrics.jsonl")
    rows: List[dict] = []
    if os.path.isfile(path):
        for line in open(path):
            try:
                row = json.loads(line)
            except ValueError:
                break  # the driver was killed while appending this line
            if row.get("round", upto + 1) <= upto:
                rows.append(row)
    rounds = [r["round"] for r in rows]
    if rounds != list(range(1, len(rows) + 1)):
        raise TmaSparkError(f"{path} has rounds {rounds}, not 1..{len(rows)}. Fix: it was edited or mixed with "
                            "another run; start a new run.")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)
    return rows


def _load_checkpoint(run_dir: str) -> Optional[dict]:
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(path):
        return None  # killed before its first round finished: start again from round 1
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise TmaSparkError(f"--resume: {path} is not a readable tma_spark checkpoint ({type(exc).__name__}: "
                            f"{str(exc)[:200]}). Fix: start a new run (--overwrite).") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TmaSparkError(f"--resume: {path} is not a tma_spark train checkpoint. Fix: start a new run "
                            "(--overwrite).")
    return ckpt


def _check_resumable(saved: dict, current: dict, run_dir: str) -> None:
    """The resumed run must be the same training problem; name every setting that differs."""
    diffs = [f"{key}={saved.get(key)!r} (now {value!r})" for key, value in current.items()
             if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value]
    if diffs:
        raise ConfigError(f"--resume: the run in {run_dir} was trained with different settings: "
                          f"{', '.join(diffs)}. Fix: resume with the run's settings (see its config.json), or "
                          "start a new run with --overwrite or another --out.")


def _trainer_task(shared, spec: dict, seconds: float, round_index: int, threads: int, barrier: bool):
    """The function each round's Spark task runs for its part (barrier or independent task)."""
    faults = parse_faults(spec.get("faults"))

    def task(rows):
        from pyspark import BarrierTaskContext, TaskContext

        ctx = BarrierTaskContext.get() if barrier else TaskContext.get()
        # Consume the whole input: a Python worker whose input is not drained is not reused, and a new
        # worker would re-import torch and reload the part (seconds per round).
        (part, opt_state), = list(rows)
        if not barrier and ctx.attemptNumber() > 0:
            # Spark retried this trainer after a failure; the other trainers have finished the round by
            # now, so the part sits this round out and rejoins in the next one.
            yield {"part": part, "lost": True, "reason": "its task failed and Spark retried it"}
            return
        gpu = ctx.resources().get("gpu")
        addresses = list(gpu.addresses) if gpu is not None else None
        fault = fault_for(faults, part, round_index, spec.get("attempt", 0) == 0 and ctx.attemptNumber() == 0)
        # No ctx.barrier() here: gang scheduling already starts the K tasks together, and a barrier() call
        # costs about a second (its polling interval).
        allreduce = make_allreduce(ctx) if barrier and spec.get("mode") == "ddp" else None
        yield run_trainer_task(part, spec, shared.value, opt_state, seconds, round_index, addresses, threads, fault,
                               allreduce)

    return task


def _failure_reason(exc: BaseException) -> str:
    """One line on why a Spark job failed (the Java error's first line, not its stack)."""
    text = str(getattr(exc, "java_exception", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _run_round(spark: SparkSession, k: int, spec: dict, state: bytes, opts: Dict[int, bytes], seconds: float,
               round_index: int, threads: int, tolerant: bool = False) -> List[dict]:
    """One round: K trainer tasks; returns one result per part, ordered by part.

    By default the K tasks form one barrier stage (gang scheduled; any failure fails the round). With
    ``tolerant`` they are K single-task jobs submitted together, so a failed trainer only loses its own
    result, returned as ``{"part": p, "lost": True, "reason": ...}``. The global weights are broadcast
    once; each trainer's optimizer state travels inside its own RDD partition.
    """
    sc = spark.sparkContext
    shared = sc.broadcast(state)
    try:
        if not tolerant:
            sc.setJobDescription(f"tma_spark train round {round_index}")
            rdd = sc.parallelize([(p, opts.get(p)) for p in range(k)], k)
            results = rdd.barrier().mapPartitions(_trainer_task(shared, spec, seconds, round_index, threads,
                                                                True)).collect()
        else:
            task = _trainer_task(shared, spec, seconds, round_index, threads, False)

            def one(part: int) -> dict:
                sc.setJobDescription(f"tma_spark train round {round_index} part {part}")
                try:
                    return sc.parallelize([(part, opts.get(part))], 1).mapPartitions(task).collect()[0]
                except Exception as exc:  # the trainer's job failed: this part sits the round out
                    return {"part": part, "lost": True, "reason": _failure_reason(exc)}

            with ThreadPoolExecutor(max_workers=k, thread_name_prefix="tma-trainer") as pool:
                results = list(pool.map(one, range(k)))
    finally:
        shared.unpersist()
    return sorted(results, key=lambda r: r["part"])


def _run_round_with_retries(spark: SparkSession, cfg: TrainConfig, k: int, spec: dict, state: bytes,
                            opts: Dict[int, bytes], seconds: float, round_index: int, threads: int):
    """Run a round until enough trainers finish it: all of them by default, at least one with
    ``tolerate_failures``. Returns (results, attempts)."""
    for attempt in range(cfg.round_retries + 1):
        try:
            results = _run_round(spark, k, {**spec, "attempt": attempt}, state, opts, seconds, round_index,
                                 threads, cfg.tolerate_failures)
        except Exception as exc:
            reason = _failure_reason(exc)
        else:
            lost = [r for r in results if r.get("lost")]
            if len(lost) < k:
                return results, attempt + 1
            reason = "; ".join(f"part {r['part']}: {r['reason']}" for r in lost)
        if attempt < cfg.round_retries:
            log.warning("round %d failed (%s); running it again from the same weights (retry %d of %d)",
                        round_index, reason, attempt + 1, cfg.round_retries)
    raise TmaSparkError(
        f"Round {round_index} failed {cfg.round_retries + 1} times; last failure: {reason}. The run folder keeps "
        f"the checkpoint of round {round_index - 1}. Fix: see the executor logs for the cause, then continue with "
        "--resume (--tolerate-failures averages a round over the trainers that finish it; --round-retries sets "
        "the retries)."
    )


class _Recorder:
    """Evaluates each averaged model, checkpoints it and writes its metrics line, in round order.

    Evaluation of round r runs in a background thread while round r+1 trains, so
    it adds nothing to a round's wall time (on a cluster the driver's cores are
    otherwise idle during a round).
    """

    def __init__(self, run_dir: str, eval_model, evaluator: Evaluator, cfg: TrainConfig, k: int,
                 history: Sequence[dict] = (), on_round: Optional[Callable[[dict], None]] = None):
        self.run_dir, self.model, self.evaluator, self.cfg, self.k = run_dir, eval_model, evaluator, cfg, k
        self.on_round = on_round
        self.best = {"val": float("-inf"), "test": float("nan"), "round": 0, "wall": 0.0}
        self.since_best = 0
        self.history: List[dict] = []
        for row in history:  # a resumed run: rounds already recorded (and best.pt) stand
            self._track_best(row)
            self.history.append(row)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tma-eval")
        self._pending = None

    def _track_best(self, row: dict) -> bool:
        if row["val"] > self.best["val"]:
            self.best = {"val": row["val"], "test": row["test"], "round": row["round"], "wall": row["wall_seconds"]}
            self.since_best = 0
            return True
        self.since_best += 1
        return False

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
        row.update(scores)
        if self._track_best(row):
            _save_atomic(state, os.path.join(self.run_dir, "best.pt"))
        self.history.append(row)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.on_round is not None:
            self.on_round(row)
        sps = " ".join("lost" if n is None else f"{n / max(row['round_seconds'], 1e-9):.1f}" for n in row["steps"])
        losses = [x for x in row["loss"] if x is not None]
        log.info("round %d | %.0f s | val %s %.4f (best %.4f @%d) | steps/s %s | loss %.3f | overhead %.2f s | "
                 "%.0f s left", row["round"], row["wall_seconds"], self.evaluator.metric, scores["val"],
                 self.best["val"], self.best["round"], sps, sum(losses) / max(len(losses), 1),
                 row["overhead_seconds"], max(self.cfg.time_limit - row["wall_seconds"], 0))


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
    if cfg.mode in ("central", "ddp"):  # ddp: every trainer holds the whole graph
        return ({"kind": "lake", "path": lake.path, "format": lake.meta.format, "version": lake.meta.created_at},
                1 if cfg.mode == "central" else cfg.workers, "none")
    meta = _parts_info(spark, cfg, lake)
    return ({"kind": "parts", "path": meta.path, "format": meta.format, "version": meta.version}, meta.parts,
            meta.strategy)


def _check_faults(spark: SparkSession, cfg: TrainConfig, k: int) -> None:
    for fault in cfg.faults:
        if fault.part >= k:
            raise ConfigError(f"--inject-failure {fault}: part {fault.part} does not exist; the run has {k} "
                              f"trainers (parts 0..{k - 1}).")
        master = spark.sparkContext.master
        if fault.kind == "executor" and master.startswith("local") and not master.startswith("local-cluster"):
            raise ConfigError(f"--inject-failure {fault}: in --master {master} the executor is the driver's own "
                              "JVM. Fix: use --master local-cluster[2,1,1024] or a cluster, or kind 'trainer'.")


def _lost_parts(results: List[dict]) -> List[int]:
    return [r["part"] for r in results if r.get("lost")]


def _round_row(round_index: int, wall: float, seconds: float, round_wall: float, stage: float, results: List[dict],
               attempts: int) -> dict:
    """The metrics row of a round (scores are added by the recorder); lost trainers have None entries."""
    def per_part(key):
        return [None if r.get("lost") else r[key] for r in results]

    done = [r for r in results if not r.get("lost")]
    return {
        "round": round_index, "wall_seconds": round(wall, 3), "round_seconds": round(seconds, 3),
        "round_wall_seconds": round(round_wall, 3), "overhead_seconds": round(round_wall - seconds, 3),
        "stage_seconds": round(stage, 3), "driver_seconds": round(round_wall - stage, 3),
        "task_seconds": per_part("task_seconds"), "steps": per_part("steps"),
        "loss": [None if r.get("lost") else round(r["loss"], 5) for r in results],
        "load_seconds": per_part("load_seconds"), "devices": sorted({r["device"] for r in done}),
        "gpu_addresses": per_part("gpus"), "samplers": sorted({r["sampler"] for r in done}),
        "optimizer_state_misses": sum(bool(r["opt_miss"]) for r in done),
        "lost_parts": _lost_parts(results), "attempts": attempts,
        "executor_code": sorted({r["code"] for r in done}),
    }


def train(spark: SparkSession, cfg: TrainConfig, on_round: Optional[Callable[[dict], None]] = None) -> dict:
    """Train with ``cfg``; write the run folder; return the summary.

    ``on_round`` is called with each round's metrics row once it is written (from the evaluation thread),
    e.g. to log it to MLflow.
    """
    cfg.validate()
    lake = open_lake(spark, cfg.lake)
    _check_lake(cfg, lake)
    source, k, strategy = _source(spark, cfg, lake)
    _check_run_dir(cfg.out, cfg.overwrite, cfg.resume)
    run_config = {**cfg.to_dict(), "out": os.path.abspath(cfg.out), "lake": lake.path,
                  "partitions": source["path"] if source["kind"] == "parts" else None,
                  "parts": k, "partition_strategy": strategy, "lake_path": lake.path}
    ckpt, history = None, []
    if cfg.resume:
        run_dir = _open_run_dir(cfg.out, cfg.overwrite, cfg.resume)
        saved = json.loads(open(os.path.join(run_dir, "config.json")).read())
        _check_resumable(saved, run_config, run_dir)
        ckpt = _load_checkpoint(run_dir)
    check_slots(spark, k)
    _check_faults(spark, cfg, k)
    if cfg.resume:
        history = _read_history(run_dir, ckpt["round"] if ckpt else 0)
    evaluator = build_evaluator(spark, lake, cfg)
    if cfg.mode == "llcg" and not evaluator.exact:
        raise TmaSparkError(f"--mode llcg corrects the model on the whole graph on the driver, but lake {lake.path} "
                            f"({lake.meta.num_edges:,} edges) is evaluated with --eval sampled. Fix: use --mode "
                            "psgd-pa or tma for graphs this large, or --eval full if the driver can hold the graph.")
    if not cfg.resume:
        run_dir = _open_run_dir(cfg.out, cfg.overwrite, cfg.resume)
        fs.write_json_local(os.path.join(run_dir, "config.json"),
                            {**run_config, "eval_mode": "full" if evaluator.exact else "sampled"})
    threads = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    if k == 1 and spark.sparkContext.master.startswith("local"):
        threads = os.cpu_count() or threads  # one trainer on one machine uses all its cores, as PyG would
    out_dim = lake.meta.num_classes if cfg.task == "node" else cfg.hidden  # link: embeddings
    spec = {"model": cfg.model, "in_dim": lake.meta.feature_dim, "hidden": cfg.hidden, "out_dim": out_dim,
            "layers": cfg.layers, "dropout": cfg.dropout, "lr": cfg.lr, "seed": cfg.seed, "source": source,
            "task": cfg.task, "sampler": cfg.sampler, "fanouts": list(cfg.hop_fanouts), "batch_size": cfg.batch_size,
            "optimizer_state": cfg.optimizer_state, "run_id": uuid.uuid4().hex, "faults": cfg.inject_failures,
            "mode": cfg.mode, "trainers": k}

    def new_model():
        return build_model(cfg.model, lake.meta.feature_dim, cfg.hidden, out_dim, cfg.layers, cfg.dropout,
                           seed=cfg.seed)

    model = new_model()
    global_state = {k_: v.clone() for k_, v in model.state_dict().items()}
    server_opt = server_objective = None
    if cfg.mode == "llcg":
        server_opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        server_objective = build_objective(evaluator.graph, {**spec, "sampler": "full"}, torch.device("cpu"))
    recorder = _Recorder(run_dir, new_model(), evaluator, cfg, k, history, on_round)
    opts: Dict[int, bytes] = {}
    round_index, elapsed = 0, 0.0
    if ckpt is not None:
        global_state, opts, round_index, elapsed = ckpt["state"], dict(ckpt["opts"]), ckpt["round"], ckpt["elapsed"]
        torch.set_rng_state(ckpt["rng"])
        if server_opt is not None and ckpt.get("server_opt") is not None:
            server_opt.load_state_dict(ckpt["server_opt"])
        if len(history) < round_index:  # killed before this round's evaluation was written: record it now
            recorder.submit(dict(ckpt["row"]), global_state)
        log.info("resuming %s from round %d (%.0f s of the %.0f s budget used)", run_dir, round_index, elapsed,
                 cfg.time_limit)
    elif cfg.resume:
        log.info("resuming %s: no round had finished, starting from round 1", run_dir)
    # Warm-up stage (not counted in the budget): start Python workers, import torch, load and cache the parts.
    t_start = time.monotonic()
    _run_round(spark, k, {**spec, "faults": None}, to_bytes(global_state), {}, 0.0, 0, threads,
               cfg.tolerate_failures)
    startup = time.monotonic() - t_start
    log.info("startup: %d trainers ready in %.1f s (workers started, parts loaded)", k, startup)
    started = time.monotonic() - elapsed
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
            results, attempts = _run_round_with_retries(spark, cfg, k, spec, to_bytes(global_state), opts, seconds,
                                                        round_index, threads)
            stage = time.monotonic() - t0
            done = [r for r in results if not r.get("lost")]
            if len(done) < k:
                log.warning("round %d: trainer(s) %s lost (%s); averaging the %d of %d that finished; the lost "
                            "part(s) rejoin next round", round_index, _lost_parts(results),
                            "; ".join(r["reason"] for r in results if r.get("lost")), len(done), k)
            counts = {"nodes": [r["train_nodes"] for r in done], "edges": [r["edges"] for r in done]}
            global_state = average_state_dicts([from_bytes(r["state"]) for r in done], counts.get(cfg.weighting))
            opts.update({r["part"]: r["opt"] for r in done})  # a lost part keeps its previous optimizer state
            if server_opt is not None:
                model.load_state_dict(global_state)
                global_state = _llcg_correction(model, server_opt, server_objective, cfg.llcg_steps)
            round_wall = time.monotonic() - t0
            row = _round_row(round_index, time.monotonic() - started, seconds, round_wall, stage, results, attempts)
            _save_atomic({"format": CHECKPOINT_FORMAT, "round": round_index, "elapsed": time.monotonic() - started,
                          "state": global_state, "opts": opts, "rng": torch.get_rng_state(), "row": row,
                          "server_opt": server_opt.state_dict() if server_opt is not None else None},
                         os.path.join(run_dir, CHECKPOINT))
            recorder.submit(row, global_state)
        recorder.wait()
    finally:
        recorder.close()
    best, history = recorder.best, recorder.history
    summary = {"task": cfg.task, "metric": evaluator.metric, "eval": "full" if evaluator.exact else "sampled",
               "best_val": best["val"], "test": best["test"],
               "rounds": round_index, "wall_seconds": round(time.monotonic() - started, 3),
               "time_to_best_seconds": round(best["wall"], 3), "best_round": best["round"], "mode": cfg.mode,
               "parts": k, "partition_strategy": strategy, "model": cfg.model,
               "total_steps": sum(sum(n for n in h["steps"] if n is not None) for h in history),
               "startup_seconds": round(startup, 3),
               "mean_overhead_seconds": round(sum(h["overhead_seconds"] for h in history) / max(len(history), 1), 3),
               "round_retries": sum(h.get("attempts", 1) - 1 for h in history),
               "lost_trainer_rounds": sum(len(h.get("lost_parts", [])) for h in history),
               "resumed_from_round": ckpt["round"] if ckpt else (0 if cfg.resume else None)}
    if history:
        curves_figure(history, evaluator.metric).savefig(os.path.join(run_dir, "curves.png"), dpi=100)
    fs.write_json_local(os.path.join(run_dir, "summary.json"), summary)
    _publish_run_dir(run_dir, cfg.out)
    log.info("done: best val %s %.4f at round %d, test %.4f, %d rounds in %.0f s", evaluator.metric, best["val"],
             best["round"], best["test"], round_index, summary["wall_seconds"])
    return summary
