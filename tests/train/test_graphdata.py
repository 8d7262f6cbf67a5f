"""Reading Delta tables without Spark and building PyG tensors."""

import numpy as np
import pyarrow as pa
import pytest

from tma_spark.train.graphdata import build_graph, delta_live_files, read_table


def test_build_graph_maps_ids_symmetrizes_and_drops_loops_duplicates_and_foreign_edges():
    nodes = pa.table({"id": pa.array([30, 10, 20], pa.int64()),
                      "features": pa.array([[3.0], [1.0], [2.0]], pa.list_(pa.float32())),
                      "label": pa.array([1, None, 0], pa.int32()), "split": pa.array(["test", None, "train"])})
    edges = pa.table({"src": pa.array([10, 20, 10, 30, 99], pa.int64()), "dst": pa.array([20, 10, 10, 20, 10], pa.int64())})
    g = build_graph(nodes, edges)
    assert g.node_ids.tolist() == [10, 20, 30] and g.x[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert g.y.tolist() == [-1, 0, 1]
    assert sorted(map(tuple, g.edge_index.t().tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert g.mask("train").tolist() == [False, True, False] and g.mask("test").tolist() == [False, False, True]


def test_an_empty_part_builds_an_empty_graph_with_no_targets():
    # A part without nodes (small N, large K) has no Delta file: read_table returns null-typed columns.
    nodes = pa.table({c: pa.array([]) for c in ("id", "features", "label", "split")})
    g = build_graph(nodes, pa.table({"src": pa.array([]), "dst": pa.array([])}))
    assert g.num_nodes == 0 and g.edge_index.shape == (2, 0) and int(g.mask("train").sum()) == 0


@pytest.mark.spark
def test_delta_reader_follows_the_log_and_partitions(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(i, i % 2) for i in range(10)], "id long, part int").write.format("delta") \
        .partitionBy("part").save(path)
    spark.createDataFrame([(i, i % 2) for i in range(100, 104)], "id long, part int").write.format("delta") \
        .partitionBy("part").mode("overwrite").save(path)  # removes the first files
    assert sorted(read_table(path, "delta", ["id"]).column("id").to_pylist()) == [100, 101, 102, 103]
    assert sorted(read_table(path, "delta", ["id"], {"part": 1}).column("id").to_pylist()) == [101, 103]
    assert all("part=0" in f for f in delta_live_files(path, {"part": 0}))


@pytest.mark.spark
def test_lake_round_trip_equals_spark(spark, cora_lake):
    nodes = read_table(f"{cora_lake}/nodes", "delta", ["id", "features", "label", "split"])
    edges = read_table(f"{cora_lake}/edges", "delta", ["src", "dst"])
    g = build_graph(nodes, edges)
    assert g.num_nodes == 2708 and g.edge_index.shape[1] == 2 * 5278
    row = spark.read.format("delta").load(f"{cora_lake}/nodes").where("id = 1234").first()
    assert np.allclose(g.x[1234].numpy(), np.asarray(row["features"], dtype=np.float32))
    assert g.y[1234].item() == row["label"]
