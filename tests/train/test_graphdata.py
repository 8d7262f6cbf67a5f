"""Reading Delta tables without Spark and building PyG tensors."""

import os

import numpy as np
import pyarrow as pa
import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.train.graphdata import build_graph, load_graph, read_table

NODE_SCHEMA = "id long, features array<float>, label int, split string, part int"


def _node_rows(ids):
    """Tiny node rows of two parts (``part = id % 2``)."""
    return [(i, [float(i), 0.5], i % 3 if i % 5 else None, ("train", "val", None)[i % 3], i % 2) for i in ids]


def _sorted_rows(table: pa.Table, columns):
    """The rows of ``table`` as sorted tuples, for order-free comparison."""
    return sorted(zip(*(table.column(c).to_pylist() for c in columns)))


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
    one = read_table(path, "delta", ["id", "part"], {"part": 1})
    assert one.column_names == ["id"] and sorted(one.column("id").to_pylist()) == [101, 103]
    empty = read_table(path, "delta", ["id"], {"part": 7})  # a part without rows keeps the column's type
    assert empty.num_rows == 0 and empty.schema.field("id").type == pa.int64()


@pytest.mark.spark
def test_delta_reader_applies_deletion_vectors(spark, tmp_path):
    from deltalake import DeltaTable

    path = str(tmp_path / "dv")
    spark.createDataFrame(_node_rows(range(40)), NODE_SCHEMA).repartition(1).write.format("delta") \
        .partitionBy("part").option("delta.enableDeletionVectors", "true").save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id % 4 = 1")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 10")
    table = DeltaTable(path)
    assert "deletionVectors" in (table.protocol().reader_features or [])
    assert pa.table(table.deletion_vectors()).num_rows > 0  # the DELETEs wrote deletion vectors, not new files
    columns = ["id", "features", "label", "split"]
    for part in (0, 1):
        got = read_table(path, "delta", columns + ["part"], {"part": part})
        assert got.schema == pa.schema([("id", pa.int64()), ("features", pa.list_(pa.float32())),
                                        ("label", pa.int32()), ("split", pa.string())])
        want = [(i, [float(i), 0.5], lab, split) for i, _, lab, split, p in _node_rows(range(40))
                if p == part and i % 4 != 1 and i != 10]
        assert _sorted_rows(got, columns) == sorted(want)


@pytest.mark.spark
def test_delta_reader_reads_a_log_that_starts_at_a_checkpoint(spark, tmp_path):
    path = str(tmp_path / "ck")
    df = spark.createDataFrame(_node_rows(range(40)), NODE_SCHEMA)
    df.where("id < 10").write.format("delta").partitionBy("part").option("delta.checkpointInterval", "2").save(path)
    for low in (10, 20, 30):  # commits 1, 2 (checkpoint) and 3
        df.where(f"id >= {low} and id < {low + 10}").write.format("delta").mode("append").save(path)
    log_dir = os.path.join(path, "_delta_log")
    assert os.path.exists(os.path.join(log_dir, "00000000000000000002.checkpoint.parquet"))
    for name in os.listdir(log_dir):  # what log cleanup does: drop the commits before the checkpoint
        if name.lstrip(".").startswith(("00000000000000000000.", "00000000000000000001.")):
            os.remove(os.path.join(log_dir, name))
    columns = ["id", "features", "label", "split"]
    spark_rows = spark.read.format("delta").load(path).where("part = 1").select(*columns).collect()
    assert len(spark_rows) == 20
    got = read_table(path, "delta", columns, {"part": 1})
    assert _sorted_rows(got, columns) == sorted((r.id, list(r.features), r.label, r.split) for r in spark_rows)


@pytest.mark.spark
def test_parquet_reader_reads_one_partition(spark, tmp_path):
    path = str(tmp_path / "pq")
    spark.createDataFrame(_node_rows(range(12)), NODE_SCHEMA).write.partitionBy("part").parquet(path)
    got = read_table("file:" + path, "parquet", ["id", "split", "part"], {"part": 1})
    assert got.column_names == ["id", "split"] and sorted(got.column("id").to_pylist()) == [1, 3, 5, 7, 9, 11]


def test_reading_a_folder_that_is_not_a_delta_table_names_it(tmp_path):
    with pytest.raises(TmaSparkError, match="not a Delta table"):
        read_table(str(tmp_path / "missing"), "delta", ["id"])


@pytest.mark.spark
def test_lake_round_trip_equals_spark(spark, cora_lake):
    nodes = read_table(f"{cora_lake}/nodes", "delta", ["id", "features", "label", "split"])
    edges = read_table(f"{cora_lake}/edges", "delta", ["src", "dst"])
    g = build_graph(nodes, edges)
    assert g.num_nodes == 2708 and g.edge_index.shape[1] == 2 * 5278
    row = spark.read.format("delta").load(f"{cora_lake}/nodes").where("id = 1234").first()
    assert np.allclose(g.x[1234].numpy(), np.asarray(row["features"], dtype=np.float32))
    assert g.y[1234].item() == row["label"]


def _same_graph(a, b) -> None:
    for name in ("node_ids", "x", "y", "split", "edge_index"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.sorted_symmetric and b.sorted_symmetric


@pytest.mark.spark
@pytest.mark.parametrize("part", [0, 1])
def test_load_graph_streams_a_part_to_the_same_tensors_as_build_graph(cora_parts, part):
    # The lean loader (small columns first, features batch by batch) against the in-memory builder.
    where = {"part": part}
    nodes = read_table(f"{cora_parts}/nodes", "delta", ["id", "features", "label", "split"], where)
    edges = read_table(f"{cora_parts}/edges", "delta", ["src", "dst"], where)
    got = load_graph(cora_parts, "delta", "node", where)
    assert got.num_nodes == nodes.num_rows > 0
    _same_graph(got, build_graph(nodes, edges))


@pytest.mark.spark
def test_load_graph_reads_parquet_keeps_link_edges_held_out_and_empty_parts(spark, tmp_path):
    path = tmp_path / "pq"
    spark.createDataFrame(_node_rows(range(12)), NODE_SCHEMA).write.partitionBy("part").parquet(str(path / "nodes"))
    edges = [(0, 2, "train", 0), (2, 4, "val", 0), (4, 6, None, 0), (6, 0, "test", 0), (1, 3, "train", 1)]
    spark.createDataFrame(edges, "src long, dst long, split string, part int").write.partitionBy("part") \
        .parquet(str(path / "edges"))
    g = load_graph("file:" + str(path), "parquet", "link", {"part": 0})
    assert g.node_ids.tolist() == [0, 2, 4, 6, 8, 10]
    assert g.x[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert sorted(map(tuple, g.edge_index.t().tolist())) == [(0, 1), (1, 0), (2, 3), (3, 2)]  # train and null only
    assert load_graph("file:" + str(path), "parquet", "node", {"part": 0}).edge_index.shape[1] == 8
    assert load_graph("file:" + str(path), "parquet", "node", {"part": 5}).num_nodes == 0
