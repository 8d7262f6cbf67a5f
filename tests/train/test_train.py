"""The train job: barrier-mode rounds on real Spark with real PyG training, local and local-cluster."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.partition import PartitionConfig, partition
from tma_spark.train import TrainConfig, train
from tma_spark.train.contract import ModelSpec, Source, TrainerSpec
from tma_spark.train.models import MODELS, build_model

pytestmark = pytest.mark.spark
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", MODELS)
def test_models_forward_shapes_and_seeded_init(kind):
    m = build_model(kind, 5, 8, 3, seed=1)
    x = torch.randn(4, 5)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert m(x, ei).shape == (4, 3)
    again = build_model(kind, 5, 8, 3, seed=1).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in m.state_dict().items())


def test_the_driver_keeps_to_one_torch_thread_beside_local_trainers_and_restores_torch_after():
    from concurrent.futures import ThreadPoolExecutor

    from tma_spark.train.driver import _driver_torch_threads

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with _driver_torch_threads("local-cluster[4,1,1024]"):
            with ThreadPoolExecutor(1) as pool:  # as the evaluation thread, started during the run
                assert torch.get_num_threads() == 1 and pool.submit(torch.get_num_threads).result() == 1
        assert torch.get_num_threads() == 3
        with _driver_torch_threads("spark://head:7077"):  # on a cluster the driver has its own machine
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_two_round_barrier_run_writes_a_complete_run_folder(spark, cora_lake, cora_parts, tmp_path):
    out = tmp_path / "run"
    exchanges = set(glob.glob(os.path.join(tempfile.gettempdir(), "tma-spark-weights-*")))
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(out), round_seconds=2,
                                 time_limit=60, max_rounds=2, hidden=32))
    assert sorted(os.listdir(out)) == ["best.pt", "checkpoint.prev.pt", "checkpoint.pt", "config.json", "curves.png",
                                  "last.pt", "metrics.jsonl", "model.json", "summary.json"]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert all(len(r["steps"]) == 2 and min(r["steps"]) >= 1 for r in rows)
    assert rows[1]["wall_seconds"] > rows[0]["wall_seconds"] >= 2
    # the rounds' wall times tile the run: nothing the driver does between stages (averaging, checkpoint, waiting
    # for an evaluation) falls outside a round's overhead
    assert rows[1]["wall_seconds"] == pytest.approx(sum(r["round_wall_seconds"] for r in rows), abs=0.002)
    assert all(r["overhead_seconds"] == pytest.approx(r["round_wall_seconds"] - r["round_seconds"], abs=0.002)
               for r in rows)
    for key in ("task", "metric", "best_val", "test", "rounds", "wall_seconds", "time_to_best_seconds", "mode",
                "parts"):
        assert key in s
    assert s["rounds"] == 2 and s["parts"] == 2 and s["mode"] == "tma" and s["metric"] == "accuracy"
    assert s["best_val"] > 0.5  # far above chance (1/7) after a few seconds of training
    state = torch.load(out / "best.pt", weights_only=True)
    model = build_model("sage", 1433, 32, 7)
    model.load_state_dict(state)
    spec = ModelSpec.from_json(json.loads((out / "model.json").read_text()))
    assert spec == ModelSpec("sage", 1433, 32, 7, layers=2, dropout=0.5)
    spec.build().load_state_dict(state)
    assert json.loads((out / "summary.json").read_text()) == s
    # local master: the weights travelled through files, whose folder is gone with the run
    assert s["weights_transport"] == "files"
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "tma-spark-weights-*"))) == exchanges


def test_central_mode_and_existing_run_folder(spark, cora_lake, tmp_path, caplog):
    out = str(tmp_path / "run")
    with caplog.at_level("INFO", logger="tma_spark.train.driver"):
        s = train(spark, TrainConfig(lake=cora_lake, out=out, mode="central", round_seconds=2, max_rounds=1,
                                     hidden=32), release=True)
    assert "released the trainers' parts: 1 worker(s)" in caplog.text  # bench's release stage ran
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
    from tma_spark.ingest import IngestConfig, ingest

    other = str(tmp_path / "other")
    ingest(spark, IngestConfig(lake=other, dataset="cora"))
    with pytest.raises(TmaSparkError, match="were made from lake"):
        train(spark, TrainConfig(lake=other, partitions=cora_parts, out=str(tmp_path / "r1")))
    with pytest.raises(TmaSparkError, match="--mode psgd-pa trains on METIS parts"):
        train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(tmp_path / "r2"), mode="psgd-pa"))


@pytest.mark.parametrize("kwargs,fragment", [
    ({"mode": "gossip"}, "--mode 'gossip' is not one of"),
    ({"mode": "ddp", "tolerate_failures": True}, "cannot average over survivors"),
    ({"mode": "ddp", "workers": 0}, "--workers 0 must be at least 1"),
    ({"model": "gin"}, "--model 'gin' is not one of"),
    ({"round_seconds": 0}, "--round-seconds 0 must be positive"),
    ({"time_limit": -5}, "--time-limit -5 must be positive"),
    ({"partitions": None}, "--mode tma needs --partitions"),
    ({"task": "edge"}, "--task 'edge' is not supported"),
    ({"sampler": "cluster"}, "--sampler 'cluster' is not one of"),
    ({"fanouts": (10,)}, "must give one fan-out per layer (2)"),
    ({"fanouts": (10, 0)}, "each at least 1 or -1"),
    ({"eval": "none"}, "--eval 'none' is not one of"),
    ({"eval_negatives": 0}, "--eval-negatives must be at least 1"),
    ({"optimizer_state": "disk"}, "--optimizer-state 'disk' is not one of"),
])
def test_bad_train_config(kwargs, fragment, tmp_path):
    base = {"lake": "x", "partitions": "p", "out": str(tmp_path / "r")}
    with pytest.raises(TmaSparkError) as info:
        TrainConfig(**{**base, **kwargs}).validate()
    assert fragment in str(info.value)


@pytest.mark.cluster
def test_spark_submit_with_wheel_config_and_gpu_scheduling_in_local_cluster(cora_lake, cora_parts, tmp_path):
    """The README's cluster command line: spark-submit of jobs/train.py with the package shipped as a wheel
    (scripts/package.sh: the wheel as dist/tma_spark.zip for --py-files), settings from a config file with a command-line override, and GPU scheduling, on two
    executor JVMs (local-cluster[2,1,1024]).

    The executors import tma_spark from the shipped wheel. The discovery script reports one GPU address per
    executor; each task records the address it was assigned and, with no CUDA device here, trains on the CPU.
    """
    import yaml

    out = tmp_path / "run"
    work = tmp_path / "repo"  # scripts/package.sh writes into the repository's dist/: use a copy
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv*", ".git", "dist", "demo_*", "mlruns", "build",
                                                              "*.egg-info", "__pycache__"))
    r = subprocess.run(["bash", work / "scripts" / "package.sh"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = work / "dist" / "tma_spark.zip"
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"lake": cora_lake, "partitions": cora_parts, "run": str(out),
                                      "train": {"round_seconds": 2, "max_rounds": 5, "hidden": 32,
                                                "weights_transport": "spark"}}))
    discovery = tmp_path / "gpus.sh"
    discovery.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    discovery.chmod(0o755)
    jar_cp = subprocess.run([BIN / "tma-spark", "jars", "--classpath"], capture_output=True, text=True).stdout.strip()
    gpu_conf = {"spark.worker.resource.gpu.amount": "1", "spark.worker.resource.gpu.discoveryScript": discovery,
                "spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1"}
    confs = [a for k, v in gpu_conf.items() for a in ("--conf", f"{k}={v}")]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    r = subprocess.run([BIN / "spark-submit", "--master", "local-cluster[2,1,1024]", "--jars", jar_cp, *confs,
                        "--py-files", wheel, REPO / "jobs" / "train.py", "--config", config, "--max-rounds", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["best_val"] > 0.5  # --max-rounds 2 overrode the file's 5
    assert summary["weights_transport"] == "spark"  # broadcasts and task results, as on a real cluster
    assert json.loads((out / "config.json").read_text())["hidden"] == 32  # from the file
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["steps"]) == 2 for r in rows)
    assert all(r["gpu_addresses"] == [["0"], ["0"]] for r in rows)
    assert all(r["devices"] == (["cuda:0"] if torch.cuda.is_available() else ["cpu"]) for r in rows)
    # Each executor imported tma_spark from its copy of the shipped archive, not from the installed package.
    codes = [c for r in rows for c in r["executor_code"]]
    assert codes and all(c.endswith("/tma_spark.zip/tma_spark") for c in codes), codes


def test_pick_device_uses_the_assigned_gpu_or_falls_back_to_cpu(caplog):
    from tma_spark.train.executor import pick_device

    assert pick_device(None) == torch.device("cpu")
    if torch.cuda.is_available():
        assert pick_device(["0"]) == torch.device("cuda:0")
    else:
        assert pick_device(["1"]) == torch.device("cpu")
        assert "assigned GPU 1" in caplog.text


def _rows(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_link_prediction_holds_out_val_and_test_edges_and_reports_mrr(spark, cora_lake, cora_parts, tmp_path):
    import pyarrow as pa

    from tma_spark.train.graphdata import message_passing_edges

    edges = pa.table({"src": [0, 1, 2, 3], "dst": [1, 2, 3, 0], "split": ["train", "val", None, "test"]})
    kept = message_passing_edges(edges, "link")
    assert kept.column("src").to_pylist() == [0, 2]  # train and unsplit edges only
    assert message_passing_edges(edges, "node").num_rows == 4

    out = tmp_path / "run"
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(out), task="link", round_seconds=2,
                                 max_rounds=2, hidden=32, eval_negatives=50))
    assert s["task"] == "link" and s["metric"] == "mrr" and s["eval"] == "full"
    # A random scorer ranks the true edge about in the middle of 50 negatives (MRR ~ 0.08).
    assert s["best_val"] > 0.25 and s["test"] > 0.25
    model = build_model("sage", 1433, 32, 32)  # link models output embeddings of the hidden size
    model.load_state_dict(torch.load(out / "best.pt", weights_only=True))


def test_neighbour_sampling_with_sampled_evaluation(spark, cora_lake, cora_parts, tmp_path):
    out = tmp_path / "run"
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(out), sampler="neighbor",
                                 fanouts=(10, 5), batch_size=128, eval="sampled", eval_nodes=300, round_seconds=2,
                                 max_rounds=2, hidden=32))
    rows = _rows(out)
    assert s["eval"] == "sampled" and all(r["samplers"] == ["neighbor"] for r in rows)
    # Mini-batch steps are far cheaper than full-batch ones: many steps per round.
    assert min(min(r["steps"]) for r in rows) > 10
    assert s["best_val"] > 0.5
    assert json.loads((out / "config.json").read_text())["fanouts"] == [10, 5]


@pytest.mark.parametrize("kind", ["sage", "gcn"])
def test_sampled_evaluation_equals_exact_evaluation_on_the_sampled_targets(spark, cora_lake, kind):
    """With every neighbour kept (--eval-fanouts -1,-1) sampled evaluation is exact for its targets; with capped
    fan-outs (the default, the training fan-outs) it is an estimate on a smaller subgraph."""
    from tma_spark.lake import open_lake
    from tma_spark.train.evaluation import build_evaluator

    lake = open_lake(spark, cora_lake)
    cfg = TrainConfig(lake=cora_lake, out="unused", mode="central", model=kind, eval_nodes=10_000)  # every target
    exact = build_evaluator(spark, lake, cfg)
    sampled = build_evaluator(spark, lake, TrainConfig(**{**cfg.to_dict(), "eval": "sampled",
                                                          "eval_fanouts": (-1, -1)}))
    assert exact.exact and not sampled.exact
    assert sampled.targets["val"].numel() == int(exact.targets["val"].numel()) == 542
    model = build_model(kind, 1433, 16, 7, seed=3)
    a, b = exact.evaluate(model), sampled.evaluate(model)
    assert a["val"] == pytest.approx(b["val"]) and a["test"] == pytest.approx(b["test"])
    capped = build_evaluator(spark, lake, TrainConfig(**{**cfg.to_dict(), "eval": "sampled",
                                                         "eval_fanouts": (3, 2)}))
    assert capped.graph.edge_index.shape[1] < sampled.graph.edge_index.shape[1]
    c = capped.evaluate(model)
    assert abs(c["val"] - a["val"]) < 0.1 and abs(c["test"] - a["test"]) < 0.1


def test_llcg_on_metis_parts_and_resident_optimizer_state(spark, cora_lake, tmp_path):
    parts = str(tmp_path / "metis")
    partition(spark, PartitionConfig(lake=cora_lake, out=parts, parts=2, strategy="metis"))
    s = train(spark, TrainConfig(lake=cora_lake, partitions=parts, out=str(tmp_path / "llcg"), mode="llcg",
                                 round_seconds=1, max_rounds=2, hidden=16, llcg_steps=2))
    assert s["mode"] == "llcg" and s["partition_strategy"] == "metis" and s["best_val"] > 0.3
    out = tmp_path / "resident"
    s = train(spark, TrainConfig(lake=cora_lake, partitions=parts, out=str(out), mode="psgd-pa", round_seconds=1,
                                 max_rounds=3, hidden=16, optimizer_state="resident"))
    rows = _rows(out)
    # both trainers run in the one local executor: its workers tell each other apart (rendezvous.py), so each
    # part and its resident optimizer state stay in the worker that loaded them
    assert len(rows) == 3 and all(r["optimizer_state_misses"] == 0 for r in rows), rows
    # at most once each: the workers may still hold the parts from the llcg run above (then 0)
    assert max(s["part_loads"]) <= 1 and len({a for r in rows for a in r["executors"]}) == 2, s["part_loads"]
    assert s["best_val"] > 0.3


def test_link_task_needs_an_edge_split(spark, cora_lake, tmp_path):
    from tma_spark.lake import META_FILE

    lake = tmp_path / "lake"
    shutil.copytree(cora_lake, lake)
    meta = json.loads((lake / META_FILE).read_text())
    (lake / META_FILE).write_text(json.dumps({**meta, "has_edge_split": False}))
    with pytest.raises(TmaSparkError, match="no edge split"):
        train(spark, TrainConfig(lake=str(lake), out=str(tmp_path / "run"), mode="central", task="link"))
    assert not (tmp_path / "run").exists()


def test_cached_part_is_reloaded_when_data_or_objective_settings_change():
    from dataclasses import replace

    from tma_spark.train.executor import _cache_key

    source = Source("parts", "/p", "delta", 1.0)
    spec = TrainerSpec(model=ModelSpec("sage", 8, 16, 3), source=source, task="node", sampler="full",
                       fanouts=(25, 10), batch_size=1024)
    cpu = torch.device("cpu")
    key = _cache_key(spec, 0, None, cpu)
    assert _cache_key(replace(spec), 0, None, cpu) == key
    assert _cache_key(replace(spec, source=replace(source, version=2.0)), 0, None, cpu) != key  # PARTS re-written
    assert _cache_key(spec, 1, None, cpu) != key
    assert _cache_key(spec, 0, (0, 2), cpu) != key  # ddp: another shard of the targets
    for change in ({"sampler": "neighbor"}, {"task": "link"}, {"fanouts": (5, 5)}, {"batch_size": 64}):
        assert _cache_key(replace(spec, **change), 0, None, cpu) != key


# ---------------------------------------------------------------- parts and lakes that train nothing


def _result(part, state, targets):
    from tma_spark.train.contract import TrainerResult, to_bytes

    return TrainerResult(part=part, state=to_bytes(state), opt=None, steps=3 if targets else 0, loss=0.5,
                         train_nodes=targets, edges=4, sampler="full", load_seconds=0.1, task_seconds=1.0,
                         device="cpu", gpus=(), pid=1, code="/x", targets=targets)


def test_trainers_without_targets_are_left_out_of_the_average(caplog):
    from tma_spark.train.driver import _average

    sent = {"w": torch.zeros(2)}  # an idle trainer returns the weights it was sent
    cfg = TrainConfig(lake="l", out="o")
    results = [_result(0, {"w": torch.tensor([2.0, 4.0])}, 5), _result(1, sent, 0),
               _result(2, {"w": torch.tensor([4.0, 8.0])}, 3)]
    idle, opts = set(), {}
    avg = _average(cfg, 3, 1, results, opts, sent, idle)
    assert torch.equal(avg["w"], torch.tensor([3.0, 6.0])) and idle == {1} and sorted(opts) == [0, 1, 2]
    assert "part(s) [1] had no training targets" in caplog.text
    caplog.clear()
    _average(cfg, 3, 2, results, opts, sent, idle)
    assert "no training targets" not in caplog.text  # logged once per part
    # no trainer that finished had targets: the weights stay as they were
    previous = {"w": torch.ones(2)}
    assert _average(cfg, 2, 3, [_result(0, sent, 0), _result(1, sent, 0)], opts, previous, idle) is previous


def test_an_unscored_round_read_back_from_metrics_jsonl_is_never_best(tmp_path):
    from tma_spark.train.recorder import Recorder

    recorder = Recorder(str(tmp_path), None, None, 60.0)
    recorder.resume([{"round": 1, "val": None, "test": None, "wall_seconds": 1.0},  # NaN written as null
                     {"round": 2, "val": 0.5, "test": 0.4, "wall_seconds": 2.0}])
    assert recorder.best["round"] == 2 and recorder.since_best == 0


def test_no_validation_targets_fails_before_training():
    from types import SimpleNamespace

    from tma_spark.train.evaluation import Evaluator
    from tma_spark.train.preflight import _check_validation

    empty = torch.zeros(0, dtype=torch.long)
    lake = SimpleNamespace(path="/lakes/g")
    with pytest.raises(TmaSparkError, match=r"Lake /lakes/g has no validation targets for --task node .*split 'val'.*"
                                            r"Fix: .*--split"):
        _check_validation(lake, "node", Evaluator("node", None, {"train": torch.arange(3), "val": empty}, True))
    with pytest.raises(TmaSparkError, match="no validation targets for --task link .*--edge-split"):
        _check_validation(lake, "link", Evaluator("link", None, {"val": (empty, empty, empty)}, True))
    _check_validation(lake, "node", Evaluator("node", None, {"val": torch.arange(1)}, True))


def _tiny_lake(spark, tmp_path, splits):
    """A 6-node ring, labels 0/1, the given node splits, ingested as a lake."""
    from helpers import EDGE_SCHEMA, NODE_SCHEMA, write_graph
    from tma_spark.ingest import IngestConfig, ingest

    nodes = [(i, [float(i), 1.0], i % 2, s) for i, s in enumerate(splits)]
    npath, epath = write_graph(spark, tmp_path, nodes, [(i, (i + 1) % 6) for i in range(6)], NODE_SCHEMA,
                               EDGE_SCHEMA)
    lake = str(tmp_path / "lake")
    ingest(spark, IngestConfig(lake=lake, nodes=npath, edges=epath, input_format="parquet"))
    return lake


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_an_empty_part_is_reported_and_trains_without_a_traceback(spark, tmp_path, caplog):
    lake = _tiny_lake(spark, tmp_path, ["train"] * 4 + ["val", "test"])
    parts = tmp_path / "parts"
    stats = partition(spark, PartitionConfig(lake=lake, out=str(parts), parts=2, seed=115,  # all 6 nodes in part 0
                                             full_stats="off"))
    assert [d["nodes"] for d in stats["per_part"]] == [6, 0]
    assert stats["empty_parts"] == [1] and stats["parts_without_train_nodes"] == []
    assert _strict_json((parts / "stats.json").read_text())["empty_parts"] == [1]
    assert "part(s) [1] of 2 are empty" in caplog.text
    out = tmp_path / "run"
    s = train(spark, TrainConfig(lake=lake, partitions=str(parts), out=str(out), round_seconds=1, max_rounds=1,
                                 hidden=16))
    rows = [_strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["idle_parts"] == [1] and rows[0]["steps"][0] >= 1 and rows[0]["steps"][1] == 0
    assert "part(s) [1] have no training targets" in caplog.text and "left out of the average" in caplog.text
    assert _strict_json((out / "summary.json").read_text()) == s and (out / "best.pt").exists()
    # Partitions whose statistics count no training target in any part are refused before the run folder exists.
    stats["per_part"] = [{**d, "label_hist": {}} for d in stats["per_part"]]
    (parts / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(TmaSparkError, match=r"Partitions .*parts \(of lake .*\): no trainer has training targets for "
                                            r"--task node \(no labelled nodes with split 'train'\).*Fix: give"):
        train(spark, TrainConfig(lake=lake, partitions=str(parts), out=str(tmp_path / "r2"), max_rounds=1))
    assert not (tmp_path / "r2").exists()


def test_no_trainer_with_targets_after_the_warm_up_is_a_clear_error():
    """What the pre-flight checks cannot tell (a whole-lake mode, statistics without the counts), the warm-up
    stage's results tell: a clear error before round 1."""
    from types import SimpleNamespace

    from tma_spark.train.contract import LostTrainer
    from tma_spark.train.driver import _idle_parts

    sent = {"w": torch.zeros(2)}
    plan = SimpleNamespace(source=SimpleNamespace(kind="lake", path="/lakes/g"), lake=SimpleNamespace(path="/lakes/g"))
    with pytest.raises(TmaSparkError, match=r"Lake /lakes/g: no trainer has training targets for --task link "
                                            r"\(no training edges .*Fix: partition into fewer parts"):
        _idle_parts([_result(0, sent, 0)], plan, "link")
    assert _idle_parts([_result(0, sent, 0), _result(1, sent, 2)], plan, "node") == {0}
    assert _idle_parts([_result(0, sent, 0), LostTrainer(1, "killed")], plan, "node") == {0}  # part 1 may have some


@pytest.mark.cluster
def test_each_trainer_loads_its_part_once_per_run_on_four_executors(spark, cora_lake, tmp_path):
    """local-cluster[4,1,1024]: four executor JVMs, one trainer slot each. Spark offers the slots of a barrier
    stage in a different order from round to round; the parts follow the executors that hold them
    (train/placement.py), so each part is read from storage once in the run (in the warm-up stage)."""
    parts = str(tmp_path / "p4")
    partition(spark, PartitionConfig(lake=cora_lake, out=parts, parts=4, seed=0))
    out = tmp_path / "run"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    r = subprocess.run([BIN / "tma-spark", "train", "--master", "local-cluster[4,1,1024]", "--lake", cora_lake,
                        "--partitions", parts, "--out", out, "--round-seconds", "1", "--max-rounds", "6",
                        "--hidden", "16"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(out)
    assert [row["round"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert all(len(set(row["executors"])) == 4 for row in rows)  # one trainer per executor JVM
    assert all(row["part_loaded"] == [False] * 4 for row in rows), [row["part_loaded"] for row in rows]
    assert all(row["executors"] == rows[0]["executors"] for row in rows)  # part p stayed on its executor
    assert json.loads((out / "summary.json").read_text())["part_loads"] == [1, 1, 1, 1]


def test_a_released_worker_holds_no_part_and_no_optimizer_state(cora_parts):
    from tma_spark.train import executor

    spec = TrainerSpec(model=ModelSpec("sage", 1433, 16, 7), source=Source("parts", cora_parts, "delta"))
    executor.load_part(spec, 0, torch.device("cpu"))
    executor._OPT_STATES[("run", 0)] = {"state": {}}
    assert executor._CACHE
    released = executor.release_worker()
    assert released["parts_dropped"] == 1 and released["rss_mb"] > 0
    assert not executor._CACHE and not executor._OPT_STATES
    assert executor.release_worker()["parts_dropped"] == 0
