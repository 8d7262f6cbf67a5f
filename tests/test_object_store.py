"""Lakes, partitions, run folders and predictions on ``s3a://``, against a real S3 API server on loopback
(tests/s3server.py): Spark's s3a connector for the Spark stages, pyarrow and delta-rs for the trainers, the
driver's reads and the run folder, all from the settings a user gives Spark."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "TMA_SPARK_JVM_LOG_LEVEL": "ERROR"}


def _rows(s3, key):
    try:
        text = s3.read("lake", key).decode()
    except Exception:  # not written yet
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.cluster
def test_quickstart_pipeline_with_every_path_on_s3a_in_local_cluster(s3, tmp_path):
    """The quick-start pipeline (ingest, partition, train, infer) with lake, partitions, run folder and
    predictions on s3a://, in local-cluster mode (two executor JVMs that read their parts from the store).
    Nothing is written to local disk, and no staging or temporary object is left behind."""
    from deltalake import DeltaTable

    from tma_spark import fs

    root = "s3a://lake/quick"
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "lake": f"{root}/lake", "partitions": f"{root}/parts", "run": f"{root}/run",
        "predictions": f"{root}/predictions", "spark_conf": s3.spark_conf(),
        "ingest": {"dataset": "cora"}, "partition": {"parts": 2},
        "train": {"round_seconds": 2, "max_rounds": 3, "hidden": 32}}))
    work = tmp_path / "cwd"
    work.mkdir()
    r = subprocess.run([BIN / "tma-spark", "run", "--config", config, "--master", "local-cluster[2,1,1024]"],
                       capture_output=True, text=True, env=_env(), cwd=work, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    keys = s3.keys("lake", "quick/")
    for key in ("lake/_tma_lake.json", "parts/_tma_parts.json", "parts/stats.json", "run/config.json",
                "run/model.json", "run/metrics.jsonl", "run/best.pt", "run/last.pt", "run/checkpoint.pt",
                "run/summary.json", "run/eval.json", "run/pipeline.json"):
        assert f"quick/{key}" in keys, key
    assert any(k.startswith("quick/predictions/_delta_log/") for k in keys)
    leftovers = [k for k in keys if any(p.startswith(".") or ".tmp" in p for p in k.split("/")[1:3])]
    assert not leftovers, leftovers
    assert [r["round"] for r in _rows(s3, "quick/run/metrics.jsonl")] == [1, 2, 3]
    summary = json.loads(s3.read("lake", "quick/run/summary.json"))
    assert summary["rounds"] == 3 and summary["best_val"] > 0.5
    uri, options = fs.delta_location(f"{root}/predictions")
    assert DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows == 2708
    assert os.listdir(work) == []  # no local lake, run folder or MLflow store: everything is on the store


@pytest.mark.spark
def test_killed_run_with_its_run_folder_on_s3a_resumes(spark, cli, s3, cora_lake, cora_parts):
    """A training run whose run folder is on s3a:// is SIGKILLed after two rounds; '--resume' continues it
    from the checkpoint on the store, losing at most the round in flight: every round is recorded once."""
    out = "s3a://lake/resume/run"
    args = ["train", "--lake", cora_lake, "--partitions", cora_parts, "--out", out, "-T", "1", "--hidden", "32",
            "--max-rounds", "5"]
    proc = subprocess.Popen([BIN / "tma-spark", *map(str, args), *s3.conf_args()], env=_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while len(_rows(s3, "resume/run/metrics.jsonl")) < 2:
            assert proc.poll() is None, f"train exited early with {proc.returncode}"
            assert time.monotonic() < deadline, "no 2 rounds recorded in 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, mid-run
        proc.wait()
    recorded = len(_rows(s3, "resume/run/metrics.jsonl"))
    assert "resume/run/summary.json" not in s3.keys("lake", "resume/")

    code, out_text, err = cli(*args, "--resume")
    assert code == 0, err
    summary = json.loads(out_text.strip().splitlines()[-1])
    assert summary["resumed_from_round"] >= recorded and summary["rounds"] == 5
    rows = _rows(s3, "resume/run/metrics.jsonl")
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5]
    walls = [r["wall_seconds"] for r in rows]
    assert walls == sorted(walls)  # the elapsed budget continued
    assert json.loads(s3.read("lake", "resume/run/summary.json")) == summary


@pytest.mark.spark
@pytest.mark.parametrize("case", ["wrong credentials", "missing bucket", "unreachable endpoint"])
def test_store_errors_are_clear_and_write_nothing(spark, cli, s3, case):
    """Wrong credentials, a missing bucket and an unreachable endpoint: exit status 2 before any Spark job,
    one message naming the path and the setting to fix, and nothing written anywhere."""
    bucket, conf, setting = {
        "wrong credentials": ("locked", {"access.key": "AKIAWRONGWRONGWRONG0", "secret.key": "wrong"},
                              "spark.hadoop.fs.s3a.access.key"),
        "missing bucket": ("nobucket", {}, "bucket"),
        "unreachable endpoint": ("far", {"endpoint": "http://127.0.0.1:9"}, "spark.hadoop.fs.s3a.endpoint"),
    }[case]
    flags = [a for k, v in conf.items() for a in ("--conf", f"spark.hadoop.fs.s3a.bucket.{bucket}.{k}={v}")]
    before = {b: s3.keys(b) for b in ("lake", "locked")}
    lake = f"s3a://{bucket}/lake"
    code, _, err = cli("ingest", "--dataset", "cora", "--lake", lake, *flags)
    assert code == 2, err
    message = err.strip().splitlines()[-1]
    assert lake in message and setting in message and "Fix:" in message, message
    assert "Traceback" not in err and "Py4J" not in err
    if case == "wrong credentials":  # the run folder of a train command too, before any Spark job
        code, _, err = cli("train", "--mode", "central", "--lake", "s3a://lake/none", "--out", "s3a://locked/run",
                           *flags)
        assert code == 2 and "s3a://" in err and setting in err, err
    assert {b: s3.keys(b) for b in ("lake", "locked")} == before


@pytest.mark.spark
def test_overwrite_on_s3a_replaces_the_output_whole_and_leaves_nothing_beside_it(spark, cli, s3, cora_lake):
    """On an object store a folder rename is a copy: the commit moves the marker last, so the output is the
    previous one, none, or the new one complete; nothing is left beside it."""
    out = "s3a://lake/overwrite/parts"
    for parts, extra in ((2, []), (3, ["--overwrite"])):
        code, _, err = cli("partition", "--lake", cora_lake, "--out", out, "-k", parts, *extra)
        assert code == 0, err
        assert json.loads(s3.read("lake", "overwrite/parts/_tma_parts.json"))["config"]["parts"] == parts
    keys = s3.keys("lake", "overwrite/")
    assert all(k.startswith("overwrite/parts/") for k in keys), keys
    assert spark.read.format("delta").load(f"{out}/nodes").count() == 2708


@pytest.mark.spark
def test_npz_input_on_s3a_is_read_through_the_store(spark, cli, s3, tmp_path):
    """An input file on the store (``--npz s3a://...``) is read with the same settings as the lake."""
    from tma_spark.ingest.datasets import bundled_dataset_path

    s3.client().put_object(Bucket="lake", Key="inputs/cora.npz", Body=bundled_dataset_path("cora").read_bytes())
    code, _, err = cli("ingest", "--npz", "s3a://lake/inputs/cora.npz", "--lake", tmp_path / "lake")
    assert code == 0, err
    assert json.loads((tmp_path / "lake" / "_tma_lake.json").read_text())["num_nodes"] == 2708
    code, _, err = cli("ingest", "--npz", "s3a://lake/inputs/absent.npz", "--lake", tmp_path / "lake2")
    assert code == 2 and "absent.npz does not exist" in err, err
