"""MLflow tracking on a real local file store: failures are logged and retried, never fatal; a resumed training
run continues its MLflow run; URIs are logged without credentials."""

import json
import logging
import os

import pytest

from tma_spark.tracking import Tracker, redact_uri

pytest.importorskip("mlflow")


@pytest.mark.parametrize("uri,expected", [
    ("https://user:pass@mlflow.example.com/path", "https://***@mlflow.example.com/path"),
    ("http://token@host:5000", "http://***@host:5000"),
    ("https://u:p@ss@host/x?y=1@2", "https://***@host/x?y=1@2"),  # an unencoded @ in the password
    ("http://host:5000/a@b", "http://host:5000/a@b"),  # an @ in the path is not user information
    ("file:/tmp/mlruns", "file:/tmp/mlruns"),
    ("databricks", "databricks"),
    ("sqlite:///m.db", "sqlite:///m.db"),
])
def test_redact_uri_drops_credentials(uri, expected):
    assert redact_uri(uri) == expected


def _client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"file:{store}")


def _run_folder(store, tracker):
    return next(str(p) for p in store.glob(f"*/{tracker.run_id}"))


def test_failed_calls_are_warned_once_per_kind_and_resent_at_the_end(tmp_path, caplog):
    """The store loses the run mid-run (as a tracking server that is down would): nothing raises, one warning
    per kind of call, and the metrics arrive, with their steps, when the run ends."""
    store = tmp_path / "mlruns"
    tracker = Tracker({"tracking_uri": f"file:{store}", "experiment": "e"})
    tracker.start("r", {"hidden": 16})
    tracker.log_round({"round": 1, "val": 0.5, "test": 0.4, "steps": [3, 4], "loss": [1.0, 2.0]})
    folder = _run_folder(store, tracker)
    os.rename(folder, f"{folder}.away")
    (tmp_path / "a.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="tma_spark.tracking"):
        for r in (2, 3):  # round 2 fails; round 3 is kept without trying: a server that is down costs one timeout
            tracker.log_round({"round": r, "val": 0.5 + r / 10, "test": 0.4, "steps": [3, 4], "loss": [1.0, 2.0]})
        tracker.log_artifacts([(str(tmp_path / "a.txt"), "run")])
        assert not tracker.flush()  # an explicit retry, still down: everything is kept for later
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("logging metrics or parameters failed" in w for w in warnings) == 1, warnings  # once per kind
    assert any("3 tracking call(s) still unsent" in w for w in warnings), warnings
    os.rename(f"{folder}.away", folder)
    tracker.log_metrics({"val": 0.9}, step=4)  # back, but within the pause: kept too
    client = _client(store)
    assert [m.step for m in client.get_metric_history(tracker.run_id, "val")] == [1]
    tracker.end(ok=True)
    history = client.get_metric_history(tracker.run_id, "val")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7), (3, 0.8), (4, 0.9)]
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert [f.path for f in client.list_artifacts(tracker.run_id, "run")] == ["run/a.txt"]


def test_a_run_that_cannot_be_created_is_created_by_the_retry(tmp_path, caplog):
    store = tmp_path / "mlruns"
    store.write_text("not a folder")  # the store cannot be created: start fails
    tracker = Tracker({"tracking_uri": f"file:{store}", "experiment": "e"})
    with caplog.at_level(logging.WARNING, logger="tma_spark.tracking"):
        tracker.start("r", {"hidden": 16})
        tracker.log_metrics({"val": 0.5}, step=1)
    assert tracker.run_id is None and tracker.info() is None
    assert any("starting the run failed" in r.getMessage() for r in caplog.records)
    store.unlink()
    tracker.end(ok=True)
    assert [m.value for m in _client(store).get_metric_history(tracker.run_id, "val")] == [0.5]
    assert tracker.info()["run_id"] == tracker.run_id


def test_start_with_a_run_id_continues_that_run(tmp_path):
    store = tmp_path / "mlruns"
    first = Tracker({"tracking_uri": f"file:{store}", "experiment": "e"})
    first.start("r", {"hidden": 16, "time_limit": 60})
    first.log_metrics({"val": 0.5}, step=1)
    first.end(ok=False)  # e.g. the driver died
    second = Tracker({"tracking_uri": f"file:{store}"})
    second.start("r", {"hidden": 16, "time_limit": 120, "resume": True}, run_id=first.run_id)
    second.log_metrics({"val": 0.6}, step=2)
    second.end(ok=True)
    client = _client(store)
    run = client.get_run(first.run_id)
    assert second.run_id == first.run_id and run.info.status == "FINISHED"
    assert run.data.params == {"hidden": "16", "time_limit": "60", "resume": "True"}  # first values stand
    assert [m.step for m in client.get_metric_history(first.run_id, "val")] == [1, 2]
    third = Tracker({"tracking_uri": f"file:{store}"})
    third.start("r", {}, run_id="0" * 32)  # not in this store: a new run
    assert third.run_id not in (None, first.run_id)


@pytest.mark.spark
def test_training_survives_a_failing_store_and_the_metrics_arrive_when_it_is_back(spark, cora_lake, cora_parts,
                                                                                  tmp_path, caplog):
    """A store that fails during the rounds costs no training: the failure is logged and the metrics arrive
    when it is back; the run folder records the MLflow run (``RUN/tracking.json``) for ``--resume``."""
    from mlflow.tracking import MlflowClient

    from tma_spark.pipeline import train_tracked
    from tma_spark.train import TrainConfig

    store, out = tmp_path / "mlruns", str(tmp_path / "run")
    cfg = TrainConfig(lake=cora_lake, partitions=cora_parts, out=out, round_seconds=1, time_limit=60,
                      max_rounds=1, hidden=16)
    tracker = Tracker({"tracking_uri": f"file:{store}", "experiment": "e"})
    tracker.start("run", {"hidden": 16})  # started by the caller, as `tma-spark run` does
    folder = _run_folder(store, tracker)
    os.rename(folder, f"{folder}.away")  # the store fails from round 1 on
    with caplog.at_level(logging.WARNING, logger="tma_spark.tracking"):
        summary = train_tracked(spark, cfg, tracker)
    assert summary["rounds"] == 1
    assert any("logging metrics or parameters failed" in r.getMessage() for r in caplog.records)
    os.rename(f"{folder}.away", folder)
    tracker.end(ok=True)
    client = MlflowClient(tracking_uri=f"file:{store}")
    assert [m.step for m in client.get_metric_history(tracker.run_id, "val")] == [1]
    assert "final_test" in client.get_run(tracker.run_id).data.metrics
    assert json.load(open(os.path.join(out, "tracking.json")))["run_id"] == tracker.run_id  # for --resume
    # --resume continuing this MLflow run: tests/test_configfile.py::test_run_pipeline_end_to_end_with_mlflow
