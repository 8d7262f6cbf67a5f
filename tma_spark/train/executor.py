"""Trainer task code: runs inside a barrier-mode Spark task, never touches the SparkSession.

A task trains its part's local model for a fixed wall-clock time, starting from
the global weights, and returns a :class:`~tma_spark.train.contract.TrainerResult`
(weights, step count, mean loss, ...). Dropout and sampling are seeded per
trainer and round (:func:`~tma_spark.train.contract.trainer_seed`), so no two
trainers replay the same masks. The part's graph (and its training objective,
with the CSR for neighbour sampling) is loaded by :func:`load_part` and kept in
:data:`_CACHE` for later rounds, and the driver sends the part back to the
executor that holds it (:mod:`tma_spark.train.placement`), so a trainer reads
its part once per run where each executor runs one trainer.

Each trainer keeps its own Adam state across rounds, as in the paper, in one of two ways
(``TrainerSpec.optimizer_state``):

* ``resident`` (the default for barrier rounds, whose parts stay with the workers that hold them): the state
  stays in the task's Python worker, beside the part. Nothing but the weights travels, but a trainer whose
  worker does not hold it (a new worker after a failed round, a moved part, a resumed run) starts from a
  fresh optimizer (reported as a miss). The worker keeps the state after each of the last two rounds, so
  that a round run again in the same workers (after a divergence) starts from the state before it
  (:data:`_OPT_STATES`).
* ``shipped`` (the default with ``--tolerate-failures``): the state travels to the driver with the weights,
  is checkpointed, and goes back out with the next round's task. Costs (de)serialization and transfer of 2x
  the parameters per round (through Spark every executor fetches every part's state; through files each
  trainer reads its own: :mod:`tma_spark.train.exchange`), and survives a task moving to another worker or
  executor, a lost trainer and ``--resume``.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import logging
import math
import os
import resource
import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Tuple

import torch

from .. import fs
from ..faults import Fault, hang, kill_executor, kill_self
from .contract import TrainerResult, TrainerSpec, from_bytes, non_finite, to_bytes
from .graphdata import load_graph
from .objectives import build_objective

__all__ = ["TrainOutput", "load_part", "seed_trainer", "train_for", "pick_device", "run_trainer_task",
           "release_worker", "trim_heap"]

log = logging.getLogger(__name__)

#: :func:`_cache_key` -> (graph, objective); one entry per worker (tasks may move between workers).
_CACHE: Dict[tuple, tuple] = {}
#: (run id, part) -> {round: optimizer state after that round}, for ``optimizer_state="resident"``: the last two
#: rounds this worker trained the part in. Round r starts from the state after round r - 1, which training
#: never changes in place (:func:`train_for` loads a copy), so a retried round r starts from it again.
_OPT_STATES: Dict[Tuple[str, int], Dict[int, dict]] = {}
#: How long an injected ``hang`` fault sleeps at least: far past any round bound a test or demo uses.
HANG_SECONDS = 3600.0
#: Where this worker imported tma_spark from (an installed package, or a wheel shipped with --py-files).
_CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cache_key(spec: TrainerSpec, part: int, shard: Optional[Tuple[int, int]], device: torch.device) -> tuple:
    """Everything the cached graph and objective depend on: the data (path and version, so that a re-written
    PARTS folder is reloaded), the part, the objective's settings and the device."""
    settings = (spec.task, spec.sampler, tuple(spec.fanouts), spec.batch_size, spec.model.in_dim,
                spec.model.hidden, shard)
    return (spec.source.path, spec.source.version, part, settings, str(device))


def load_part(spec: TrainerSpec, part: int, device: torch.device, shard: Optional[Tuple[int, int]] = None):
    """(graph, objective) of ``part`` (or of the whole lake when ``spec.source.kind == "lake"``), cached per
    process."""
    key = _cache_key(spec, part, shard, device)
    if key not in _CACHE:
        _CACHE.clear()  # a worker keeps one part (tasks may move between workers): free the old one first
        started = time.monotonic()
        source = spec.source
        fs.configure(dict(source.storage))  # this worker reads s3a:// … with the settings the driver's Spark has
        where = {"part": part} if source.kind == "parts" else None
        graph = load_graph(source.path, source.format, spec.task, where)
        _CACHE[key] = (graph, build_objective(graph, spec, device, shard))
        log.info("part %d loaded in %.2f s: %d nodes, %d edges, %.0f MB (features %.0f MB); worker peak %.0f MB",
                 part, time.monotonic() - started, graph.num_nodes, graph.edge_index.shape[1] // 2,
                 graph.nbytes / 2**20, graph.x.numel() * 4 / 2**20, peak_rss_mb())
    return _CACHE[key]


def trim_heap() -> None:
    """Give the C heap's free memory back to the OS (glibc ``malloc_trim``; nothing elsewhere). Freed tensors
    below glibc's adaptive mmap threshold stay in the heap otherwise, and the process keeps their pages."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def release_worker() -> dict:
    """Drop this Python worker's cached part and optimizer states and return the memory to the OS (between the
    runs of one application: see :func:`tma_spark.train.rounds.release_trainers`); what it held and holds."""
    held = len(_CACHE)
    _CACHE.clear()
    _OPT_STATES.clear()
    gc.collect()
    trim_heap()
    import psutil

    return {"pid": os.getpid(), "parts_dropped": held, "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def pick_device(gpu_addresses: Optional[list]) -> torch.device:
    """The GPU Spark assigned to this task when there is one (and CUDA works), else the CPU."""
    if gpu_addresses:
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(gpu_addresses[0])}")
        log.warning("Spark assigned GPU %s to this task but torch sees no CUDA device; training on the CPU",
                    gpu_addresses[0])
    return torch.device("cpu")


def seed_trainer(objective, seed: int) -> None:
    """Seed a trainer's dropout (torch's global generators, every device) and its sampler."""
    torch.manual_seed(seed)
    objective.seed(seed)


@dataclass(frozen=True)
class TrainOutput:
    """What :func:`train_for` returns: the local model's weights (on the CPU), Adam's state, steps, mean loss."""

    state: Dict[str, torch.Tensor]
    opt: dict
    steps: int
    loss: float


def train_for(objective, spec: TrainerSpec, state: dict, opt_state: Optional[dict], seconds: float,
              device: torch.device, seed: int, allreduce: Optional[Callable] = None) -> TrainOutput:
    """Train from ``state`` for ``seconds`` of wall-clock time (at least one step), the setup (the model, its
    weights, Adam's state) included, so that a round's trainers end T after they start; one step is one
    full-batch pass or one sampled mini-batch, depending on the objective's sampler. ``seed`` seeds
    dropout and sampling (:func:`seed_trainer`).

    With ``allreduce`` (data-parallel training, :mod:`tma_spark.train.ddp`) every step's gradients are
    replaced by the trainers' mean before the update, and the trainers stop together."""
    deadline = time.monotonic() + seconds
    seed_trainer(objective, seed)
    model = spec.model.build().to(device)  # leaves the seeded generators alone; the weights come from state
    model.load_state_dict(state)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    if opt_state is not None:  # a copy: Adam updates the tensors it loads in place, and the caller keeps these
        opt.load_state_dict(copy.deepcopy(opt_state))
    use_amp = device.type == "cuda" and spec.amp
    steps, loss_sum = 0, 0.0
    model.train()
    first = time.monotonic()  # when the first step starts: the steps' mean time excludes the setup
    # Stop when the next step would end past the deadline (at least one step): rounds end on time
    # instead of overshooting by up to a step, and the stage waits less for its slowest trainer.
    while allreduce is not None or objective.targets and (
            steps == 0 or time.monotonic() + (time.monotonic() - first) / steps <= deadline):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = objective.loss(model)
        loss.backward()
        stop = False
        if allreduce is not None:  # vote to stop when the next step would end past the deadline
            now = time.monotonic()
            stop = allreduce(model, now + (now - first) / (steps + 1) > deadline)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        loss_sum += float(loss.detach())
        if stop:
            break
    return TrainOutput({k: v.detach().cpu() for k, v in model.state_dict().items()}, opt.state_dict(), steps,
                       loss_sum / max(steps, 1))


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def run_trainer_task(part: int, spec: TrainerSpec, state_bytes: bytes, opt_bytes: Optional[bytes], seconds: float,
                     round_index: int, gpu_addresses: Optional[list], threads: int,
                     fault: Optional[Fault] = None, allreduce: Optional[Callable] = None,
                     address: Optional[str] = None) -> TrainerResult:
    """Everything one trainer does in one round; returns plain bytes and numbers for the driver (``address``,
    the executor's, goes back with them so that the next round places the part here).

    With an injected ``fault`` the trainer trains for half the round, then kills its process (or its
    executor), as a crash or a lost machine would; a ``hang`` fault trains for half the round, then sleeps far
    past the round's bound until the driver cancels the round; a ``diverge`` fault trains the whole round and
    returns NaN weights. A diverged trainer (non-finite loss or weights) keeps no resident optimizer state: its
    next round starts a fresh one.
    """
    started = time.monotonic()
    torch.set_num_threads(max(int(threads), 1))
    device = pick_device(gpu_addresses)
    part_loaded = _cache_key(spec, part, spec.shard(part), device) not in _CACHE
    graph, objective = load_part(spec, part, device, spec.shard(part))
    loaded = time.monotonic()
    state = from_bytes(state_bytes)
    resident = spec.optimizer_state == "resident"
    opt_key = (spec.run_id, part)
    held = _OPT_STATES.get(opt_key, {}) if resident else {}
    opt_state = held.get(round_index - 1) if resident else (from_bytes(opt_bytes) if opt_bytes else None)
    opt_miss = resident and round_index > 1 and opt_state is None
    if opt_miss:
        log.warning("round %d part %d: its optimizer state is not on this worker (the part moved, its trainer was "
                    "lost, or the run resumed); starting a fresh one", round_index, part)
    seed = spec.seed_for(part, round_index)
    budget = max(seconds - (time.monotonic() - started), 0.0)  # the part's load and the weights' decode included
    if fault is not None and fault.kind != "diverge":
        train_for(objective, spec, state, opt_state, budget / 2, device, seed=seed)
        reason = f"--inject-failure {fault}: round {round_index} part {part}"
        if fault.kind == "hang":  # far past any round bound; the driver cancels the round, Spark kills us
            hang(reason, max(HANG_SECONDS, 100 * seconds))
        kill_executor(reason) if fault.kind == "executor" else kill_self(reason)
    out = train_for(objective, spec, state, opt_state, budget, device, seed=seed, allreduce=allreduce)
    if fault is not None:  # diverge: the weights blow up, as a far too large learning rate makes them
        log.error("fault injection: round %d part %d diverges (--inject-failure %s)", round_index, part, fault)
        out = replace(out, state={k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                  for k, v in out.state.items()})
    finite = math.isfinite(out.loss) and not non_finite(out.state)
    if not finite:
        log.warning("round %d part %d: diverged (non-finite loss or weights); the driver discards this result",
                    round_index, part)
    if resident and round_index > 0:  # round 0 is the warm-up stage, whose result is discarded
        _OPT_STATES.clear()  # one part per worker, as for the graph cache
        kept = {round_index - 1: opt_state} if opt_state is not None else {}
        if finite:  # a diverged trainer's Adam state must not seed its next round
            kept[round_index] = out.opt
        if kept:
            _OPT_STATES[opt_key] = kept
    if not objective.targets:
        log.warning("round %d part %d: no training targets (%d nodes, %d edges); trained 0 steps", round_index,
                    part, graph.num_nodes, int(graph.edge_index.shape[1] // 2))
    log.info("round %d part %d: %d steps on %s (%s), loss %.4f", round_index, part, out.steps, device,
             objective.sampler, out.loss)
    return TrainerResult(
        part=part, state=to_bytes(out.state), opt=None if resident else to_bytes(_cpu(out.opt)), steps=out.steps,
        loss=out.loss, train_nodes=int(graph.mask("train").sum()), edges=int(graph.edge_index.shape[1] // 2),
        sampler=objective.sampler, load_seconds=round(loaded - started, 3),
        task_seconds=round(time.monotonic() - started, 3), device=str(device),
        gpus=tuple(str(a) for a in gpu_addresses or ()), pid=os.getpid(), code=_CODE, opt_miss=opt_miss,
        targets=objective.targets, peak_rss_mb=round(peak_rss_mb(), 1), executor=address, part_loaded=part_loaded)
