"""What the Spark application must allow for training, checked before any Spark job starts.

The K trainers of a round run at once, as one barrier stage (or, with ``tolerate_failures``, as K one-task
jobs), so the application needs K task slots, and settings that break barrier stages or make Spark run a
trainer twice are refused with the setting and the fix named: dynamic allocation (the default on EMR and
Dataproc) and speculation. :func:`check_cluster` is pure (the settings come as a dict); :func:`check_slots`
reads them from the session.
"""

from __future__ import annotations

import logging
import re
from typing import Dict, Mapping, Optional

from pyspark.sql import SparkSession

from ..errors import TmaSparkError

__all__ = ["check_slots", "check_cluster", "spark_conf"]

log = logging.getLogger(__name__)


def spark_conf(spark: SparkSession) -> Dict[str, str]:
    """The application's Spark settings as a plain dict (with ``spark.master``), for :func:`check_cluster`."""
    sc = spark.sparkContext
    return {"spark.master": sc.master, **dict(sc.getConf().getAll())}


def _on(conf: Mapping[str, str], key: str) -> bool:
    """A boolean Spark setting, read as Spark reads it (``true``, any case, is on; unset is off)."""
    return str(conf.get(key, "false")).strip().lower() == "true"


def _local_master(conf: Mapping[str, str]) -> bool:
    """``local`` or ``local[...]`` (not ``local-cluster``): Spark ignores dynamic allocation and speculation
    there (``Utils.isLocalMaster``, ``TaskSchedulerImpl``)."""
    master = conf.get("spark.master", "")
    return master == "local" or master.startswith("local[")


def _positive_duration(value: Optional[str]) -> bool:
    """Whether a Spark duration such as ``100`` (ms), ``30s`` or ``1min`` is set and above zero."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)", value or "")
    return value is not None and (match is None or float(match.group(1)) > 0)


def check_cluster(conf: Mapping[str, str], parallelism: int, needed: int, tolerant: bool = False,
                  lockstep: bool = False) -> None:
    """Fail before training when the platform cannot run ``needed`` trainers as tma_spark runs them.

    Pure (the Spark settings come as a dict, see :func:`spark_conf`), so it is tested without a session.

    * Dynamic allocation (``spark.dynamicAllocation.enabled``, the default on EMR and Dataproc): Spark refuses
      barrier stages under it (SPARK-24942). ``tolerant`` runs the trainers as independent one-task jobs,
      which it schedules like any job, executors being added on demand; ``lockstep`` (ddp) always needs a
      barrier stage.
    * Speculation: Spark never speculates a barrier stage, nor a one-task job unless
      ``spark.speculation.task.duration.threshold`` is set. With that threshold, ``tolerant`` trainers that
      run longer than it would get a speculative copy, which cannot tell itself from a retry (both have
      ``attemptNumber() > 0``) and would report its trainer lost; that combination is refused.
    * Slots: the K trainers run at once, so the cluster needs K task slots (``parallelism`` over
      ``spark.task.cpus``); under dynamic allocation with ``tolerant``, the most it may grow to.

    Args:
        conf: the Spark settings, ``spark.master`` included.
        parallelism: ``SparkContext.defaultParallelism`` (the cores of the executors there are now).
        needed: the number of trainers (K).
        tolerant: ``--tolerate-failures`` (independent one-task jobs instead of a barrier stage).
        lockstep: ``--mode ddp`` (a barrier stage whatever ``tolerant`` says).
    """
    cpus = int(conf.get("spark.task.cpus", "1"))
    local = _local_master(conf)
    dynamic = _on(conf, "spark.dynamicAllocation.enabled") and (
        not local or _on(conf, "spark.dynamicAllocation.testing"))
    if dynamic and (lockstep or not tolerant):
        alternative = "" if lockstep else (", or add --tolerate-failures, which runs the trainers as independent "
                                           "tasks that dynamic allocation can schedule")
        raise TmaSparkError(
            "spark.dynamicAllocation.enabled=true (the default on EMR and Dataproc), but training runs its "
            f"{needed} trainer(s) as one barrier stage, which Spark refuses under dynamic allocation. Fix: set "
            "spark.dynamicAllocation.enabled=false for this job (spark-submit --conf "
            f"spark.dynamicAllocation.enabled=false, with at least {needed} task slots){alternative}."
        )
    threshold = conf.get("spark.speculation.task.duration.threshold")
    if tolerant and not local and _on(conf, "spark.speculation") and _positive_duration(threshold):
        raise TmaSparkError(
            f"spark.speculation=true with spark.speculation.task.duration.threshold={threshold}: with "
            "--tolerate-failures every trainer is a one-task Spark job, and Spark would start a speculative copy "
            "of any trainer that runs longer than the threshold; the copy would count the trainer as lost. Fix: "
            "set spark.speculation=false (or unset the threshold) for this job, or train without "
            "--tolerate-failures (Spark never speculates barrier stages)."
        )
    if dynamic:  # tolerant: executors are added while trainers wait, up to maxExecutors
        executors, cores = conf.get("spark.dynamicAllocation.maxExecutors"), conf.get("spark.executor.cores")
        most = int(executors) * int(cores) // cpus if executors and cores else None
        if most is not None and most < needed:
            raise TmaSparkError(
                f"Training needs {needed} task slots at once (one trainer per part) but dynamic allocation can "
                f"grow to {most} (spark.dynamicAllocation.maxExecutors {executors} x spark.executor.cores {cores} "
                f"/ spark.task.cpus {cpus}). Fix: raise spark.dynamicAllocation.maxExecutors, or partition into "
                "fewer parts."
            )
        log.info("dynamic allocation: the %d trainers run as independent tasks; Spark adds executors for them on "
                 "demand (a round lasts longer while it does)", needed)
        return
    slots = parallelism // cpus
    if slots < needed:
        raise TmaSparkError(
            f"Training needs {needed} task slots at once (one barrier task per part) but the cluster has {slots} "
            f"(defaultParallelism {parallelism} / spark.task.cpus {cpus}). Fix: run with --master "
            f"local[{needed}] locally, add executors or cores (spark.executor.instances, spark.executor.cores), "
            "or partition into fewer parts."
        )


def check_slots(spark: SparkSession, needed: int, tolerant: bool = False, lockstep: bool = False) -> None:
    """Fail before training when the application cannot run ``needed`` trainers: too few task slots for a
    barrier stage of ``needed`` tasks, or settings that break it (:func:`check_cluster`)."""
    check_cluster(spark_conf(spark), spark.sparkContext.defaultParallelism, needed, tolerant, lockstep)
