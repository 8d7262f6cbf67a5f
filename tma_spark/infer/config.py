"""Typed configuration of the infer job, validated before any Spark job starts.

Each field is declared once with :func:`~tma_spark.settings.setting`: its default, help, flag and choices make
the ``tma-spark infer`` flags and the keys of a config file's ``infer`` section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError
from ..graphops.sizing import ARROW_BATCH_MB, MESSAGE_BATCH_GB, SHUFFLE_PARTITION_MB
from ..lake import LAKE_FORMATS
from ..settings import check_choices, setting

__all__ = ["InferConfig", "CHECKPOINTS"]

CHECKPOINTS = ("best", "last")


@dataclass
class InferConfig:
    """What ``tma-spark infer`` does: apply the model of the train run ``run`` to every node of ``lake``,
    write the predictions to ``out`` and exact validation/test metrics to ``RUN/eval.json``."""

    lake: str = setting(help="the lake the run was trained on (or another lake with the same feature dimension)")
    run: str = setting(help="run folder of 'tma-spark train'")
    out: str = setting(help="prediction table to write (PRED)")
    checkpoint: str = setting("best", choices=CHECKPOINTS, help="best (default) | last")
    format: str = setting("delta", choices=LAKE_FORMATS, help="table format of PRED")
    overwrite: bool = setting(False, help="replace an existing prediction table (a new Delta version; the "
                              "previous stays readable)")
    eval_negatives: Optional[int] = setting(None, help="link: random nodes each held-out edge is ranked against "
                                            "(default: the run's --eval-negatives)")
    shuffle_partition_mb: int = setting(SHUFFLE_PARTITION_MB, help="target size of one shuffle partition in MB: "
                                        "each layer's message shuffle gets ceil(2 x edges x message bytes / this) "
                                        "partitions, its node-level join ceil(nodes x row bytes / this) "
                                        "(default %(default)s)")
    message_batch_gb: float = setting(MESSAGE_BATCH_GB, help="most GB of shuffle files one message shuffle "
                                      "writes at once: a larger layer runs in batches of destination nodes, "
                                      "each batch's shuffle files freed before the next (local disk must hold "
                                      "one batch; default %(default)s)")
    arrow_batch_mb: int = setting(ARROW_BATCH_MB, help="largest Arrow batch in MB handed to a Python worker "
                                  "(spark.sql.execution.arrow.maxBytesPerBatch for the job): bounds each "
                                  "worker's data memory at a few times this, at any graph size or width "
                                  "(default %(default)s)")

    def validate(self) -> "InferConfig":
        if not (self.lake and self.run and self.out):
            raise ConfigError("infer needs --lake, --run and --out.")
        check_choices(self)
        if self.eval_negatives is not None and self.eval_negatives < 1:
            raise ConfigError(f"--eval-negatives {self.eval_negatives} must be at least 1.")
        if not self.message_batch_gb > 0:
            raise ConfigError(f"--message-batch-gb {self.message_batch_gb} must be positive (GB); it should be "
                              "well under the free space of spark.local.dir.")
        if self.shuffle_partition_mb < 1:
            raise ConfigError(f"--shuffle-partition-mb {self.shuffle_partition_mb} must be at least 1 (MB); "
                              "128-256 suits most clusters.")
        if not 1 <= self.arrow_batch_mb < 2048:
            raise ConfigError(f"--arrow-batch-mb {self.arrow_batch_mb} must be between 1 and 2047 (MB); "
                              f"the default {ARROW_BATCH_MB} suits most executors.")
        return self
