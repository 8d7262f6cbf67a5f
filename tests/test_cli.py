"""End to end through the real CLI: in-process on the shared session, and as real processes."""

import json
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
