"""Typed configuration of the train job, validated before any Spark job starts.

Each field is declared once with :func:`~tma_spark.settings.setting`: its default, help, flag and choices make
the ``tma-spark train`` flags and the keys of a config file's ``train`` section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from ..errors import ConfigError
from ..faults import Fault, parse_faults
from ..settings import check_choices, setting, whole_numbers
from .exchange import TRANSPORTS

__all__ = ["TrainConfig", "default_round_timeout", "MODES", "TASKS", "MODELS", "WEIGHTINGS", "SAMPLERS",
           "EVAL_MODES", "OPTIMIZER_STATES"]

MODES = ("tma", "central", "psgd-pa", "llcg", "ddp")
TASKS = ("node", "link")
#: The models :func:`tma_spark.train.models.build_model` builds (declared here so that the command line does
#: not import torch; tests/test_settings.py checks that the two agree).
MODELS = ("sage", "gcn", "gat", "mlp")
WEIGHTINGS = ("none", "nodes", "edges")
SAMPLERS = ("auto", "full", "neighbor")
EVAL_MODES = ("auto", "full", "sampled")
OPTIMIZER_STATES = ("auto", "shipped", "resident")


def default_round_timeout(round_seconds: float) -> float:
    """The default bound on a round's wall time: three rounds, and at least two minutes beyond one, so that a
    slow task start (a new Python worker importing torch and loading its part) is never taken for a hang."""
    return max(3 * round_seconds, round_seconds + 120)


@dataclass
class TrainConfig:
    """What ``tma-spark train`` does: K trainers (one per part) train for ``round_seconds`` between model
    averagings until ``time_limit``; ``central``, ``psgd-pa``, ``llcg`` and ``ddp`` are the baselines.
    Each field's help says what it does (``tma-spark train --help``).
    """

    lake: str = setting(help="the lake (for evaluation, and the graph of --mode central and ddp)")
    out: str = setting(help="run folder (config.json, metrics.jsonl, best.pt, last.pt, summary.json)")
    partitions: Optional[str] = setting(None, help="PARTS folder from 'tma-spark partition' (not needed for "
                                        "--mode central or ddp)")
    task: str = setting("node", choices=TASKS, help="node (classification, accuracy) | link (prediction, MRR "
                        "against sampled negatives; validation and test edges are held out of the graph)")
    model: str = setting("sage", choices=MODELS, help="the GNN (PyG layers; mlp ignores the edges)")
    mode: str = setting("tma", choices=MODES, help="tma | central (one trainer, whole graph) | psgd-pa (tma over "
                        "METIS parts) | llcg (psgd-pa plus server correction steps) | ddp (synchronous data-"
                        "parallel baseline: --workers trainers on the whole graph, gradients averaged every step)")
    round_seconds: float = setting(30.0, short="-T", help="seconds between averagings (T)")
    time_limit: float = setting(300.0, help="total training seconds")
    max_rounds: Optional[int] = setting(None, help="stop after this many rounds")
    patience: Optional[int] = setting(None, help="stop after this many rounds without a better validation metric")
    hidden: int = setting(256, help="hidden width of every layer (default %(default)s)")
    layers: int = setting(2, help="GNN layers (default %(default)s)")
    dropout: float = setting(0.5, help="dropout rate (default %(default)s)")
    lr: float = setting(0.005, help="Adam learning rate (default %(default)s)")
    weighting: str = setting("none", choices=WEIGHTINGS, help="none (unweighted mean of the models, as in the paper) | "
                             "nodes | edges (each model weighted by its part's node or edge count)")
    llcg_steps: int = setting(5, help="llcg: server correction steps per round")
    sampler: str = setting("auto", choices=SAMPLERS, help="full (full-batch on each part) | neighbor (mini-batches "
                           "with neighbour sampling) | auto (full while the part is small enough; default)")
    fanouts: Optional[Tuple[int, ...]] = setting(None, parse=whole_numbers, help="neighbor: neighbours sampled per "
                                                 "hop, hop 1 first, one per layer; -1 = all (default 25,10 for 2 "
                                                 "layers)")
    batch_size: int = setting(1024, help="neighbor: target nodes (or edges) per step")
    eval: str = setting("auto", choices=EVAL_MODES, help="full (exact, whole graph on the driver) | sampled (fixed "
                        "sample of targets, their neighbourhoods with capped fan-outs extracted by Spark once) | auto "
                        "(full while its memory estimate is at most --eval-max-gb)")
    eval_fanouts: Optional[Tuple[int, ...]] = setting(None, parse=whole_numbers, help="sampled eval: neighbours "
                                                      "kept per hop, one per layer; -1 = all (exact outputs for the "
                                                      "sampled targets); default: the training's largest fan-out "
                                                      "at every hop (25,25 for 25,10)")
    eval_max_gb: float = setting(4.0, help="auto eval: the most driver memory (GB) that exact evaluation on the "
                                 "whole graph may take (features, edges, one layer's messages); default "
                                 "%(default)s")
    eval_nodes: int = setting(5000, help="sampled eval: validation and test nodes each")
    eval_edges: int = setting(5000, help="link: validation and test edges scored each")
    eval_negatives: int = setting(100, help="link: negatives per edge for MRR")
    optimizer_state: str = setting("auto", choices=OPTIMIZER_STATES, help="where each trainer's Adam state lives "
                                   "between rounds: resident (in the Python worker beside its part; restarts when "
                                   "the part moves, its trainer is lost or the run resumes) | shipped (travels to "
                                   "the driver and back each round, and is checkpointed) | auto (default: resident, "
                                   "shipped with --tolerate-failures, whose trainers move)")
    weights_transport: str = setting("auto", choices=TRANSPORTS, help="how weights and optimizer states travel "
                                     "between the driver and the trainers each round: files (through a temporary "
                                     "folder on the driver's machine; local[...] and local-cluster[...] masters "
                                     "only, whose executors run there) | spark (broadcasts and task results; any "
                                     "cluster) | auto (default: files on local masters, spark elsewhere)")
    workers: int = setting(4, help="ddp: number of data-parallel trainers (default %(default)s)")
    seed: int = setting(0, help="seed of the model, dropout and sampling")
    overwrite: bool = setting(False, help="replace an existing run folder (the previous run stays in place until "
                              "the new one finishes)")
    round_retries: int = setting(2, help="times a failed round is run again from the same weights (default "
                                 "%(default)s)")
    tolerate_failures: bool = setting(False, help="average a round over the trainers that finish it; a lost trainer "
                                      "rejoins in the next round")
    round_timeout: Optional[float] = setting(None, help="seconds after which a round that has not finished (a hung "
                                             "trainer, a stalled read, a ddp step waiting for a lost peer) is "
                                             "cancelled and handled as a failed round (default max(3T, T + 120))")
    inject_failures: Optional[str] = setting(None, flag="--inject-failure", metavar="KIND:PART:ROUND[,...]",
                                             help="fault injection for tests and demos: trainer PART fails in "
                                             "round ROUND; KIND is trainer (kill its Python worker), executor "
                                             "(kill its executor JVM; needs local-cluster or a cluster), "
                                             "diverge (its weights become NaN, on every attempt of the round) or "
                                             "hang (it stops half-way until --round-timeout cancels the round)")
    resume: bool = setting(False, help="continue the run in --out from its last checkpoint (weights, shipped "
                           "optimizer states, round, random state, elapsed budget) after the driver was killed or a "
                           "round failed for good")

    def validate(self) -> "TrainConfig":
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r} is not supported yet; supported: {', '.join(TASKS)}.")
        check_choices(self)
        checks = [
            (self.round_seconds > 0, f"--round-seconds {self.round_seconds} must be positive."),
            (self.time_limit > 0, f"--time-limit {self.time_limit} must be positive."),
            (self.max_rounds is None or self.max_rounds >= 1, f"--max-rounds {self.max_rounds} must be at least 1."),
            (self.patience is None or self.patience >= 1, f"--patience {self.patience} must be at least 1."),
            (self.hidden >= 1 and self.layers >= 1, "--hidden and --layers must be at least 1."),
            (not (self.model == "gat" and self.hidden % 4), f"--hidden {self.hidden} must be a multiple of 4 for gat."),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout} must be in [0, 1)."),
            (self.lr > 0, f"--lr {self.lr} must be positive."),
            (self.llcg_steps >= 1, f"--llcg-steps {self.llcg_steps} must be at least 1."),
            (len(self.hop_fanouts) == self.layers and all(f == -1 or f >= 1 for f in self.hop_fanouts),
             f"--fanouts {','.join(map(str, self.hop_fanouts))} must give one fan-out per layer ({self.layers}), "
             "each at least 1 or -1 for all neighbours."),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1."),
            (len(self.eval_hop_fanouts) == self.layers and all(f == -1 or f >= 1 for f in self.eval_hop_fanouts),
             f"--eval-fanouts {','.join(map(str, self.eval_hop_fanouts))} must give one fan-out per layer "
             f"({self.layers}), each at least 1 or -1 for all neighbours."),
            (self.eval_max_gb > 0, f"--eval-max-gb {self.eval_max_gb} must be positive."),
            (min(self.eval_nodes, self.eval_edges, self.eval_negatives) >= 1,
             "--eval-nodes, --eval-edges and --eval-negatives must be at least 1."),
            (self.mode in ("central", "ddp") or bool(self.partitions),
             f"--mode {self.mode} needs --partitions PARTS (from 'tma-spark partition')."),
            (self.workers >= 1, f"--workers {self.workers} must be at least 1."),
            (not (self.mode == "ddp" and self.tolerate_failures), "--mode ddp trains in lockstep (every step waits "
             "for every trainer), so it cannot average over survivors: drop --tolerate-failures."),
            (bool(self.out), "--out is required: the run folder."),
            (self.round_retries >= 0, f"--round-retries {self.round_retries} must be 0 or more."),
            (self.round_timeout is None or self.round_timeout > self.round_seconds,
             f"--round-timeout {self.round_timeout} must be longer than the round (--round-seconds "
             f"{self.round_seconds}), with room for a task's start-up; the default is "
             f"{default_round_timeout(self.round_seconds):g}."),
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
    def trainer_optimizer_state(self) -> str:
        """Where the trainers keep Adam's state (``optimizer_state`` with ``auto`` resolved): ``resident`` where
        parts stay with the workers that hold them (barrier rounds: :mod:`tma_spark.train.placement`), so nothing
        but the weights travels each round; ``shipped`` with ``tolerate_failures``, whose independent tasks
        land wherever Spark runs them."""
        if self.optimizer_state != "auto":
            return self.optimizer_state
        return "shipped" if self.tolerate_failures else "resident"

    @property
    def round_bound(self) -> float:
        """Seconds after which a round is cancelled: ``round_timeout``, else :func:`default_round_timeout` of T."""
        return self.round_timeout if self.round_timeout is not None else default_round_timeout(self.round_seconds)

    @property
    def hop_fanouts(self) -> Tuple[int, ...]:
        """Neighbours sampled per hop (hop 1 first): ``fanouts``, or 25 then 10 per further hop."""
        return tuple(self.fanouts) if self.fanouts else (25,) + (10,) * (self.layers - 1)

    @property
    def eval_hop_fanouts(self) -> Tuple[int, ...]:
        """Neighbours kept per hop by sampled evaluation: ``eval_fanouts``, or the training's largest fan-out at
        every hop (-1 at every hop when training keeps all at any). Why not the training fan-outs themselves:
        at 10^7 edges, 25,10 read 0.7-1.0 points below exact accuracy over 10,000 targets, and 25,25 within 0.44
        (benchmarks/results/eval_sampled.md), for 23% more nodes in the evaluation subgraph."""
        if self.eval_fanouts:
            return tuple(self.eval_fanouts)
        train = self.hop_fanouts
        return (-1 if -1 in train else max(train),) * len(train)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fanouts"] = list(self.hop_fanouts)
        d["eval_fanouts"] = list(self.eval_hop_fanouts)
        return d
