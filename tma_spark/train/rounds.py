"""One training round as Spark jobs: the task program, retries, failure reasons and the round's metrics row.

A round is one barrier stage with one task per part (gang scheduled): every trainer trains its part's
model for T seconds from the current global weights (:func:`tma_spark.train.executor.run_trainer_task`).
No custom networking is used. Failures (see the README, "Failures and re-runs"):

* A round whose trainer fails is run again from the same global weights, up to ``round_retries`` times
  (Spark does not retry a failed barrier result stage itself).
* With ``tolerate_failures`` the trainers run as K independent single-task jobs, so one failure does not
  abort the others; the round is averaged over the trainers that finished and the lost part rejoins in the
  next round.
* A round still running ``round_timeout`` seconds after it started (a hung trainer, a stalled read, a ddp
  ``allGather`` waiting for a lost peer) is cancelled: its Spark jobs carry a job group with interrupt on cancel,
  and a watchdog timer cancels that group (:class:`_Watchdog`). Spark then kills the tasks' Python workers, and
  the round counts as failed (default) or the trainers still running count as lost (``tolerate_failures``).
* A trainer that diverged (non-finite loss or weights, :meth:`TrainerResult.divergence`) counts as a failed
  trainer under the same two policies; a round whose every trainer diverges in every attempt stops the run
  with an error that names the learning rate.
* Platform settings that break these (dynamic allocation, speculation) are refused before training
  (:func:`tma_spark.train.cluster.check_cluster`).

The task function closes over plain values only (the broadcast weights, the :class:`TrainerSpec`), never
the SparkSession. Weights travel through Spark (broadcasts out, task results back) or, with an
:class:`~tma_spark.train.exchange.Exchange`, through files on the driver's machine
(:mod:`tma_spark.train.exchange`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from pyspark.sql import SparkSession

from ..errors import TmaSparkError
from ..faults import fault_for, parse_faults
from .cluster import check_slots
from .contract import LostTrainer, RoundResult, TrainerSpec
from .ddp import make_allreduce
from .exchange import Exchange, Parcel
from .executor import run_trainer_task
from .placement import assign_parts
from .rendezvous import meets_locally, rendezvous_dir, worker_slots

__all__ = ["check_slots", "run_round", "run_round_with_retries", "screen_diverged", "round_failure", "round_row",
           "lost_parts", "release_trainers"]

log = logging.getLogger(__name__)


def _pack(result: RoundResult, exchange: Optional[Exchange], round_index: int) -> RoundResult:
    """Trainer side: ``result`` with its weights and optimizer state written to ``exchange`` as
    :class:`Parcel` s (unchanged without one, or for a lost trainer)."""
    if exchange is None or result.lost:
        return result
    name = f"round{round_index}-part{result.part}"
    opt = None if result.opt is None else exchange.put(result.opt, f"{name}-opt")
    return replace(result, state=exchange.put(result.state, f"{name}-weights"), opt=opt)


def _unpack(result: RoundResult) -> RoundResult:
    """Driver side: ``result`` with the :class:`Parcel` s :func:`_pack` made read back into bytes and deleted."""
    if result.lost or not isinstance(result.state, Parcel):
        return result
    parcels = [p for p in (result.state, result.opt) if isinstance(p, Parcel)]
    unpacked = replace(result, state=result.state.value,
                       opt=result.opt.value if isinstance(result.opt, Parcel) else result.opt)
    for parcel in parcels:
        parcel.unpersist()
    return unpacked


def _share(sc, exchange: Optional[Exchange], data: bytes, name: str):
    """``data`` for the round's tasks: a Spark broadcast, or a :class:`Parcel` in ``exchange``. Both answer
    ``.value`` in the task and ``.unpersist()`` on the driver."""
    return sc.broadcast(data) if exchange is None else exchange.put(data, name)


def _trainer_task(shared, opts, placement: Dict[str, int], spec: TrainerSpec, seconds: float, round_index: int,
                  threads: int, barrier: bool, token: str = "", exchange: Optional[Exchange] = None):
    """The function each round's Spark task runs (barrier or independent task).

    An independent task trains the part in its row, with the optimizer state beside it. A barrier task trains
    the part :func:`~tma_spark.train.placement.assign_parts` gives it from the slots of the stage's tasks
    (executor addresses, or ``address/pid`` when all share one executor: :func:`worker_slots`, meeting in the
    folder of round attempt ``token``) and ``placement`` (the slot that trained each part last round), so that
    a part stays where it is loaded; its optimizer state comes from ``opts`` (part -> a broadcast or
    :class:`Parcel` of its bytes). With an ``exchange`` the result's weights go back as parcels (:func:`_pack`)."""
    faults = parse_faults(spec.faults)

    def task(rows):
        from pyspark import BarrierTaskContext, TaskContext

        ctx = BarrierTaskContext.get() if barrier else TaskContext.get()
        # Consume the whole input: a Python worker whose input is not drained is not reused, and a new
        # worker would re-import torch and reload the part (seconds per round).
        (part, opt_state), = list(rows)
        if isinstance(opt_state, Parcel):  # an independent task's state, sent through the exchange
            opt_state = opt_state.value
        address = None
        if barrier:
            slots = [info.address for info in ctx.getTaskInfos()]  # by partition id; no message exchange
            if token:  # local mode: every task on this machine's one executor; tell its workers apart
                slots = worker_slots(slots, ctx.partitionId(), rendezvous_dir(token))
            address = slots[ctx.partitionId()]
            part = assign_parts(slots, placement, len(slots))[ctx.partitionId()]
            opt_state = opts[part].value if part in opts else None
        if not barrier and ctx.attemptNumber() > 0:
            # Spark retried this trainer after a failure; the other trainers have finished the round by
            # now, so the part sits this round out and rejoins in the next one. (A speculative copy would look
            # the same; check_cluster refuses the only settings under which Spark speculates these tasks.)
            yield LostTrainer(part, "its task failed and Spark retried it")
            return
        gpu = ctx.resources().get("gpu")
        addresses = list(gpu.addresses) if gpu is not None else None
        fault = fault_for(faults, part, round_index, spec.attempt == 0 and ctx.attemptNumber() == 0)
        # No ctx.barrier() here: gang scheduling already starts the K tasks together, and a barrier() or
        # allGather() call costs about a second (PySpark polls for its answer once a second).
        allreduce = make_allreduce(ctx) if barrier and spec.mode == "ddp" else None
        yield _pack(run_trainer_task(part, spec, shared.value, opt_state, seconds, round_index, addresses, threads,
                                     fault, allreduce, address), exchange, round_index)

    return task


def failure_reason(exc: BaseException) -> str:
    """One line on why a Spark job failed (the Java error's first line, not its stack)."""
    text = str(getattr(exc, "java_exception", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


class _Watchdog:
    """Cancels Spark job group ``group`` (set with interrupt on cancel by the threads that submit the round's jobs)
    once ``timeout`` seconds have passed, unless stopped first; ``timeout`` None: no bound. Spark's own barrier
    timeout (``spark.barrier.sync.timeout``) defaults to a year, and a task stuck outside Spark calls has none."""

    def __init__(self, sc, group: str, timeout: Optional[float], round_index: int):
        self.group, self.timeout, self.fired = group, timeout, threading.Event()
        self._timer = None
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._cancel, args=(sc, round_index))
            self._timer.daemon = True
            self._timer.start()

    def _cancel(self, sc, round_index: int) -> None:
        self.fired.set()
        log.warning("round %d is still running after %g s (--round-timeout): cancelling its Spark jobs (job group "
                    "%s)", round_index, self.timeout, self.group)
        sc.cancelJobGroup(self.group)

    def reason(self) -> str:
        return (f"ran past {self.timeout:g} s (--round-timeout) and was cancelled (a hung trainer, a stalled read or "
                "a lost ddp peer; see the executor logs)")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_round(spark: SparkSession, k: int, spec: TrainerSpec, state: bytes, opts: Dict[int, bytes], seconds: float,
              round_index: int, threads: int, tolerant: bool = False,
              timeout: Optional[float] = None, placement: Optional[Dict[str, int]] = None,
              exchange: Optional[Exchange] = None) -> List[RoundResult]:
    """One round: K trainer tasks; returns one result per part, ordered by part.

    By default the K tasks form one barrier stage (gang scheduled; any failure fails the round), and each
    part goes to the task on the executor that trained it last round (``placement``: executor address ->
    part, :func:`~tma_spark.train.placement.holders` of the previous round; :mod:`tma_spark.train.placement`).
    With ``tolerant`` they are K single-task jobs submitted together, so a failed trainer only loses its own
    result, returned as a :class:`LostTrainer`, and part ``p`` is job ``p`` wherever Spark runs it. The global
    weights are broadcast once; the optimizer states are broadcast one per part (barrier: a task fetches the
    one of the part it takes) or travel inside each trainer's RDD partition (tolerant). With an ``exchange``
    the same bytes travel as files instead (:mod:`tma_spark.train.exchange`), results included.

    With ``timeout`` (seconds) the round's jobs are cancelled once it has run that long (:class:`_Watchdog`):
    a barrier round then raises a :class:`TmaSparkError` saying so, and in a ``tolerant`` round every trainer
    still running is a :class:`LostTrainer`. Job groups are per thread, so each submitting thread sets it.
    """
    sc = spark.sparkContext
    shared = _share(sc, exchange, state, f"round{round_index}-global")
    group = f"tma_spark-round-{round_index}-attempt-{spec.attempt}-{uuid.uuid4().hex[:8]}"
    watchdog = _Watchdog(sc, group, timeout, round_index)
    meet = meets_locally(sc.master)
    shared_opts = {}
    try:
        if not tolerant:
            sc.setJobGroup(group, f"tma_spark train round {round_index}", interruptOnCancel=True)
            rdd = sc.parallelize([(p, None) for p in range(k)], k)
            # one broadcast per part: a task fetches only the state of the part it takes, not all K
            shared_opts = {p: _share(sc, exchange, o, f"round{round_index}-part{p}-opt-in")
                           for p, o in opts.items() if o is not None}
            try:
                results = rdd.barrier().mapPartitions(_trainer_task(shared, shared_opts, dict(placement or {}), spec,
                                                                    seconds, round_index, threads, True,
                                                                    group if meet else "", exchange)).collect()
            except Exception as exc:
                if watchdog.fired.is_set():
                    raise TmaSparkError(f"round {round_index} {watchdog.reason()}") from exc
                raise
        else:
            task = _trainer_task(shared, {}, {}, spec, seconds, round_index, threads, False, exchange=exchange)
            if exchange is not None:
                shared_opts = {p: exchange.put(o, f"round{round_index}-part{p}-opt-in")
                               for p, o in opts.items() if o is not None}

            def one(part: int) -> RoundResult:
                sc.setJobGroup(group, f"tma_spark train round {round_index} part {part}", interruptOnCancel=True)
                try:
                    if watchdog.fired.is_set():  # submitted after the cancellation: nothing would cancel it
                        raise TmaSparkError("not started")
                    return sc.parallelize([(part, shared_opts.get(part, opts.get(part)))], 1).mapPartitions(
                        task).collect()[0]
                except Exception as exc:  # the trainer's job failed: this part sits the round out
                    return LostTrainer(part, watchdog.reason() if watchdog.fired.is_set() else failure_reason(exc))

            with ThreadPoolExecutor(max_workers=k, thread_name_prefix="tma-trainer") as pool:
                results = list(pool.map(one, range(k)))
    finally:
        watchdog.stop()
        shared.unpersist()
        for b in shared_opts.values():
            b.unpersist()
        if meet:
            shutil.rmtree(rendezvous_dir(group), ignore_errors=True)  # the tasks met on this machine
    return sorted((_unpack(r) for r in results), key=lambda r: r.part)


def screen_diverged(results: Sequence[RoundResult], round_index: int) -> List[RoundResult]:
    """The round's results with every diverged trainer (non-finite loss or weights) replaced by a
    :class:`LostTrainer`, so that the retry and ``tolerate_failures`` policies treat it like a crashed one and
    its NaNs never reach the average. Each is logged with its part and round."""
    screened: List[RoundResult] = []
    for r in results:
        why = None if r.lost else r.divergence()
        if why:
            log.warning("round %d part %d %s; treated as a failed trainer", round_index, r.part, why)
            r = LostTrainer(r.part, why, diverged=True)
        screened.append(r)
    return screened


def round_failure(round_index: int, attempts: int, reason: str, lr: float, all_diverged: bool,
                  diverged: bool) -> TmaSparkError:
    """The error that stops a run whose round failed in every attempt. ``all_diverged``: every trainer diverged
    in every attempt, so the likely cause is the learning rate; ``diverged``: the last failure included a
    divergence."""
    smaller = f"--lr {lr / 10:g}"
    if all_diverged:
        kept = f" The run folder keeps the checkpoint of round {round_index - 1}." if round_index > 1 else ""
        return TmaSparkError(
            f"Round {round_index}: every trainer diverged (non-finite loss or weights) in all {attempts} "
            f"attempt(s), so there is nothing to average. Likely cause: the learning rate --lr {lr:g} is too large "
            f"for this model and data. Fix: train again with a smaller one, e.g. {smaller}, in a new run "
            f"(--overwrite or another --out; a resumed run keeps its --lr).{kept}"
        )
    hint = (f" A diverged trainer usually means the learning rate --lr {lr:g} is too large: try {smaller} in a "
            "new run." if diverged else "")
    return TmaSparkError(
        f"Round {round_index} failed {attempts} times; last failure: {reason}. The run folder keeps "
        f"the checkpoint of round {round_index - 1}. Fix: see the executor logs for the cause, then continue with "
        "--resume (--tolerate-failures averages a round over the trainers that finish it; --round-retries sets "
        f"the retries).{hint}"
    )


def run_round_with_retries(spark: SparkSession, k: int, spec: TrainerSpec, state: bytes, opts: Dict[int, bytes],
                           seconds: float, round_index: int, threads: int, retries: int,
                           tolerant: bool, timeout: Optional[float] = None,
                           placement: Optional[Dict[str, int]] = None,
                           exchange: Optional[Exchange] = None) -> Tuple[List[RoundResult], int]:
    """Run a round until enough trainers finish it: all of them by default, at least one when ``tolerant``.
    A diverged trainer has not finished it (:func:`screen_diverged`), nor one still running after ``timeout``
    seconds (each attempt is bounded on its own). Returns (results, attempts)."""
    all_diverged = True  # every trainer diverged in every attempt so far
    for attempt in range(retries + 1):
        diverged = False
        try:
            results = screen_diverged(run_round(spark, k, replace(spec, attempt=attempt), state, opts, seconds,
                                                round_index, threads, tolerant, timeout, placement, exchange),
                                      round_index)
        except Exception as exc:
            reason, all_diverged = failure_reason(exc), False
        else:
            lost = [r for r in results if r.lost]
            if not lost or (tolerant and len(lost) < k):
                return results, attempt + 1
            diverged = any(r.diverged for r in lost)
            all_diverged = all_diverged and len(lost) == k and all(r.diverged for r in lost)
            reason = "; ".join(f"part {r.part}: {r.reason}" for r in lost)
        if attempt < retries:
            log.warning("round %d failed (%s); running it again from the same weights (retry %d of %d)",
                        round_index, reason, attempt + 1, retries)
    raise round_failure(round_index, retries + 1, reason, spec.lr, all_diverged, diverged)


def release_trainers(spark: SparkSession, k: int, barrier: bool = True) -> List[dict]:
    """After a run: one stage shaped like a round (K tasks, so the trainers' slots and, where each executor
    runs one trainer, their workers) in which each worker drops its cached part and optimizer states
    (:func:`~tma_spark.train.executor.release_worker`), so that the next run of the same application starts
    from the workers' import baseline instead of adding its parts to the last run's. ``barrier``: K tasks at
    once (the trainers' slots); False after a ``--tolerate-failures`` run, which may have lost slots, since a
    barrier stage waits for all K. Best effort: a worker that gets no task keeps what it holds until its next
    task. Never fails the caller."""
    def task(rows):
        list(rows)
        from .executor import release_worker

        yield release_worker()

    try:
        rdd = spark.sparkContext.parallelize(range(k), k)
        return (rdd.barrier() if barrier else rdd).mapPartitions(task).collect()
    except Exception as exc:  # noqa: BLE001 -- a cleanup; the run it follows has succeeded
        log.warning("could not release the trainers' cached parts (%s); they are freed when the workers next "
                    "load a part or exit", failure_reason(exc))
        return []


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
        "load_seconds": per_part("load_seconds"), "peak_rss_mb": per_part("peak_rss_mb"),
        "part_loaded": per_part("part_loaded"), "executors": per_part("executor"),
        "devices": sorted({r.device for r in done}),
        "gpu_addresses": [None if r.lost else list(r.gpus) for r in results],
        "samplers": sorted({r.sampler for r in done}),
        "optimizer_state_misses": sum(bool(r.opt_miss) for r in done),
        "lost_parts": lost_parts(results), "attempts": attempts,
        "idle_parts": [r.part for r in done if not r.trained],  # no training targets: 0 steps, not averaged
        "executor_code": sorted({r.code for r in done}),
    }
