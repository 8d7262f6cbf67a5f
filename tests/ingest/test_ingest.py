"""Ingest of valid inputs in every accepted shape, read back through real Delta tables."""

import json

import numpy as np
import pytest
from pyspark.ml.linalg import SparseVector, Vectors
from pyspark.sql import functions as F

from helpers import EDGE_SCHEMA, NODE_SCHEMA, good_edges, good_nodes, leftovers, write_graph
from tma_spark.ingest import IngestConfig, ingest
from tma_spark.lake import open_lake

pytestmark = pytest.mark.spark


def test_string_ids_get_dense_ids_and_an_id_map(spark, tmp_path):
    nodes = [("carol", [3.0], 1, "train"), ("alice", [1.0], 0, "val"), ("bob", [2.0], None, None)]
    edges = [("alice", "bob"), ("bob", "carol"), ("carol", "alice")]
    npath, epath = write_graph(spark, tmp_path, nodes, edges, "id string, features array<double>, label long, split string",
                               "src string, dst string")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=npath, edges=epath, input_format="parquet"))
    assert lake.meta.has_id_map and lake.meta.num_nodes == 3 and lake.meta.num_classes == 2
    id_map = {r["orig_id"]: r["id"] for r in lake.id_map().collect()}
    assert id_map == {"alice": 0, "bob": 1, "carol": 2}
    got = {(r["src"], r["dst"]) for r in lake.edges().collect()}
    assert got == {(0, 1), (1, 2), (2, 0)}
    carol = lake.nodes().where("id = 2").first()
    assert carol["features"] == [3.0] and carol["label"] == 1 and carol["split"] == "train"
    assert dict(lake.nodes().dtypes) == {"id": "bigint", "features": "array<float>", "label": "int", "split": "string"}


def test_sparse_long_ids_are_remapped(spark, tmp_path):
    nodes = [(10**12 + i, [float(i)], 0, None) for i in range(3)]
    edges = [(10**12, 10**12 + 2)]
    npath, epath = write_graph(spark, tmp_path, nodes, edges, NODE_SCHEMA, EDGE_SCHEMA, fmt="delta")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=npath, edges=epath))
    assert lake.meta.has_id_map
    assert [(r["src"], r["dst"]) for r in lake.edges().collect()] == [(0, 2)]


def test_dense_ids_need_no_id_map_and_edge_split_is_kept(spark, tmp_path):
    edges = [(0, 1, "train"), (1, 2, "val"), (2, 3, None)]
    npath, epath = write_graph(spark, tmp_path, good_nodes(), edges, NODE_SCHEMA, "src long, dst long, split string")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=npath, edges=epath, input_format="parquet"))
    assert not lake.meta.has_id_map and lake.meta.has_edge_split and lake.id_map() is None
    assert sorted(r["split"] or "-" for r in lake.edges().collect()) == ["-", "train", "val"]


def test_ml_vector_features_dense_and_sparse(spark, tmp_path):
    rows = [(0, Vectors.dense([1.0, 2.0, 0.0]), 0), (1, SparseVector(3, {2: 5.0}), 1)]
    spark.createDataFrame(rows, ["id", "features", "label"]).write.parquet(str(tmp_path / "n"))
    spark.createDataFrame([(0, 1)], ["src", "dst"]).write.parquet(str(tmp_path / "e"))
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=str(tmp_path / "n"),
                                      edges=str(tmp_path / "e"), input_format="parquet"))
    feats = {r["id"]: r["features"] for r in lake.nodes().collect()}
    assert feats == {0: [1.0, 2.0, 0.0], 1: [0.0, 0.0, 5.0]}


def test_csv_input(spark, tmp_path):
    (tmp_path / "n").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "n" / "nodes.csv").write_text("id,features,label,split\n0,1;2,0,train\n1,3 4,1,test\n2,5;6,,\n")
    (tmp_path / "e" / "edges.csv").write_text("src,dst\n0,1\n1,2\n")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=str(tmp_path / "n"),
                                      edges=str(tmp_path / "e"), input_format="csv"))
    assert lake.meta.feature_dim == 2 and lake.meta.num_edges == 2
    assert lake.nodes().where("id = 1").first()["features"] == [3.0, 4.0]


def test_catalog_table_names(spark, tmp_path):
    spark.createDataFrame(good_nodes(), NODE_SCHEMA).createOrReplaceTempView("tma_nodes_view")
    spark.createDataFrame(good_edges(), EDGE_SCHEMA).createOrReplaceTempView("tma_edges_view")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes="tma_nodes_view", edges="tma_edges_view",
                                      input_format="table"))
    assert lake.meta.num_nodes == 4


def test_npz_file_and_parquet_lake_and_atomic_overwrite(spark, tmp_path):
    from tma_spark.ingest.datasets import bundled_dataset_path

    path = str(tmp_path / "lake")
    lake = ingest(spark, IngestConfig(lake=path, npz=str(bundled_dataset_path("cora")), lake_format="parquet"))
    assert (lake.meta.num_nodes, lake.meta.num_edges, lake.meta.feature_dim, lake.meta.num_classes) == (2708, 5278, 1433, 7)
    splits = {r["split"]: r["count"] for r in lake.nodes().groupBy("split").count().collect()}
    assert splits == {"train": 1625, "val": 542, "test": 541}
    # overwrite with a different graph: the lake is replaced, no staging folders remain
    npath, epath = write_graph(spark, tmp_path, good_nodes(), good_edges(), NODE_SCHEMA, EDGE_SCHEMA)
    lake = ingest(spark, IngestConfig(lake=path, nodes=npath, edges=epath, input_format="parquet", overwrite=True))
    assert open_lake(spark, path).meta.num_nodes == 4 and leftovers(path) == ["lake"]
    meta = json.loads((tmp_path / "lake" / "_tma_lake.json").read_text())
    assert meta["format"] == "delta" and meta["source"]["kind"] == "tables"


def test_cora_features_in_lake_equal_the_npz(spark, tmp_path):
    from tma_spark.ingest.datasets import load_dataset

    g = load_dataset("cora")
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), dataset="cora"))
    rows = lake.nodes().where(F.col("id").isin(0, 1500, 2707)).orderBy("id").collect()
    for r in rows:
        assert np.array_equal(np.asarray(r["features"], dtype=np.float32), g.feature_rows(r["id"], r["id"] + 1)[0])
        assert r["label"] == g.labels[r["id"]]


def test_seeded_edge_split_is_added_when_edges_have_none(spark, cora_lake):
    from tma_spark.ingest.job import edge_split_column

    lake = open_lake(spark, cora_lake)
    assert lake.meta.has_edge_split and lake.meta.source["edge_split"]["fractions"] == [0.9, 0.05, 0.05]
    counts = {r["split"]: r["count"] for r in lake.edges().groupBy("split").count().collect()}
    total = sum(counts.values())
    assert set(counts) == {"train", "val", "test"} and total == lake.meta.num_edges
    assert abs(counts["train"] / total - 0.9) < 0.02 and abs(counts["val"] / total - 0.05) < 0.015
    # Both directions of an undirected pair share a split; a directed graph splits them independently.
    pairs = spark.createDataFrame([(i, j) for i in range(40) for j in range(40) if i != j], "src long, dst long")
    und = pairs.withColumn("s", edge_split_column(7, (0.5, 0.25, 0.25), directed=False)).toPandas()
    both = und.merge(und, left_on=["src", "dst"], right_on=["dst", "src"])
    assert (both["s_x"] == both["s_y"]).all()
    direc = pairs.withColumn("s", edge_split_column(7, (0.5, 0.25, 0.25), directed=True)).toPandas()
    both = direc.merge(direc, left_on=["src", "dst"], right_on=["dst", "src"])
    assert (both["s_x"] != both["s_y"]).any()
    again = pairs.withColumn("s", edge_split_column(8, (0.5, 0.25, 0.25), directed=False)).toPandas()
    assert (again["s"] != und["s"]).any()  # another seed, another split


def test_fastrp_structural_features_replace_the_input_features(spark, cli, tmp_path):
    lake_path = tmp_path / "lake"
    code, _, err = cli("ingest", "--dataset", "cora", "--lake", lake_path, "--features", "fastrp",
                       "--feature-dim", "16")
    assert code == 0, err
    lake = open_lake(spark, str(lake_path))
    assert lake.meta.feature_dim == 16 and lake.meta.source["features"] == {"kind": "fastrp", "dim": 16, "seed": 0}
    x = np.stack(lake.nodes().orderBy("id").toPandas()["features"])
    assert x.shape == (2708, 16) and np.isfinite(x).all()
    assert np.allclose(x.mean(0), 0, atol=1e-4) and np.allclose(x.std(0), 1, atol=1e-2)
    # Structure, not noise: the features of training-edge neighbours are far more alike than random pairs'.
    e = lake.edges().where("split = 'train'").toPandas()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    linked = (unit[e["src"]] * unit[e["dst"]]).sum(1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2708, 5000), rng.integers(0, 2708, 5000)
    assert linked > (unit[a] * unit[b]).sum(1).mean() + 0.3
    code, _, err = cli("ingest", "--synthetic", "--nodes", "100", "--edges", "300", "--features", "fastrp",
                       "--lake", tmp_path / "syn")
    assert code == 2 and "does not apply to --synthetic" in err


def test_labelled_nodes_without_any_split_get_a_seeded_split(spark, tmp_path, caplog):
    # No split column: the labelled nodes get a seeded split of --split's fractions, unlabelled nodes none.
    rows = [(i, [float(i)], None if i % 10 == 0 else i % 3) for i in range(400)]
    edges = [(i, i + 1) for i in range(399)]
    npath, epath = write_graph(spark, tmp_path / "a", rows, edges, "id long, features array<float>, label int",
                               EDGE_SCHEMA)
    lake = ingest(spark, IngestConfig(lake=str(tmp_path / "lake"), nodes=npath, edges=epath, input_format="parquet",
                                      split_fractions=(0.5, 0.25, 0.25), split_seed=3))
    split = {r["id"]: r["split"] for r in lake.nodes().collect()}
    assert all((split[i] is None) == (rows[i][2] is None) for i in range(400))
    shares = {s: sum(v == s for v in split.values()) / 360 for s in ("train", "val", "test")}
    assert abs(shares["train"] - 0.5) < 0.08 and abs(shares["val"] - 0.25) < 0.08
    assert lake.meta.source["node_split"] == {"seed": 3, "fractions": [0.5, 0.25, 0.25], "nodes": "labelled"}
    assert "giving the 360 labelled nodes a seeded 0.5/0.25/0.25 train/val/test split" in caplog.text
    # A split column that is null everywhere is no split either; the same seed gives the same split.
    npath, epath = write_graph(spark, tmp_path / "b", [r + (None,) for r in rows], edges, NODE_SCHEMA, EDGE_SCHEMA)
    again = ingest(spark, IngestConfig(lake=str(tmp_path / "again"), nodes=npath, edges=epath,
                                       input_format="parquet", split_fractions=(0.5, 0.25, 0.25), split_seed=3))
    assert {r["id"]: r["split"] for r in again.nodes().collect()} == split
