"""Typed configuration of the bench job, validated before any Spark job starts.

Each field is declared once with :func:`~tma_spark.settings.setting`: its default, help, flag and choices make
the ``tma-spark bench`` flags and the keys of a config file's ``bench`` section. Every method trains with the
same :class:`~tma_spark.train.TrainConfig` settings, so the shared ones reuse its choices.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Tuple

from .. import fs
from ..errors import ConfigError
from ..partition.supernodes import SUPER_METHODS
from ..settings import check_choices, default_of, names, setting
from ..train.config import MODELS, SAMPLERS, TASKS, TrainConfig

__all__ = ["BenchConfig", "METHODS", "PLAN", "previous_runs"]

METHODS = ("central", "ddp", "psgd-pa", "llcg", "random", "super")
#: method -> (train mode, partition strategy or None)
PLAN = {"central": ("central", None), "ddp": ("ddp", None), "psgd-pa": ("psgd-pa", "metis"),
        "llcg": ("llcg", "metis"), "random": ("tma", "random"), "super": ("tma", "super")}


@dataclass
class BenchConfig:
    """What ``tma-spark bench`` compares (every method gets the same settings)."""

    lake: str = setting(help="the lake every method trains on")
    out: str = setting(help="benchmark folder (BENCH)")
    methods: Tuple[str, ...] = setting(METHODS, parse=names, help="comma-separated; central is required (the "
                                       "target is 98%% of its best validation metric)")
    budget: float = setting(120.0, help="training seconds per run (default %(default)s)")
    seeds: int = setting(3, help="runs per method (default %(default)s)")
    parts: int = setting(4, short="-k", help="K: parts / trainers (default %(default)s)")
    round_seconds: float = setting(10.0, short="-T", help="T (default %(default)s)")
    task: str = setting("node", choices=TASKS, help="node (classification, accuracy) | link (prediction, MRR)")
    model: str = setting("sage", choices=MODELS, help="the GNN every method trains")
    hidden: int = setting(256, help="hidden width of every layer (default %(default)s)")
    #: not flags: every method trains with the train command's defaults
    layers: int = default_of(TrainConfig, "layers")
    dropout: float = default_of(TrainConfig, "dropout")
    lr: float = setting(0.005, help="Adam learning rate (default %(default)s)")
    sampler: str = setting("auto", choices=SAMPLERS, help="full | neighbor | auto (see 'tma-spark train --help')")
    target_fraction: float = setting(0.98, help="time to target: the target is this fraction of central's best "
                                     "validation metric (default %(default)s)")
    super_method: str = setting("lpa", choices=SUPER_METHODS, help="SuperTMA's super-nodes: lpa (label "
                                "propagation, the default of 'tma-spark partition') or metis (the authors' "
                                "choice; much faster on large graphs without GraphFrames)")
    overwrite: bool = setting(False, help="replace an existing BENCH folder")
    resume: bool = setting(False, help="keep the seeds BENCH already has (same settings) and run only the missing "
                           "ones; e.g. --seeds 2 --resume adds seed 1 in a fresh Spark application")

    def validate(self) -> "BenchConfig":
        unknown = [m for m in self.methods if m not in METHODS]
        checks = [
            (not unknown, f"--methods: {', '.join(unknown)} not supported; choose from {', '.join(METHODS)}."),
            ("central" in self.methods, "--methods must include central: the time-to-target target is 98% of "
                                        "central's best validation metric."),
            (len(set(self.methods)) == len(self.methods), "--methods lists a method twice."),
            (self.budget > 0, f"--budget {self.budget} must be positive (seconds of training per run)."),
            (self.seeds >= 1, f"--seeds {self.seeds} must be at least 1."),
            (self.parts >= 2, f"--parts {self.parts} must be at least 2."),
            (self.round_seconds > 0, f"--round-seconds {self.round_seconds} must be positive."),
            (0 < self.target_fraction <= 1, f"--target-fraction {self.target_fraction} must be in (0, 1]."),
            (not (self.overwrite and self.resume), "--overwrite and --resume contradict each other: --overwrite "
                                                   "discards BENCH, --resume keeps its completed seeds."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.train_config("central", None, fs.join(self.out, "check"), 0).validate()  # model, task, ...
        check_choices(self)
        if self.resume:
            previous_runs(self)  # a settings mismatch fails here, before Spark starts
        return self

    def settings(self) -> dict:
        """What must match for runs to be comparable (everything but where they go and how many seeds)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in ("out", "seeds", "overwrite", "resume")}

    def train_config(self, method: str, parts, out: str, seed: int) -> TrainConfig:
        """The train settings of one run of ``method``."""
        return TrainConfig(lake=self.lake, partitions=parts, out=out, task=self.task, model=self.model,
                           mode=PLAN[method][0], round_seconds=self.round_seconds, time_limit=self.budget,
                           hidden=self.hidden, layers=self.layers, dropout=self.dropout, lr=self.lr,
                           sampler=self.sampler, seed=seed, workers=self.parts)


def previous_runs(cfg: BenchConfig) -> list:
    """The runs of every seed below ``cfg.seeds`` that an earlier invocation completed in ``cfg.out`` for all
    of ``cfg.methods``, from ``results.json`` or, after a crash, ``results.partial.json``; ``[]`` when there
    are none. Raises ``ConfigError`` when they were made with other settings."""
    for name in ("results.partial.json", "results.json"):
        path = fs.join(cfg.out, name)
        try:
            saved = json.loads(fs.read_text(None, path))
            break
        except FileNotFoundError:
            continue
    else:
        return []
    before = saved.get("settings") or {k: saved["meta"].get(k) for k in cfg.settings()}
    before["methods"] = list(before["methods"])
    changed = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in cfg.settings().items() if before.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: {path} was made with other settings ({'; '.join(changed)}), so its runs "
                          "are not comparable with these. Fix: rerun with the same settings, or pass --overwrite "
                          "(or another --out) to start again.")
    runs = saved["runs"]
    complete = [s for s in range(cfg.seeds) if {r["method"] for r in runs if r["seed"] == s} >= set(cfg.methods)]
    return [r for r in runs if r["seed"] in complete]
