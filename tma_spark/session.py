"""SparkSession helper, in the style of Delta's ``configure_spark_with_delta_pip``.

``configure_spark(builder)`` takes a builder (or makes one) and returns it with
Delta's SQL extension and catalog set, and, when tma_spark starts Spark itself,
the Delta jars and small-machine defaults. When Spark was started for us
(``spark-submit``, ``pyspark`` shell, Databricks), the master and the jars are
left to the cluster: nothing is forced.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Optional

from pyspark.sql import SparkSession

from . import jars as jars_mod
from .errors import TmaSparkError

__all__ = ["configure_spark", "get_spark", "running_under_cluster_launcher"]

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def running_under_cluster_launcher() -> bool:
    """True when the JVM was started by spark-submit, a pyspark shell or Databricks.

    Then ``spark.master`` and the classpath come from the launcher and we must
    not override them.
    """
    return bool(
        os.environ.get("PYSPARK_GATEWAY_PORT")
        or os.environ.get("DATABRICKS_RUNTIME_VERSION")
        or SparkSession.getActiveSession() is not None
    )


def configure_spark(
    builder: Optional[SparkSession.Builder] = None,
    *,
    master: Optional[str] = None,
    app_name: str = "tma_spark",
    jar_mode: str = "auto",
    local_defaults: bool = True,
    object_store: bool = False,
) -> SparkSession.Builder:
    """Return ``builder`` configured for Delta (and GraphFrames when its jars are present).

    Args:
        builder: a ``SparkSession.Builder``; a new one when None.
        master: Spark master. Default: ``local[*]`` when tma_spark launches
            Spark, untouched under spark-submit or Databricks.
        app_name: application name.
        jar_mode: ``"auto"`` (cached jars from :mod:`tma_spark.jars`, fetched
            with Maven on first use; nothing when a launcher started Spark),
            ``"packages"`` (``spark.jars.packages``, resolved by Spark's Ivy),
            or ``"none"`` (jars are already on the classpath).
        local_defaults: small-machine settings (few shuffle partitions, no UI)
            when tma_spark launches Spark itself.
        object_store: a path of the job is on ``s3a://``: fetch Spark's s3a connector when it is not cached
            (otherwise it is used when cached, :mod:`tma_spark.jars`).
    """
    if jar_mode not in ("auto", "packages", "none"):
        raise TmaSparkError(f"jar_mode={jar_mode!r} is not one of 'auto', 'packages', 'none'.")
    builder = builder if builder is not None else SparkSession.builder
    builder = builder.appName(app_name)
    builder = builder.config("spark.sql.extensions", DELTA_EXTENSION)
    builder = builder.config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    launched = running_under_cluster_launcher()
    if master is not None:
        builder = builder.master(master)
    elif not launched:
        builder = builder.master(os.environ.get("TMA_SPARK_MASTER", "local[*]"))
    if jar_mode == "packages":
        builder = builder.config("spark.jars.packages", ",".join(jars_mod.maven_coordinates(s3=object_store)))
    elif jar_mode == "auto" and not launched:
        builder = builder.config("spark.jars", ",".join(jars_mod.fetch_jars()))
        s3 = jars_mod.fetch_jars(s3=True) if object_store else jars_mod.cached_jars(s3=True)
        if s3:  # on the class path of every JVM of this machine: the 690 MB bundle is not copied per executor
            connector = os.pathsep.join(j for j in s3 if j not in jars_mod.cached_jars())
            builder = builder.config("spark.driver.extraClassPath", connector)
            builder = builder.config("spark.executor.extraClassPath", connector)
    if not launched:
        # Python workers must run the interpreter that runs tma_spark (not whatever 'python3' is on PATH),
        # and a local master needs no routable address.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if local_defaults and not launched:
        builder = (
            builder.config("spark.driver.memory", os.environ.get("TMA_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", os.environ.get("TMA_SPARK_SHUFFLE_PARTITIONS", "8"))
            .config("spark.databricks.delta.snapshotPartitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=WARN")
        )
    return builder


def get_spark(master: Optional[str] = None, app_name: str = "tma_spark", jar_mode: str = "auto",
              quiet: bool = False, conf: Optional[Mapping[str, str]] = None,
              object_store: bool = False) -> SparkSession:
    """Get or create a session configured by :func:`configure_spark`, with the Spark settings ``conf``
    (``tma-spark --conf``), and capture its object-store settings for code outside Spark (:func:`fs.use_spark_settings`).

    Spark's console progress bar shows long stages in an interactive run; ``quiet`` (for schedulers)
    turns it off. On a session someone else started, only ``spark.hadoop.*`` settings of ``conf`` can still
    apply (they are set on its Hadoop configuration); the others are logged as ignored.
    """
    from . import fs

    conf = dict(conf or {})
    active = SparkSession.getActiveSession()
    if active is None:
        builder = configure_spark(master=master, app_name=app_name, jar_mode=jar_mode, object_store=object_store)
        builder = builder.config("spark.ui.showConsoleProgress", "false" if quiet else "true")
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(os.environ.get("TMA_SPARK_JVM_LOG_LEVEL", "ERROR"))
    else:
        spark = active
        ignored = sorted(k for k in conf if not k.startswith("spark.hadoop."))
        if ignored:
            log.warning("--conf %s ignored: Spark was already started (give them to spark-submit or the cluster)",
                        ", ".join(ignored))
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in fs.hadoop_keys(conf).items():
        hadoop.set(key, value)
    fs.use_spark_settings(spark)
    return spark
