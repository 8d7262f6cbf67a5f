"""Typed configuration of the train job, validated before any Spark job starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from ..errors import ConfigError
from ..faults import Fault, parse_faults
from .models import MODELS

__all__ = ["TrainConfig", "MODES", "TASKS", "WEIGHTINGS", "SAMPLERS", "EVAL_MODES", "OPTIMIZER_STATES"]

MODES = ("tma", "central", "psgd-pa", "llcg", "ddp")
TASKS = ("node", "link")
WEIGHTINGS = ("none", "nodes", "edges")
SAMPLERS = ("auto", "full", "neighbor")
EVAL_MODES = ("auto", "full", "sampled")
OPTIMIZER_STATES = ("shipped", "resident")


@dataclass
class TrainConfig:
    """What ``tma-spark train`` does.

    Args:
        lake: the lake (for evaluation and for ``central``).
        partitions: a PARTS folder from ``tma-spark partition`` (not needed for ``central``).
        out: run folder (config.json, metrics.jsonl, best.pt, last.pt, summary.json).
        mode: ``tma`` (default), ``central`` (one trainer, whole graph), ``psgd-pa`` (tma over METIS
            parts), ``llcg`` (psgd-pa plus server correction steps after each averaging), ``ddp``
            (``workers`` synchronous data-parallel trainers on the whole graph, gradients averaged every step).
        workers: ``ddp``: number of data-parallel trainers.
        round_seconds: T, wall-clock seconds each trainer trains between averagings.
        time_limit: total training budget in seconds.
        max_rounds / patience: optional stops (patience = rounds without a better validation metric).
        weighting: ``none`` (unweighted mean, as in the paper), ``nodes`` or ``edges``.
        task: ``node`` (classification, accuracy) or ``link`` (prediction, MRR against sampled negatives;
            validation and test edges are held out of the graph the model sees).
        sampler: ``full`` (full-batch on the part), ``neighbor`` (mini-batches of ``batch_size`` targets with
            ``fanouts`` neighbours per hop, hop 1 first) or ``auto`` (by part size).
        eval: ``full`` (exact, whole graph on the driver), ``sampled`` (a fixed sample of ``eval_nodes``
            validation/test nodes, or ``eval_edges`` edges, whose neighbourhoods Spark extracts once) or
            ``auto`` (full up to ``EVAL_MAX_EDGES`` edges).
        eval_negatives: negatives per validation/test edge for MRR (link task).
        optimizer_state: ``shipped`` (Adam state travels with each round's task) or ``resident`` (stays in
            the task's Python worker; lost when Spark moves the task).
        round_retries: times a round whose trainer failed is run again from the same global weights
            (default mode: every trainer must finish a round).
        tolerate_failures: run trainers as independent tasks and average each round over the trainers that
            finished it; a lost trainer rejoins in the next round (the paper's robustness setting).
        inject_failures: fault injection for tests and demos, ``KIND:PART:ROUND[,...]`` with KIND
            ``trainer`` (kill the trainer's Python worker) or ``executor`` (kill its executor JVM).
        resume: continue the run in ``out`` from its last checkpoint (weights, optimizer states, round,
            random state, elapsed budget) instead of starting a new one.
    """

    lake: str
    out: str
    partitions: Optional[str] = None
    task: str = "node"
    model: str = "sage"
    mode: str = "tma"
    round_seconds: float = 30.0
    time_limit: float = 300.0
    max_rounds: Optional[int] = None
    patience: Optional[int] = None
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.5
    lr: float = 0.005
    weighting: str = "none"
    llcg_steps: int = 5
    sampler: str = "auto"
    fanouts: Optional[Tuple[int, ...]] = None  # default: 25 for hop 1, 10 for each further hop
    batch_size: int = 1024
    eval: str = "auto"
    eval_nodes: int = 5000
    eval_edges: int = 5000
    eval_negatives: int = 100
    optimizer_state: str = "shipped"
    workers: int = 4
    seed: int = 0
    overwrite: bool = False
    round_retries: int = 2
    tolerate_failures: bool = False
    inject_failures: Optional[str] = None
    resume: bool = False

    def validate(self) -> "TrainConfig":
        checks = [
            (self.mode in MODES, f"--mode {self.mode!r} is not one of {', '.join(MODES)}."),
            (self.task in TASKS, f"--task {self.task!r} is not supported yet; supported: {', '.join(TASKS)}."),
            (self.model in MODELS, f"--model {self.model!r} is not one of {', '.join(MODELS)}."),
            (self.weighting in WEIGHTINGS, f"--weighting {self.weighting!r} is not one of {', '.join(WEIGHTINGS)}."),
            (self.round_seconds > 0, f"--round-seconds {self.round_seconds} must be positive."),
            (self.time_limit > 0, f"--time-limit {self.time_limit} must be positive."),
            (self.max_rounds is None or self.max_rounds >= 1, f"--max-rounds {self.max_rounds} must be at least 1."),
            (self.patience is None or self.patience >= 1, f"--patience {self.patience} must be at least 1."),
            (self.hidden >= 1 and self.layers >= 1, "--hidden and --layers must be at least 1."),
            (not (self.model == "gat" and self.hidden % 4), f"--hidden {self.hidden} must be a multiple of 4 for gat."),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout} must be in [0, 1)."),
            (self.lr > 0, f"--lr {self.lr} must be positive."),
            (self.llcg_steps >= 1, f"--llcg-steps {self.llcg_steps} must be at least 1."),
            (self.sampler in SAMPLERS, f"--sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}."),
            (len(self.hop_fanouts) == self.layers and all(f == -1 or f >= 1 for f in self.hop_fanouts),
             f"--fanouts {','.join(map(str, self.hop_fanouts))} must give one fan-out per layer ({self.layers}), "
             "each at least 1 or -1 for all neighbours."),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1."),
            (self.eval in EVAL_MODES, f"--eval {self.eval!r} is not one of {', '.join(EVAL_MODES)}."),
            (min(self.eval_nodes, self.eval_edges, self.eval_negatives) >= 1,
             "--eval-nodes, --eval-edges and --eval-negatives must be at least 1."),
            (self.optimizer_state in OPTIMIZER_STATES,
             f"--optimizer-state {self.optimizer_state!r} is not one of {', '.join(OPTIMIZER_STATES)}."),
            (self.mode in ("central", "ddp") or bool(self.partitions),
             f"--mode {self.mode} needs --partitions PARTS (from 'tma-spark partition')."),
            (self.workers >= 1, f"--workers {self.workers} must be at least 1."),
            (not (self.mode == "ddp" and self.tolerate_failures), "--mode ddp trains in lockstep (every step waits "
             "for every trainer), so it cannot average over survivors: drop --tolerate-failures."),
            (bool(self.out), "--out is required: the run folder."),
            (self.round_retries >= 0, f"--round-retries {self.round_retries} must be 0 or more."),
            (not (self.resume and self.overwrite), "--resume continues the run in --out and --overwrite replaces "
             "it; pass one of them."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.faults  # parses --inject-failure, raising a ConfigError that names the bad item
        return self

    @property
    def faults(self) -> Tuple[Fault, ...]:
        """The injected faults (``inject_failures`` parsed)."""
        return parse_faults(self.inject_failures)

    @property
    def hop_fanouts(self) -> Tuple[int, ...]:
        """Neighbours sampled per hop (hop 1 first): ``fanouts``, or 25 then 10 per further hop."""
        return tuple(self.fanouts) if self.fanouts else (25,) + (10,) * (self.layers - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fanouts"] = list(self.hop_fanouts)
        return d
