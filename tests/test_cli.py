"""End to end through the real CLI: in-process on the shared session, and as real processes."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import leftovers

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_ingest_then_info_json(cli, tmp_path):
    lake = tmp_path / "lake"
    code, _, err = cli("ingest", "--dataset", "cora", "--lake", lake)
    assert code == 0, err
    code, out, _ = cli("info", "--lake", lake, "--json")
    s = json.loads(out)
    assert (s["nodes"], s["edges"], s["feature_dim"], s["classes"]) == (2708, 5278, 1433, 7)
    assert s["splits"] == {"train": 1625, "val": 542, "test": 541}
    assert s["format"] == "delta" and s["table_versions"] == {"nodes": 0, "edges": 0}
    assert s["degree"]["max"] == 168 and s["isolated_nodes"] == 0 and s["self_loops"] == 0
    code, out, _ = cli("info", "--lake", lake)
    assert "nodes           2,708" in out and "degree" in out


def test_existing_lake_refused_then_overwritten(cli, tmp_path):
    lake = tmp_path / "lake"
    assert cli("ingest", "--dataset", "cora", "--lake", lake)[0] == 0
    code, _, err = cli("ingest", "--dataset", "cora", "--lake", lake)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert cli("ingest", "--synthetic", "--nodes", "500", "--edges", "2e3", "--communities", "4",
               "--feature-dim", "8", "--lake", lake, "--overwrite")[0] == 0
    code, out, _ = cli("info", "--lake", lake, "--json")
    s = json.loads(out)
    assert (s["nodes"], s["edges"], s["feature_dim"], s["classes"]) == (500, 2000, 8, 4)
    assert leftovers(lake) == ["lake"]


@pytest.mark.parametrize("argv,fragment", [
    (["ingest", "--lake", "L"], "exactly one source"),
    (["ingest", "--lake", "L", "--dataset", "cora", "--npz", "x.npz"], "exactly one source"),
    (["ingest", "--lake", "L", "--synthetic", "--nodes", "ten", "--edges", "5"], "--nodes 'ten' is not a number"),
    (["ingest", "--lake", "L", "--synthetic", "--nodes", "100", "--edges", "5", "--homophily", "2"], "--homophily"),
    (["ingest", "--lake", "L", "--dataset", "cora", "--split", "0.5,0.5"], "three fractions"),
    (["info", "--lake", "/nonexistent/lake"], "does not exist"),
])
def test_config_errors_exit_2_with_message(cli, tmp_path, argv, fragment):
    argv = [str(tmp_path / a) if a == "L" else a for a in argv]
    code, _, err = cli(*argv)
    assert code == 2 and fragment in err
    assert not (tmp_path / "L").exists()


def test_info_on_a_folder_that_is_not_a_lake(cli, tmp_path):
    code, _, err = cli("info", "--lake", tmp_path)
    assert code == 2 and "is not a tma_spark lake" in err


def test_console_script_and_spark_submit_job_behave_alike(tmp_path):
    """`tma-spark ingest` and `spark-submit jobs/ingest.py` with the same arguments give the same lake."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--synthetic", "--nodes", "300", "--edges", "1000", "--feature-dim", "4", "--communities", "3", "--seed", "9"]
    r = subprocess.run([BIN / "tma-spark", "ingest", *args, "--lake", a], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    jar_cp = subprocess.run([BIN / "tma-spark", "jars", "--classpath"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run([BIN / "spark-submit", "--master", "local[2]", "--jars", jar_cp, REPO / "jobs" / "ingest.py",
                        *args, "--lake", b], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([BIN / "spark-submit", "--master", "local[2]", "--jars", jar_cp, REPO / "jobs" / "info.py",
                        "--lake", b, "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["edges"] == 1000
    # bad input through the console script: clear message, exit status 2, nothing written
    r = subprocess.run([BIN / "tma-spark", "ingest", "--lake", tmp_path / "c", "--npz", tmp_path / "missing.npz"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "missing.npz does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c").exists()
    # both lakes hold the same edges
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    ea = spark.read.format("delta").load(str(a / "edges"))
    eb = spark.read.format("delta").load(str(b / "edges"))
    assert ea.count() == 1000 and ea.exceptAll(eb).count() == 0


# -- a JVM out of memory: one line naming the step, the size and the setting (pure: no Spark) -----------------

DRIVER_HEAP = ("An error occurred while calling o259.collectToPython.\n: java.lang.OutOfMemoryError: Java heap space\n"
               "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n")
LOCAL_TASK = ("An error occurred while calling o259.collectToPython.\n: org.apache.spark.SparkException: Job aborted due "
              "to stage failure: Task 6 in stage 1.0 failed 1 times, most recent failure: Lost task 6.0 in stage 1.0 "
              "(TID 15) (localhost executor driver): org.apache.spark.memory.SparkOutOfMemoryError: "
              "[UNABLE_TO_ACQUIRE_MEMORY] Unable to acquire 34800 bytes of memory, got 0. SQLSTATE: 53200\n"
              "\tat org.apache.spark.memory.MemoryConsumer.throwOom(MemoryConsumer.java:157)\n")
EXECUTOR = ("org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 7.0 failed 4 times, "
            "most recent failure: Lost task 3.3 in stage 7.0 (TID 91) (10.0.1.17 executor 4): "
            "java.lang.OutOfMemoryError: GC overhead limit exceeded\n\tat scala.collection.mutable.ArrayBuffer")


@pytest.mark.parametrize("text,conf,exit_status,fragments", [
    (DRIVER_HEAP, {"spark.driver.memory": "4g"}, None,
     ["in the driver JVM (java.lang.OutOfMemoryError: Java heap space)", "spark.driver.memory is 4g",
      "--conf spark.driver.memory=8g", "--driver-memory 8g"]),
    (LOCAL_TASK, {"spark.driver.memory": "4g"}, None,
     ["in a task in the driver JVM (local mode", "[UNABLE_TO_ACQUIRE_MEMORY]", "--conf spark.driver.memory=8g"]),
    (EXECUTOR, {"spark.driver.memory": "4g", "spark.executor.memory": "2g"}, None,
     ["in executor 4 (java.lang.OutOfMemoryError: GC overhead limit exceeded)", "spark.executor.memory is 2g",
      "--conf spark.executor.memory=4g", "--executor-memory 4g"]),
    (EXECUTOR, {}, None, ["spark.executor.memory is unset (Spark's default, 1g)", "spark.executor.memory=2g"]),
    ("Job aborted due to stage failure: Task 0 in stage 2.0 failed 4 times, most recent failure: ExecutorLostFailure "
     "(executor 2 exited caused by one of the running tasks) Reason: java.lang.OutOfMemoryError: Java heap space",
     {"spark.executor.memory": "8g"}, None, ["in executor 2 (java.lang.OutOfMemoryError", "spark.executor.memory=16g"]),
    ("Py4JJavaError: <str() failed: Py4JNetworkError>", {"spark.driver.memory": "512m"}, 52,
     ["in the driver JVM (it exited with status 52", "spark.driver.memory is 512m", "spark.driver.memory=1g"]),
])
def test_out_of_memory_errors_become_one_line_naming_the_setting(text, conf, exit_status, fragments):
    from tma_spark.errors import out_of_memory_message

    message = out_of_memory_message(text, "ingest", conf, step="validating nodes",
                                    size="34,493 nodes x 8,415 features (1.16 GB as dense float32)",
                                    jvm_exit_status=exit_status)
    assert message.startswith("tma-spark ingest ran out of memory in ") and "\n" not in message
    assert "at step 'validating nodes'; input: 34,493 nodes x 8,415 features (1.16 GB" in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("text,exit_status", [
    ("java.io.FileNotFoundException: /data/x.parquet", None),
    ("Py4JJavaError: <str() failed: Py4JNetworkError>", 1),  # the JVM died, but not of memory
    ("org.apache.spark.SparkException: Job aborted: Lost task 0.0 in stage 1.0 (TID 1) (h executor 1): "
     "java.lang.ArithmeticException", None),
])
def test_other_errors_are_not_called_out_of_memory(text, exit_status):
    from tma_spark.errors import out_of_memory_message

    assert out_of_memory_message(text, "partition", {}, jvm_exit_status=exit_status) is None


@pytest.mark.parametrize("value,doubled", [("4g", "8g"), ("512m", "1g"), ("1536m", "3g"), ("3.5g", "7g"),
                                           ("700m", "1400m"), ("2048k", "4m"), ("lots", "2x lots")])
def test_the_suggested_memory_is_twice_the_current(value, doubled):
    from tma_spark.errors import _doubled

    assert _doubled(value) == doubled


def test_main_prints_one_line_and_exits_3_on_an_out_of_memory_error(monkeypatch, capsys):
    from tma_spark import cli

    def run(argv):
        cli._setup_logging(cli.build_parser().parse_args(argv))
        logging.getLogger("tma_spark.ingest.job").info("validating nodes")
        raise RuntimeError(LOCAL_TASK)

    monkeypatch.setattr(cli, "run", run)
    try:
        with pytest.raises(SystemExit) as info:
            cli.main(["ingest", "--lake", "L", "--dataset", "cora"])
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert info.value.code == 3 and "Traceback" not in err
    line = [e for e in err.splitlines() if "ERROR" in e]
    assert len(line) == 1 and "tma-spark ingest ran out of memory in a task in the driver JVM" in line[0]
    assert "at step 'validating nodes'" in line[0] and "--conf spark.driver.memory=" in line[0]
    monkeypatch.setattr(cli, "run", lambda argv: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match="boom"):  # anything else is not hidden
        cli.main(["info", "--lake", "L"])
