"""The train job: barrier-mode rounds on real Spark with real PyG training, local and local-cluster."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.partition import PartitionConfig, partition
from tma_spark.train import TrainConfig, train
from tma_spark.train.models import MODELS, build_model

pytestmark = pytest.mark.spark
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cora_parts(spark, cora_lake, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("parts") / "p2")
    partition(spark, PartitionConfig(lake=cora_lake, out=out, parts=2, seed=0))
    return out


@pytest.mark.parametrize("kind", MODELS)
def test_models_forward_shapes_and_seeded_init(kind):
    m = build_model(kind, 5, 8, 3, seed=1)
    x = torch.randn(4, 5)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert m(x, ei).shape == (4, 3)
    again = build_model(kind, 5, 8, 3, seed=1).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in m.state_dict().items())


def test_two_round_barrier_run_writes_a_complete_run_folder(spark, cora_lake, cora_parts, tmp_path):
    out = tmp_path / "run"
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(out), round_seconds=2,
                                 time_limit=60, max_rounds=2, hidden=32))
    assert sorted(os.listdir(out)) == ["best.pt", "config.json", "last.pt", "metrics.jsonl", "summary.json"]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert all(len(r["steps"]) == 2 and min(r["steps"]) >= 1 for r in rows)
    assert rows[1]["wall_seconds"] > rows[0]["wall_seconds"] >= 2
    for key in ("task", "metric", "best_val", "test", "rounds", "wall_seconds", "time_to_best_seconds", "mode",
                "parts"):
        assert key in s
    assert s["rounds"] == 2 and s["parts"] == 2 and s["mode"] == "tma" and s["metric"] == "accuracy"
    assert s["best_val"] > 0.5  # far above chance (1/7) after a few seconds of training
    state = torch.load(out / "best.pt", weights_only=True)
    model = build_model("sage", 1433, 32, 7)
    model.load_state_dict(state)
    assert json.loads((out / "summary.json").read_text()) == s


def test_central_mode_and_existing_run_folder(spark, cora_lake, tmp_path):
    out = str(tmp_path / "run")
    s = train(spark, TrainConfig(lake=cora_lake, out=out, mode="central", round_seconds=2, max_rounds=1, hidden=32))
    assert s["parts"] == 1 and s["mode"] == "central" and s["best_val"] > 0.4
    with pytest.raises(TmaSparkError, match="already exists"):
        train(spark, TrainConfig(lake=cora_lake, out=out, mode="central", max_rounds=1))


def test_not_enough_slots_fails_before_training(spark, cora_lake, tmp_path):
    parts = str(tmp_path / "p8")
    partition(spark, PartitionConfig(lake=cora_lake, out=parts, parts=8))
    with pytest.raises(TmaSparkError, match=r"needs 8 task slots .* has 2 .*local\[8\]"):
        train(spark, TrainConfig(lake=cora_lake, partitions=parts, out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_partitions_from_another_lake_and_psgd_pa_on_random_parts(spark, cora_lake, cora_parts, tmp_path):
    from tma_spark.config import IngestConfig
    from tma_spark.ingest import ingest

    other = str(tmp_path / "other")
    ingest(spark, IngestConfig(lake=other, dataset="cora"))
    with pytest.raises(TmaSparkError, match="were made from lake"):
        train(spark, TrainConfig(lake=other, partitions=cora_parts, out=str(tmp_path / "r1")))
    with pytest.raises(TmaSparkError, match="--mode psgd-pa trains on METIS parts"):
        train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(tmp_path / "r2"), mode="psgd-pa"))


@pytest.mark.parametrize("kwargs,fragment", [
    ({"mode": "ddp"}, "--mode 'ddp' is not one of"),
    ({"model": "gin"}, "--model 'gin' is not one of"),
    ({"round_seconds": 0}, "--round-seconds 0 must be positive"),
    ({"time_limit": -5}, "--time-limit -5 must be positive"),
    ({"partitions": None}, "--mode tma needs --partitions"),
])
def test_bad_train_config(kwargs, fragment, tmp_path):
    base = {"lake": "x", "partitions": "p", "out": str(tmp_path / "r")}
    with pytest.raises(TmaSparkError) as info:
        TrainConfig(**{**base, **kwargs}).validate()
    assert fragment in str(info.value)


@pytest.mark.cluster
def test_two_rounds_in_local_cluster_mode(cora_lake, cora_parts, tmp_path):
    """Two executor JVMs (local-cluster[2,1,1024]): the barrier stage spans separate processes."""
    out = tmp_path / "run"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    r = subprocess.run([BIN / "tma-spark", "train", "--master", "local-cluster[2,1,1024]", "--lake", cora_lake,
                        "--partitions", cora_parts, "--out", out, "--round-seconds", "2", "--max-rounds", "2",
                        "--hidden", "32"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["best_val"] > 0.5
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["steps"]) == 2 for r in rows)
