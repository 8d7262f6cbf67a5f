"""The session helper and real Delta Lake reads, writes, versions and time travel."""

import pytest
from pyspark.sql import SparkSession

from tma_spark import jars
from tma_spark.session import DELTA_CATALOG, DELTA_EXTENSION, configure_spark


def _opts(builder):
    return dict(builder._options)


def test_local_builder_gets_master_jars_and_delta(monkeypatch):
    for var in ("PYSPARK_GATEWAY_PORT", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    opts = _opts(configure_spark(SparkSession.Builder()))
    assert opts["spark.master"] == "local[*]"
    assert opts["spark.sql.extensions"] == DELTA_EXTENSION
    assert opts["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert opts["spark.jars"].split(",") == jars.cached_jars()


def test_nothing_forced_under_a_cluster_launcher(monkeypatch):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "16.4")
    opts = _opts(configure_spark(SparkSession.Builder()))
    assert "spark.master" not in opts and "spark.jars" not in opts and "spark.ui.enabled" not in opts
    assert opts["spark.sql.extensions"] == DELTA_EXTENSION


def test_packages_mode_and_bad_mode():
    opts = _opts(configure_spark(SparkSession.Builder(), jar_mode="packages"))
    assert opts["spark.jars.packages"] == "io.delta:delta-spark_4.2_2.13:4.4.0,io.delta:delta-storage:4.4.0"
    with pytest.raises(Exception, match="jar_mode"):
        configure_spark(SparkSession.Builder(), jar_mode="maven")


@pytest.mark.spark
def test_delta_write_read_versions_and_time_travel(spark, tmp_path):
    from delta.tables import DeltaTable

    path = str(tmp_path / "t")
    spark.range(5).write.format("delta").save(path)
    spark.range(7).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 7
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 5
    assert DeltaTable.isDeltaTable(spark, path)
    assert [r["version"] for r in DeltaTable.forPath(spark, path).history().collect()] == [1, 0]
