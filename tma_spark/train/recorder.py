"""Recording a run's rounds on the driver: evaluation, ``best.pt``/``last.pt``, ``metrics.jsonl``, the summary.

Evaluation of round r runs in a background thread while round r+1 trains, so it adds nothing to a round's
wall time (on a cluster the driver's cores are otherwise idle during a round). Rounds submitted but not yet
written (:meth:`Recorder.unrecorded`) go into each checkpoint, so that ``--resume`` can record them.

Every file is written whole through :mod:`tma_spark.fs` (the run folder may be on an object store, and some
stores, S3 and Databricks volumes among them, cannot append): ``metrics.jsonl`` is rewritten from the
in-memory history each round, complete or absent, never torn.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .. import fs, jsonsafe
from .evaluation import Evaluator
from .checkpoint import save_atomic

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


class Recorder:
    """Evaluates each averaged model, saves it and writes its metrics line, in round order.

    Args:
        run_dir: the run folder being written.
        eval_model: a model of the run's shape to load each averaged state into.
        evaluator: scores a model on the validation and test targets.
        time_limit: the run's budget (for the progress line).
        on_round: called with each row once it is written (from the evaluation thread); an exception it raises
            is logged (a warning the first time) and never stops training.
    """

    def __init__(self, run_dir: str, eval_model: torch.nn.Module, evaluator: Evaluator, time_limit: float,
                 on_round: Optional[Callable[[dict], None]] = None):
        self.run_dir, self.model, self.evaluator, self.time_limit = run_dir, eval_model, evaluator, time_limit
        self.on_round = on_round
        self._hook_failed = False
        self.best = {"val": float("-inf"), "test": float("nan"), "round": 0, "wall": 0.0}
        self.since_best = 0
        self.history: List[dict] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tma-eval")
        self._future, self._future_round = None, 0
        self._lock = threading.Lock()
        self._unrecorded: List[dict] = []  # {"row", "state"} of submitted rounds whose line is not written yet

    def resume(self, history: Sequence[dict]) -> None:
        """A resumed run: the rounds already recorded (and their best.pt) stand and count for the best round."""
        for row in history:
            self._track_best(row)
            self.history.append(row)

    def _track_best(self, row: dict) -> bool:
        if row["val"] is not None and row["val"] > self.best["val"]:  # None: a NaN score read back from JSON
            self.best = {"val": row["val"], "test": row["test"], "round": row["round"], "wall": row["wall_seconds"]}
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    def unrecorded(self) -> List[dict]:
        """The submitted rounds whose metrics line is not written yet (in flight, queued or failed), in order, as
        ``{"row": row without scores, "state": weights}``: what a checkpoint must carry so that ``--resume``
        can record them (:attr:`Checkpoint.pending <tma_spark.train.checkpoint.Checkpoint>`)."""
        with self._lock:
            return [dict(p) for p in self._unrecorded]

    def submit(self, row: dict, state: Dict[str, torch.Tensor]) -> None:
        """Record ``row`` with the scores of ``state`` once the previous round is recorded."""
        with self._lock:
            self._unrecorded.append({"row": dict(row), "state": state})  # a copy: _record adds the scores to row
        self.wait()
        self._future = self._pool.submit(self._record, row, state)
        self._future_round = row["round"]

    def wait(self) -> None:
        """Wait for the round being recorded; its evaluation error is logged and re-raised in the driver thread
        (the run stops; the round stays unrecorded, so the next checkpoint carries it for ``--resume``)."""
        future, self._future = self._future, None
        if future is None:
            return
        try:
            future.result()
        except Exception as exc:
            log.error("round %d: evaluation failed (%s: %s); the run stops. The round's weights are kept in "
                      "checkpoint.pt: fix the cause and run again with --resume, which records it first",
                      self._future_round, type(exc).__name__, exc)
            raise

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()

    def _record(self, row: dict, state: Dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
        scores = self.evaluator.evaluate(self.model)
        save_atomic(state, fs.join(self.run_dir, "last.pt"))
        row.update(scores)
        if self._track_best(row):
            save_atomic(state, fs.join(self.run_dir, "best.pt"))
        self.history.append(row)
        self._write_metrics()  # complete (fsynced, or one PUT) before the round leaves the pending rounds
        with self._lock:
            self._unrecorded = [p for p in self._unrecorded if p["row"]["round"] != row["round"]]
        self._notify(row)
        sps = " ".join("lost" if n is None else f"{n / max(row['round_seconds'], 1e-9):.1f}" for n in row["steps"])
        losses = [x for x in row["loss"] if x is not None]
        log.info("round %d | %.0f s | val %s %.4f (best %.4f @%d) | steps/s %s | loss %.3f | overhead %.2f s | "
                 "%.0f s left", row["round"], row["wall_seconds"], self.evaluator.metric, scores["val"],
                 self.best["val"], self.best["round"], sps, sum(losses) / max(len(losses), 1),
                 row["overhead_seconds"], max(self.time_limit - row["wall_seconds"], 0))

    def _write_metrics(self) -> None:
        """Replace ``metrics.jsonl`` with every recorded round, one JSON line each (a NaN score, no targets in
        a split, is written as null). A whole-file write rather than an append: atomic on every store, and the
        file is small (one line per round)."""
        text = "".join(jsonsafe.dumps(row) + "\n" for row in self.history)
        fs.write_text(None, fs.join(self.run_dir, "metrics.jsonl"), text)

    def _notify(self, row: dict) -> None:
        """Call ``on_round``: a progress hook such as experiment tracking must never abort the training run."""
        if self.on_round is None:
            return
        try:
            self.on_round(row)
        except Exception as exc:  # noqa: BLE001 -- whatever the hook raises, training goes on
            if self._hook_failed:
                log.debug("round %d: the on_round callback failed again: %s", row["round"], exc)
            else:
                log.warning("round %d: the on_round callback failed (%s: %s); training goes on (further failures "
                            "are logged at debug level)", row["round"], type(exc).__name__, exc, exc_info=True)
            self._hook_failed = True

    def summary(self, *, task: str, eval_mode: str, rounds: int, wall_seconds: float, mode: str, parts: int,
                strategy: str, model: str, startup_seconds: float, resumed_from_round: Optional[int],
                startup_load_seconds: Optional[list] = None, part_loads: Optional[list] = None,
                weights_transport: Optional[str] = None) -> dict:
        """``summary.json``: the run's facts, the best round's scores and totals over the recorded rounds
        (``startup_load_seconds``: each trainer's first load of its part, in the warm-up stage; ``part_loads``:
        how many times each part was read from storage, warm-up included: 1 each when no part moved;
        ``weights_transport``: ``spark`` or ``files``, :mod:`tma_spark.train.exchange`)."""
        best, history = self.best, self.history
        return {"task": task, "metric": self.evaluator.metric, "eval": eval_mode, "best_val": best["val"],
                "test": best["test"], "rounds": rounds, "wall_seconds": round(wall_seconds, 3),
                "time_to_best_seconds": round(best["wall"], 3), "best_round": best["round"], "mode": mode,
                "parts": parts, "partition_strategy": strategy, "model": model,
                "total_steps": sum(sum(n for n in h["steps"] if n is not None) for h in history),
                "startup_seconds": round(startup_seconds, 3), "startup_load_seconds": startup_load_seconds,
                "part_loads": part_loads, "weights_transport": weights_transport,
                "mean_overhead_seconds": round(sum(h["overhead_seconds"] for h in history) / max(len(history), 1),
                                               3),
                "round_retries": sum(h.get("attempts", 1) - 1 for h in history),
                "lost_trainer_rounds": sum(len(h.get("lost_parts", [])) for h in history),
                "resumed_from_round": resumed_from_round}
