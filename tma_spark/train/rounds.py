"""One training round as Spark jobs: the task program, retries, failure reasons and the round's metrics row.

A round is one barrier stage with one task per part (gang scheduled): every trainer trains its part's
model for T seconds from the current global weights (:func:`tma_spark.train.executor.run_trainer_task`).
No custom networking is used. Failures (see the README, "Failures and re-runs"):

* A round whose trainer fails is run again from the same global weights, up to ``round_retries`` times
  (Spark does not retry a failed barrier result stage itself).
* With ``tolerate_failures`` the trainers run as K independent single-task jobs, so one failure does not
  abort the others; the round is averaged over the trainers that finished and the lost part rejoins in the
  next round.

The task function closes over plain values only (the broadcast weights, the :class:`TrainerSpec`), never
the SparkSession.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Dict, List, Sequence, Tuple

from pyspark.sql import SparkSession

from ..errors import TmaSparkError
from ..faults import fault_for, parse_faults
from .contract import LostTrainer, RoundResult, TrainerSpec
from .ddp import make_allreduce
from .executor import run_trainer_task

__all__ = ["check_slots", "run_round", "run_round_with_retries", "round_row", "lost_parts"]

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


def _trainer_task(shared, spec: TrainerSpec, seconds: float, round_index: int, threads: int, barrier: bool):
    """The function each round's Spark task runs for its part (barrier or independent task)."""
    faults = parse_faults(spec.faults)

    def task(rows):
        from pyspark import BarrierTaskContext, TaskContext

        ctx = BarrierTaskContext.get() if barrier else TaskContext.get()
        # Consume the whole input: a Python worker whose input is not drained is not reused, and a new
        # worker would re-import torch and reload the part (seconds per round).
        (part, opt_state), = list(rows)
        if not barrier and ctx.attemptNumber() > 0:
            # Spark retried this trainer after a failure; the other trainers have finished the round by
            # now, so the part sits this round out and rejoins in the next one.
            yield LostTrainer(part, "its task failed and Spark retried it")
            return
        gpu = ctx.resources().get("gpu")
        addresses = list(gpu.addresses) if gpu is not None else None
        fault = fault_for(faults, part, round_index, spec.attempt == 0 and ctx.attemptNumber() == 0)
        # No ctx.barrier() here: gang scheduling already starts the K tasks together, and a barrier() call
        # costs about a second (its polling interval).
        allreduce = make_allreduce(ctx) if barrier and spec.mode == "ddp" else None
        yield run_trainer_task(part, spec, shared.value, opt_state, seconds, round_index, addresses, threads, fault,
                               allreduce)

    return task


def failure_reason(exc: BaseException) -> str:
    """One line on why a Spark job failed (the Java error's first line, not its stack)."""
    text = str(getattr(exc, "java_exception", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def run_round(spark: SparkSession, k: int, spec: TrainerSpec, state: bytes, opts: Dict[int, bytes], seconds: float,
              round_index: int, threads: int, tolerant: bool = False) -> List[RoundResult]:
    """One round: K trainer tasks; returns one result per part, ordered by part.

    By default the K tasks form one barrier stage (gang scheduled; any failure fails the round). With
    ``tolerant`` they are K single-task jobs submitted together, so a failed trainer only loses its own
    result, returned as a :class:`LostTrainer`. The global weights are broadcast once; each trainer's
    optimizer state travels inside its own RDD partition.
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

            def one(part: int) -> RoundResult:
                sc.setJobDescription(f"tma_spark train round {round_index} part {part}")
                try:
                    return sc.parallelize([(part, opts.get(part))], 1).mapPartitions(task).collect()[0]
                except Exception as exc:  # the trainer's job failed: this part sits the round out
                    return LostTrainer(part, failure_reason(exc))

            with ThreadPoolExecutor(max_workers=k, thread_name_prefix="tma-trainer") as pool:
                results = list(pool.map(one, range(k)))
    finally:
        shared.unpersist()
    return sorted(results, key=lambda r: r.part)


def run_round_with_retries(spark: SparkSession, k: int, spec: TrainerSpec, state: bytes, opts: Dict[int, bytes],
                           seconds: float, round_index: int, threads: int, retries: int,
                           tolerant: bool) -> Tuple[List[RoundResult], int]:
    """Run a round until enough trainers finish it: all of them by default, at least one when ``tolerant``.
    Returns (results, attempts)."""
    for attempt in range(retries + 1):
        try:
            results = run_round(spark, k, replace(spec, attempt=attempt), state, opts, seconds, round_index,
                                threads, tolerant)
        except Exception as exc:
            reason = failure_reason(exc)
        else:
            lost = [r for r in results if r.lost]
            if len(lost) < k:
                return results, attempt + 1
            reason = "; ".join(f"part {r.part}: {r.reason}" for r in lost)
        if attempt < retries:
            log.warning("round %d failed (%s); running it again from the same weights (retry %d of %d)",
                        round_index, reason, attempt + 1, retries)
    raise TmaSparkError(
        f"Round {round_index} failed {retries + 1} times; last failure: {reason}. The run folder keeps "
        f"the checkpoint of round {round_index - 1}. Fix: see the executor logs for the cause, then continue with "
        "--resume (--tolerate-failures averages a round over the trainers that finish it; --round-retries sets "
        "the retries)."
    )


def lost_parts(results: Sequence[RoundResult]) -> List[int]:
    return [r.part for r in results if r.lost]


def round_row(round_index: int, wall: float, seconds: float, round_wall: float, stage: float,
              results: Sequence[RoundResult], attempts: int) -> dict:
    """The metrics row of a round (scores are added by the recorder); lost trainers have None entries."""
    def per_part(key):
        return [None if r.lost else getattr(r, key) for r in results]

    done = [r for r in results if not r.lost]
    return {
        "round": round_index, "wall_seconds": round(wall, 3), "round_seconds": round(seconds, 3),
        "round_wall_seconds": round(round_wall, 3), "overhead_seconds": round(round_wall - seconds, 3),
        "stage_seconds": round(stage, 3), "driver_seconds": round(round_wall - stage, 3),
        "task_seconds": per_part("task_seconds"), "steps": per_part("steps"),
        "loss": [None if r.lost else round(r.loss, 5) for r in results],
        "load_seconds": per_part("load_seconds"), "devices": sorted({r.device for r in done}),
        "gpu_addresses": [None if r.lost else list(r.gpus) for r in results],
        "samplers": sorted({r.sampler for r in done}),
        "optimizer_state_misses": sum(bool(r.opt_miss) for r in done),
        "lost_parts": lost_parts(results), "attempts": attempts,
        "executor_code": sorted({r.code for r in done}),
    }
