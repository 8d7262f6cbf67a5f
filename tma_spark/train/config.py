"""Typed configuration of the train job, validated before any Spark job starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from ..errors import ConfigError
from .models import MODELS

__all__ = ["TrainConfig", "MODES", "TASKS", "WEIGHTINGS"]

MODES = ("tma", "central", "psgd-pa", "llcg")
TASKS = ("node",)
WEIGHTINGS = ("none", "nodes", "edges")


@dataclass
class TrainConfig:
    """What ``tma-spark train`` does.

    Args:
        lake: the lake (for evaluation and for ``central``).
        partitions: a PARTS folder from ``tma-spark partition`` (not needed for ``central``).
        out: run folder (config.json, metrics.jsonl, best.pt, last.pt, summary.json).
        mode: ``tma`` (default), ``central`` (one trainer, whole graph), ``psgd-pa`` (tma over METIS
            parts), ``llcg`` (psgd-pa plus server correction steps after each averaging).
        round_seconds: T, wall-clock seconds each trainer trains between averagings.
        time_limit: total training budget in seconds.
        max_rounds / patience: optional stops (patience = rounds without a better validation metric).
        weighting: ``none`` (unweighted mean, as in the paper), ``nodes`` or ``edges``.
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
    seed: int = 0
    overwrite: bool = False

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
            (self.mode == "central" or bool(self.partitions),
             f"--mode {self.mode} needs --partitions PARTS (from 'tma-spark partition')."),
            (bool(self.out), "--out is required: the run folder."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict:
        return asdict(self)
