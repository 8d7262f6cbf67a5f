"""Shared fixtures: one real local SparkSession (with Delta) for the whole suite."""

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark():
    from tma_spark.session import configure_spark

    session = configure_spark(master="local[2]", app_name="tma_spark-tests").getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def cora_lake(spark, tmp_path_factory):
    """The bundled Cora graph ingested once into a Delta lake (read-only for tests)."""
    from tma_spark.ingest import IngestConfig, ingest

    path = str(tmp_path_factory.mktemp("cora") / "lake")
    ingest(spark, IngestConfig(lake=path, dataset="cora"))
    return path


@pytest.fixture(scope="session")
def cora_parts(spark, cora_lake, tmp_path_factory):
    """Cora in K = 2 RandomTMA parts (read-only for tests)."""
    from tma_spark.partition import PartitionConfig, partition

    out = str(tmp_path_factory.mktemp("parts") / "p2")
    partition(spark, PartitionConfig(lake=cora_lake, out=out, parts=2, seed=0))
    return out


@pytest.fixture(scope="session")
def s3(spark):
    """A real S3 API server on loopback (tests/s3server.py) with buckets ``lake`` and ``locked``; the shared
    session (and this process's pyarrow side) reaches it through the ``fs.s3a.*`` settings a user gives Spark."""
    from s3server import start_s3_server
    from tma_spark import fs

    server = start_s3_server(buckets=("lake", "locked"))
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in server.spark_conf().items():
        hadoop.set(key[len("spark.hadoop."):], value)
    fs.use_spark_settings(spark)
    yield server
    server.stop()


@pytest.fixture
def cli(spark, capsys):
    """Run ``tma-spark ARGS`` in-process on the shared session; return (exit code, stdout, stderr)."""
    from tma_spark.cli import main

    def run(*argv):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code
        finally:
            # main() logs to the captured stderr of this test, which pytest closes afterwards.
            logging.getLogger().handlers.clear()
        out, err = capsys.readouterr()
        return code, out, err

    return run
