"""The JVM jars tma_spark needs, resolved once into a local cache.

Delta Lake is a JVM library: the ``delta-spark`` Python package alone does not
work. We fetch exactly two jars (``delta-spark_4.2_2.13`` and ``delta-storage``)
with Maven into ``~/.cache/tma_spark/jars`` (override: ``TMA_SPARK_JAR_DIR``)
and put them on ``spark.jars``. After the first fetch nothing is downloaded
again, so sessions start offline.

Why not ``spark.jars.packages`` (what ``configure_spark_with_delta_pip`` does)?
Ivy resolves Delta 4.4's whole dependency tree (33 jars, including Hadoop,
Parquet, Jackson and log4j versions that differ from the ones Spark ships) and
puts them ahead of Spark's own; only the two jars above are needed. Ivy also
re-resolves on every session start. ``jar_mode="packages"`` is still available.

Object stores: Spark's ``s3a://`` connector is ``hadoop-aws`` (the same version as Spark's Hadoop) with the
AWS SDK v2 bundle and the S3 analytics accelerator that this Hadoop version was built against
(:func:`s3_artifacts`). The bundle is about 690 MB, so these jars are fetched only when asked for
(``tma-spark jars --fetch --s3``, ``scripts/setup.sh``, or the first run with an ``s3a://`` path); once cached
they are put on the driver's and executors' class path (not ``spark.jars``: nothing is copied per executor).

GraphFrames (``io.graphframes:graphframes-spark4_2.13``) would be listed here
too, but its artifacts are not on the Maven Central reachable from this
project's machines; see :mod:`tma_spark.graphframes_support`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

from .errors import TmaSparkError

__all__ = ["DELTA_ARTIFACTS", "s3_artifacts", "spark_hadoop_version", "jar_dir", "cached_jars", "fetch_jars",
           "maven_coordinates"]

log = logging.getLogger(__name__)

DELTA_VERSION = "4.4.0"
SCALA_BINARY = "2.13"
SPARK_MINOR = "4.2"

#: Maven coordinates (group, artifact, version) of the jars put on ``spark.jars``.
DELTA_ARTIFACTS = [
    ("io.delta", f"delta-spark_{SPARK_MINOR}_{SCALA_BINARY}", DELTA_VERSION),
    ("io.delta", "delta-storage", DELTA_VERSION),
]

#: For each Hadoop version: the AWS SDK v2 bundle and analytics accelerator its ``hadoop-aws`` was built with
#: (``hadoop-project`` POM: ``aws-java-sdk-v2.version``, ``amazon-s3-analyticsaccelerator-s3.version``).
_S3_DEPENDENCIES = {"3.5.0": ("2.35.4", "1.3.1")}


def spark_hadoop_version() -> str:
    """The Hadoop version of the installed pyspark (from its ``hadoop-client-api`` jar)."""
    import pyspark

    folder = Path(pyspark.__file__).parent / "jars"
    for jar in sorted(folder.glob("hadoop-client-api-*.jar")):
        return jar.name[len("hadoop-client-api-"):-len(".jar")]
    raise TmaSparkError(f"Cannot tell Spark's Hadoop version: no hadoop-client-api jar in {folder}.")


def s3_artifacts() -> List[tuple]:
    """Maven coordinates (group, artifact, version) of Spark's ``s3a://`` connector for this pyspark."""
    hadoop = spark_hadoop_version()
    if hadoop not in _S3_DEPENDENCIES:
        raise TmaSparkError(f"tma_spark knows the s3a connector's dependencies for Hadoop "
                            f"{', '.join(_S3_DEPENDENCIES)}, but this pyspark has Hadoop {hadoop}. Fix: install the "
                            f"pyspark of requirements.txt, or put org.apache.hadoop:hadoop-aws:{hadoop} and the "
                            "AWS SDK bundle it needs on the class path yourself (spark.driver.extraClassPath).")
    sdk, accelerator = _S3_DEPENDENCIES[hadoop]
    return [("org.apache.hadoop", "hadoop-aws", hadoop), ("software.amazon.awssdk", "bundle", sdk),
            ("software.amazon.s3.analyticsaccelerator", "analyticsaccelerator-s3", accelerator)]


def _artifacts(s3: bool) -> List[tuple]:
    return DELTA_ARTIFACTS + (s3_artifacts() if s3 else [])


def maven_coordinates(s3: bool = False) -> List[str]:
    """``group:artifact:version`` strings, e.g. for ``spark-submit --packages``."""
    return [f"{g}:{a}:{v}" for g, a, v in _artifacts(s3)]


def jar_dir() -> Path:
    """Directory holding the cached jars."""
    default = Path.home() / ".cache" / "tma_spark" / "jars"
    return Path(os.environ.get("TMA_SPARK_JAR_DIR", default))


def _jar_path(artifact: str, version: str) -> Path:
    return jar_dir() / f"{artifact}-{version}.jar"


def cached_jars(s3: bool = False) -> List[str] | None:
    """Paths of the Delta jars (and with ``s3`` the s3a connector's), or None if any is missing from the cache."""
    paths = [_jar_path(a, v) for _, a, v in _artifacts(s3)]
    if all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return [str(p) for p in paths]
    return None


def fetch_jars(s3: bool = False) -> List[str]:
    """Download the Delta jars (and with ``s3`` the s3a connector's) with Maven (``mvn dependency:copy``) if not
    cached.

    Maven downloads into its own repository (``~/.m2``) and copies the jar into
    :func:`jar_dir`; a jar is copied under a temporary name and renamed, so an
    interrupted fetch never leaves a truncated jar behind.
    """
    have = cached_jars(s3)
    if have:
        return have
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TmaSparkError(
            f"Delta Lake jars are not in {jar_dir()} and Maven ('mvn') is not installed to fetch them. "
            "Fix: install Maven and run 'tma-spark jars --fetch', or copy "
            + ", ".join(f"{a}-{v}.jar" for _, a, v in _artifacts(s3))
            + " into that directory (TMA_SPARK_JAR_DIR), or use jar_mode='packages'."
        )
    target = jar_dir()
    target.mkdir(parents=True, exist_ok=True)
    for group, artifact, version in _artifacts(s3):
        final = _jar_path(artifact, version)
        if final.is_file():
            continue
        staging = target / f".staging-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        log.info("fetching %s:%s:%s with Maven", group, artifact, version)
        proc = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={group}:{artifact}:{version}",
             f"-DoutputDirectory={staging}"],
            capture_output=True, text=True,
        )
        fetched = staging / final.name
        if proc.returncode != 0 or not fetched.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise TmaSparkError(
                f"Maven could not fetch {group}:{artifact}:{version} (exit {proc.returncode}): "
                f"{(proc.stdout + proc.stderr).strip()[-800:]}\n"
                "Fix: check that Maven Central is reachable (or a mirror is set in ~/.m2/settings.xml), then retry."
            )
        os.replace(fetched, final)
        shutil.rmtree(staging, ignore_errors=True)
    return cached_jars(s3) or []
