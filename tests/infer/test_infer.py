"""Spark inference (layer-wise, real Spark + Delta) against PyG full-graph inference of the same checkpoint."""

import json
import shutil

import numpy as np
import pytest
import torch

from tma_spark.infer import InferConfig, infer
from tma_spark.infer.job import load_run
from tma_spark.train import TrainConfig, train
from tma_spark.train.graphdata import build_graph, message_passing_edges, read_table

pytestmark = pytest.mark.spark


def _run(spark, lake, root, model, task):
    out = str(root / f"run_{model}_{task}")
    train(spark, TrainConfig(lake=lake, out=out, mode="central", model=model, task=task, round_seconds=1,
                             max_rounds=1, hidden=16))
    return out


def _pyg_outputs(lake, run, task):
    """What a PyG user gets: the checkpoint applied to the whole graph in one process."""
    _, state, spec = load_run(run)
    g = build_graph(read_table(f"{lake}/nodes", "delta", ["id", "features", "label", "split"]),
                    message_passing_edges(read_table(f"{lake}/edges", "delta", ["src", "dst", "split"]), task))
    model = spec.build()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model(g.x, g.edge_index), g


@pytest.mark.parametrize("model", ["sage", "gcn", "gat", "mlp"])
def test_node_predictions_equal_pyg_full_graph_inference(spark, cli, cora_lake, tmp_path, model):
    run = _run(spark, cora_lake, tmp_path, model, "node")
    pred_path = tmp_path / "pred"
    code, out, err = cli("infer", "--lake", cora_lake, "--run", run, "--out", pred_path)
    assert code == 0, err
    pred = spark.read.format("delta").load(str(pred_path)).orderBy("id").toPandas()
    assert list(pred.columns) == ["id", "node_id", "prediction", "probabilities", "logits"]
    assert (pred["node_id"] == pred["id"]).all() and len(pred) == 2708
    ref, g = _pyg_outputs(cora_lake, run, "node")
    logits = torch.from_numpy(np.stack(pred["logits"]))
    assert float((logits - ref).abs().max()) < 1e-4
    assert (torch.tensor(pred["prediction"].values) == ref.argmax(-1)).all()
    assert torch.allclose(torch.from_numpy(np.stack(pred["probabilities"])).sum(1), torch.ones(2708), atol=1e-5)
    ev = json.loads((tmp_path / f"run_{model}_node" / "eval.json").read_text())
    test = g.mask("test")
    assert ev["metric"] == "accuracy" and ev["counts"]["test"] == int(test.sum())
    assert ev["test"] == pytest.approx(float((ref.argmax(-1)[test] == g.y[test]).float().mean()), abs=1e-6)
    summary = json.loads((tmp_path / f"run_{model}_node" / "summary.json").read_text())
    assert ev["test"] == pytest.approx(summary["test"], abs=1e-6)  # the train job's exact evaluation agrees
    # An existing prediction table is refused; --overwrite writes a new Delta version.
    code, _, err = cli("infer", "--lake", cora_lake, "--run", run, "--out", pred_path)
    assert code == 2 and "already exists" in err
    # the new version's layers run their messages in batches of destinations (0.2 MB a batch: 5-7 batches of
    # Cora's 0.8-1.2 MB of messages at hidden 16), with the same outputs
    code, _, err = cli("infer", "--lake", cora_lake, "--run", run, "--out", pred_path, "--overwrite",
                       "--message-batch-gb", "0.0002")
    assert code == 0, err
    versions = spark.sql(f"DESCRIBE HISTORY delta.`{pred_path}`").count()
    assert versions == 2
    batched = spark.read.format("delta").load(str(pred_path)).orderBy("id").toPandas()
    assert float((torch.from_numpy(np.stack(batched["logits"])) - ref).abs().max()) < 1e-4 and len(batched) == 2708


def test_link_embeddings_equal_pyg_and_mrr_is_reported(spark, cora_lake, tmp_path):
    run = _run(spark, cora_lake, tmp_path, "sage", "link")
    r = infer(spark, InferConfig(lake=cora_lake, run=run, out=str(tmp_path / "emb"), eval_negatives=50))
    emb = spark.read.format("delta").load(str(tmp_path / "emb")).orderBy("id").toPandas()
    ref, _ = _pyg_outputs(cora_lake, run, "link")
    assert float((torch.from_numpy(np.stack(emb["embedding"])) - ref).abs().max()) < 1e-4
    assert r["metric"] == "mrr" and r["negatives"] == 50 and r["counts"]["test"] > 200
    assert 2 / 52 < r["test"] <= 1.0  # above a constant scorer's MRR against 50 negatives


def test_bad_runs_and_lakes_are_refused(spark, cli, cora_lake, tmp_path):
    run = _run(spark, cora_lake, tmp_path, "mlp", "node")
    code, _, err = cli("infer", "--lake", cora_lake, "--run", tmp_path, "--out", tmp_path / "p")
    assert code == 2 and "is not a run folder" in err
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    code, _, err = cli("infer", "--lake", cora_lake, "--run", broken, "--out", tmp_path / "p")
    assert code == 2 and "could not be read" in err
    torch.save({"weights": torch.zeros(3)}, broken / "best.pt")
    code, _, err = cli("infer", "--lake", cora_lake, "--run", broken, "--out", tmp_path / "p")
    assert code == 2 and "not a tma_spark model state dict" in err
    # A model trained on 1433 features cannot run on a lake with 2.
    from helpers import EDGE_SCHEMA, NODE_SCHEMA, good_edges, good_nodes, write_graph
    from tma_spark.ingest import IngestConfig, ingest

    npath, epath = write_graph(spark, tmp_path, good_nodes(), good_edges(), NODE_SCHEMA, EDGE_SCHEMA)
    small = str(tmp_path / "small")
    ingest(spark, IngestConfig(lake=small, nodes=npath, edges=epath, input_format="parquet"))
    code, _, err = cli("infer", "--lake", small, "--run", run, "--out", tmp_path / "p")
    assert code == 2 and "takes 1433 features but lake" in err
    assert not (tmp_path / "p").exists()
