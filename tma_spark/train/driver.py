"""Driver side of training: the algorithm of time-based model averaging, round by round.

Each round the K trainers train their part's model for T seconds from the current global weights
(:mod:`tma_spark.train.rounds`, one barrier stage); the driver averages the returned weights
(:mod:`tma_spark.train.averaging`; LLCG adds server correction steps), checkpoints, and evaluates the
average on the whole graph in the background (:mod:`tma_spark.train.recorder`), until the time limit,
the round limit or patience stops it. The run folder's files are :mod:`tma_spark.train.run_dir`'s.

Seeds: the initial weights come from the run seed, built once here and shipped to every trainer as the
first global state; each trainer draws its dropout masks and samples from its own
:func:`~tma_spark.train.contract.trainer_seed` of (run seed, part, round).

After every averaging the driver writes ``checkpoint.pt``; ``resume`` continues from it, so a killed
driver loses at most the round in flight (see the README, "Failures and re-runs").
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Set

import torch
from pyspark.sql import SparkSession

from .. import fs
from ..claims import claiming
from ..errors import ConfigError
from .averaging import average_state_dicts, llcg_correction
from .config import TrainConfig
from .contract import RoundResult, TrainerSpec, to_bytes
from .exchange import Exchange, open_exchange, resolve_transport
from .objectives import build_objective
from .plots import curves_figure
from .placement import holders
from .preflight import RunPlan, no_targets_error, preflight
from .recorder import Recorder
from .rounds import check_slots, lost_parts, release_trainers, round_row, run_round, run_round_with_retries
from .checkpoint import Checkpoint, save_checkpoint, unrecorded_rounds
from .run_dir import open_run_dir, publish_run_dir, read_history, write_run_files, write_tracking

__all__ = ["train", "check_slots"]

log = logging.getLogger(__name__)


def _trainer_spec(cfg: TrainConfig, plan: RunPlan) -> TrainerSpec:
    return TrainerSpec(model=plan.model, source=plan.source, task=cfg.task, lr=cfg.lr, sampler=cfg.sampler,
                       fanouts=tuple(cfg.hop_fanouts), batch_size=cfg.batch_size,
                       optimizer_state=cfg.trainer_optimizer_state, mode=cfg.mode, trainers=plan.k, seed=cfg.seed,
                       run_id=uuid.uuid4().hex, faults=cfg.inject_failures)


def _task_threads(spark: SparkSession, k: int) -> int:
    threads = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
    if k == 1 and spark.sparkContext.master.startswith("local"):
        threads = os.cpu_count() or threads  # one trainer on one machine uses all its cores, as PyG would
    return threads


class _Progress(NamedTuple):
    """Where training stands: the global weights, each part's shipped optimizer state, the last round, the
    budget used."""

    state: Dict[str, torch.Tensor]
    opts: Dict[int, bytes]
    round: int
    elapsed: float


def _resume(run_dir: str, ckpt: Optional[Checkpoint], recorder: Recorder,
            server_opt: Optional[torch.optim.Optimizer], initial: Dict[str, torch.Tensor]) -> _Progress:
    """Continue the run in ``run_dir`` from ``ckpt`` (from the ``initial`` weights when no round had finished):
    the rounds recorded up to it stand (later or torn lines are dropped), the driver's random state and LLCG's
    optimizer come back, and every round the checkpoint carries whose evaluation was not written (lagging or
    failed when the driver stopped) is recorded now, in order, so ``metrics.jsonl`` has no gap."""
    history = read_history(run_dir, ckpt.round if ckpt else 0)
    recorder.resume(history)
    if ckpt is None:
        log.info("resuming %s: no round had finished, starting from round 1", run_dir)
        return _Progress(initial, {}, 0, 0.0)
    torch.set_rng_state(ckpt.rng)
    if server_opt is not None and ckpt.server_opt is not None:
        server_opt.load_state_dict(ckpt.server_opt)
    for row, state in unrecorded_rounds(ckpt, len(history), run_dir):
        log.info("resuming %s: recording round %d, whose evaluation was not written", run_dir, row["round"])
        recorder.submit(row, state)
    log.info("resuming %s from round %d (%.0f s of the %.0f s budget used)", run_dir, ckpt.round, ckpt.elapsed,
             recorder.time_limit)
    return _Progress(ckpt.state, dict(ckpt.opts), ckpt.round, ckpt.elapsed)


def _checkpoint_and_record(run_dir: str, recorder: Recorder, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` with every round not recorded yet as its ``pending`` rounds (this one last), then hand this
    round to the recorder: whenever the driver dies, or an evaluation fails, the checkpoint holds what
    ``--resume`` needs to write the missing metrics lines."""
    pending = recorder.unrecorded() + [{"row": dict(ckpt.row), "state": ckpt.state}]
    save_checkpoint(run_dir, replace(ckpt, pending=pending))
    recorder.submit(ckpt.row, ckpt.state)


def _check_warmup(results: List[RoundResult]) -> None:
    """Decode and check the warm-up stage's weights (one step from the initial ones) as a round's are, and warn
    of a trainer that diverged already (a far too large ``--lr`` shows before round 1). It also puts the driver's
    first decode and check of a model in the warm-up, outside the training budget."""
    for r in results:
        why = None if r.lost else r.divergence()
        if why:
            log.warning("warm-up: part %d %s after one step from the initial weights (is --lr too large?)", r.part,
                        why)


def _idle_parts(results: List[RoundResult], plan: RunPlan, task: str) -> Set[int]:
    """The parts whose trainers have no training targets, from the warm-up stage's results (logged here, once);
    a clear error when no trainer has any (what the pre-flight checks could not tell, e.g. for a whole-lake
    mode or partition statistics without the counts)."""
    done = [r for r in results if not r.lost]
    idle = sorted(r.part for r in done if not r.trained)
    if done and len(done) == len(results) and len(idle) == len(done):
        where = (f"Partitions {plan.source.path} (of lake {plan.lake.path})" if plan.source.kind == "parts"
                 else f"Lake {plan.lake.path}")
        raise no_targets_error(where, task)
    if idle:
        log.warning("part(s) %s have no training targets (empty, or no training labels or edges): their trainers "
                    "train 0 steps and are left out of the average", idle)
    return set(idle)


def _average(cfg: TrainConfig, k: int, round_index: int, results: List[RoundResult], opts: Dict[int, bytes],
             previous: Dict[str, torch.Tensor], idle: Set[int]) -> Dict[str, torch.Tensor]:
    """The round's global weights: the (weighted) mean over the trainers that finished and had training
    targets; the optimizer states of those that finished replace the previous ones in ``opts`` (a lost part
    keeps its previous state).

    A trainer without targets (an empty part, or one without training labels) returns the weights it was
    sent, which would only pull the average back: it is left out, logged once per part (``idle`` holds the
    parts already logged). When no trainer that finished had targets, the weights stay ``previous``."""
    done = [r for r in results if not r.lost]
    if len(done) < k:
        log.warning("round %d: trainer(s) %s lost (%s); averaging the %d of %d that finished; the lost "
                    "part(s) rejoin next round", round_index, lost_parts(results),
                    "; ".join(r.reason for r in results if r.lost), len(done), k)
    opts.update({r.part: r.opt for r in done})
    new_idle = sorted(r.part for r in done if not r.trained and r.part not in idle)
    if new_idle:
        log.warning("round %d: part(s) %s had no training targets (0 steps); left out of the average",
                    round_index, new_idle)
        idle.update(new_idle)
    trained = [r for r in done if r.trained]
    if not trained:
        log.warning("round %d: no trainer that finished had training targets; the global weights stay as they were",
                    round_index)
        return previous
    counts = {"nodes": [r.train_nodes for r in trained], "edges": [r.edges for r in trained]}
    return average_state_dicts([r.state_dict() for r in trained], counts.get(cfg.weighting))


def _count_loads(counts: List[int], results: List[RoundResult]) -> None:
    """Add each finished trainer's read of its part from storage to ``counts`` (by part)."""
    for r in results:
        if not r.lost and r.part_loaded:
            counts[r.part] += 1


def _write_curves(history: List[dict], metric: str, path: str) -> None:
    """Plot the run's validation curves to ``path`` (local or a store URI): rendered in memory, then written
    whole (:func:`tma_spark.fs.write_bytes`), as matplotlib writes only to local files or file objects."""
    buffer = io.BytesIO()
    curves_figure(history, metric).savefig(buffer, format="png", dpi=100)
    fs.write_bytes(None, path, buffer.getvalue())


@contextmanager
def _driver_torch_threads(master: str) -> Iterator[None]:
    """One torch thread for the driver's own maths (the divergence check, the average, the evaluation) while it
    trains with a ``local[...]`` or ``local-cluster[...]`` master, torch's setting restored afterwards.

    There the trainers share the driver's machine and keep every core busy, and a driver op split over several
    OpenMP threads waits until each of them gets a core: on this project's 2-core machine, with trainers running,
    checking and averaging four 0.74M-parameter models took 2-10x longer with torch's default of 2 threads than
    with 1, on the round's critical path. On a cluster the driver has a machine of its own and keeps the default.
    (Torch applies the setting to this thread and to threads that first use torch while it holds, such as the
    evaluation thread.)"""
    if not master.startswith("local"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@claiming("out", "tma-spark train", local=True)  # one writer per run folder
def train(spark: SparkSession, cfg: TrainConfig, on_round: Optional[Callable[[dict], None]] = None,
          tracking: Optional[dict] = None, release: bool = False) -> dict:
    """Train with ``cfg``; write the run folder; return the summary.

    ``on_round`` is called with each round's metrics row once it is written (from the evaluation thread),
    e.g. to log it to MLflow; an exception it raises is logged, never fatal. ``tracking`` (the MLflow run's
    ids) is saved as ``RUN/tracking.json`` so that ``--resume`` continues the same MLflow run. ``release``:
    afterwards the trainers' workers drop their cached parts (:func:`release_trainers`; for applications that
    run several trainings, such as ``bench``; a later run on the same parts then reads them again).
    """
    master = spark.sparkContext.master
    try:
        transport = resolve_transport(cfg.weights_transport, master)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with _driver_torch_threads(master), open_exchange(transport) as exchange:
        return _train(spark, cfg, on_round, tracking, release, exchange)


def _train(spark: SparkSession, cfg: TrainConfig, on_round: Optional[Callable[[dict], None]],
           tracking: Optional[dict], release: bool, exchange: Optional[Exchange]) -> dict:
    plan = preflight(spark, cfg)
    k, evaluator, ckpt = plan.k, plan.evaluator, plan.checkpoint
    eval_mode = "full" if evaluator.exact else "sampled"
    run_dir = open_run_dir(cfg.out, cfg.overwrite, cfg.resume)
    write_run_files(run_dir, None if cfg.resume else {**plan.run_config, "eval_mode": eval_mode}, plan.model)
    write_tracking(run_dir, tracking)
    spec, threads = _trainer_spec(cfg, plan), _task_threads(spark, k)

    model = plan.model.build(seed=cfg.seed)  # the initial weights: built once, the same on every trainer
    global_state = {k_: v.clone() for k_, v in model.state_dict().items()}
    torch.manual_seed(cfg.seed)  # the driver's own randomness (LLCG's dropout); a resumed run restores it
    server_opt = server_objective = None
    if cfg.mode == "llcg":
        server_opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        server_objective = build_objective(evaluator.graph, replace(spec, sampler="full"), torch.device("cpu"))
    recorder = Recorder(run_dir, plan.model.build(), evaluator, cfg.time_limit, on_round=on_round)
    progress = _Progress(global_state, {}, 0, 0.0)
    if cfg.resume:
        progress = _resume(run_dir, ckpt, recorder, server_opt, global_state)
    global_state, opts, round_index, elapsed = progress

    # Warm-up stage (not counted in the budget): start Python workers, import torch, load and cache the parts.
    t_start = time.monotonic()
    warmup = run_round(spark, k, replace(spec, faults=None), to_bytes(global_state), {}, 0.0, 0, threads,
                       cfg.tolerate_failures, exchange=exchange)
    _check_warmup(warmup)
    idle = _idle_parts(warmup, plan, cfg.task)
    startup = time.monotonic() - t_start
    loads = [None] * k  # each trainer's first load of its part (None: lost in the warm-up)
    part_loads = [0] * k  # reads of each part from storage over the run (1 each when parts stay put)
    for r in warmup:
        loads[r.part] = None if r.lost else r.load_seconds
    _count_loads(part_loads, warmup)
    placement = holders([(r.executor, r.part) for r in warmup if not r.lost])
    del warmup  # with the weights it decoded
    log.info("startup: %d trainers ready in %.1f s (workers started; parts loaded in %s s)", k, startup,
             " ".join("lost" if s is None else f"{s:.2f}" for s in loads))
    started = time.monotonic() - elapsed
    mark = time.monotonic()  # where the last round's wall time ended: the rounds' walls tile the run's
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
            results, attempts = run_round_with_retries(spark, k, spec, to_bytes(global_state), opts, seconds,
                                                       round_index, threads, cfg.round_retries,
                                                       cfg.tolerate_failures, cfg.round_bound, placement, exchange)
            stage = time.monotonic() - t0
            _count_loads(part_loads, results)
            placement = holders([(r.executor, r.part) for r in results if not r.lost]) or placement
            global_state = _average(cfg, k, round_index, results, opts, global_state, idle)
            if server_opt is not None:
                model.load_state_dict(global_state)
                global_state = llcg_correction(model, server_opt, server_objective, cfg.llcg_steps)
            # A round's wall time runs from where the previous one's ended: the rounds tile the run, so everything
            # the driver does between the trainers' stages counts (this round's checkpoint, and any wait for a
            # lagging evaluation, in the next round's), and the checkpoint holds the very row the recorder writes.
            now = time.monotonic()
            row = round_row(round_index, now - started, seconds, now - mark, stage, results, attempts)
            mark = now
            _checkpoint_and_record(run_dir, recorder, Checkpoint(
                round=round_index, elapsed=now - started, state=global_state, opts=opts,
                rng=torch.get_rng_state(), row=row,
                server_opt=server_opt.state_dict() if server_opt is not None else None))
            del results  # with the weights they decoded, not held through the next round
        recorder.wait()
    finally:
        recorder.close()

    summary = recorder.summary(task=cfg.task, eval_mode=eval_mode, rounds=round_index,
                               wall_seconds=time.monotonic() - started, mode=cfg.mode, parts=k,
                               strategy=plan.strategy, model=cfg.model, startup_seconds=startup,
                               startup_load_seconds=loads, part_loads=part_loads,
                               weights_transport="spark" if exchange is None else "files",
                               resumed_from_round=ckpt.round if ckpt else (0 if cfg.resume else None))
    if recorder.history:
        _write_curves(recorder.history, evaluator.metric, fs.join(run_dir, "curves.png"))
    fs.write_json(fs.join(run_dir, "summary.json"), summary)
    publish_run_dir(run_dir, cfg.out)
    best = recorder.best
    log.info("done: best val %s %.4f at round %d, test %.4f, %d rounds in %.0f s", evaluator.metric, best["val"],
             best["round"], best["test"], round_index, summary["wall_seconds"])
    if release:
        released = release_trainers(spark, k, barrier=not cfg.tolerate_failures)
        log.info("released the trainers' parts: %d worker(s) dropped %d part(s)", len(released),
                 sum(r["parts_dropped"] for r in released))
    return summary
