"""The partition job on real Spark and Delta: determinism, balance, retention, outputs and bad input."""

import json
import os

import pytest
from pyspark.sql import functions as F

from helpers import EDGE_SCHEMA, NODE_SCHEMA, leftovers, write_graph
from tma_spark.ingest import IngestConfig
from tma_spark.errors import TmaSparkError
from tma_spark.events import Recorder
from tma_spark.ingest import ingest
from tma_spark.partition import PartitionConfig, partition
from tma_spark.partition.strategies import random_part

pytestmark = pytest.mark.spark


def _read(spark, parts, table):
    return spark.read.format("delta").load(f"{parts}/{table}")


def test_random_partition_outputs_and_statistics(spark, cora_lake, tmp_path):
    out = tmp_path / "parts"
    with Recorder("partition.phase") as phases:
        stats = partition(spark, PartitionConfig(lake=cora_lake, out=str(out), parts=4, seed=1))
    assert [e.fields["phase"] for e in phases.events] == ["setup", "assignment", "nodes", "edges", "stats", "commit"]
    assert sorted(os.listdir(out)) == ["_tma_parts.json", "assignment", "edges", "nodes", "stats.json", "stats.png"]
    assert json.loads((out / "stats.json").read_text()) == stats
    assert (out / "stats.png").read_bytes()[:4] == b"\x89PNG"
    assert stats["strategy"] == "random" and stats["parts"] == 4 and stats["seed"] == 1
    assert abs(stats["edge_retention"] - 0.25) < 0.03  # about 1/K
    assert stats["node_balance"] < 1.1 and stats["label_tv"] < 0.1
    assert sum(d["nodes"] for d in stats["per_part"]) == 2708
    assert sum(d["train"] + d["val"] + d["test"] for d in stats["per_part"]) == 2708
    # only intra-part edges are kept, each in its own part
    assign = _read(spark, out, "assignment")
    edges = _read(spark, out, "edges")
    a = assign.select(F.col("id").alias("src"), F.col("part").alias("ps"))
    b = assign.select(F.col("id").alias("dst"), F.col("part").alias("pd"))
    joined = edges.join(a, "src").join(b, "dst")
    assert joined.count() == stats["edges_kept"]
    assert joined.where("ps != part OR pd != part").count() == 0
    # and every intra-part edge of the lake is kept
    lake_edges = spark.read.format("delta").load(f"{cora_lake}/edges").join(a, "src").join(b, "dst")
    assert lake_edges.where("ps = pd AND src != dst").count() == stats["edges_kept"]


def test_random_assignment_is_deterministic_and_seeded(spark):
    ids = spark.range(5000)
    p1 = [r[0] for r in ids.select(random_part(F.col("id"), 8, 3)).collect()]
    p2 = [r[0] for r in ids.select(random_part(F.col("id"), 8, 3)).collect()]
    p3 = [r[0] for r in ids.select(random_part(F.col("id"), 8, 4)).collect()]
    assert p1 == p2 and p1 != p3
    counts = [p1.count(k) for k in range(8)]
    assert min(counts) > 0.85 * 625 and max(counts) < 1.15 * 625  # balanced


def test_metis_retains_most_edges_and_skews_labels(spark, cora_lake, tmp_path):
    r = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "r"), parts=4))
    m = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "m"), parts=4, strategy="metis"))
    assert m["edge_retention"] > 2 * r["edge_retention"]
    assert m["label_tv"] > 2 * r["label_tv"]


def test_self_loops_duplicates_and_isolated_nodes_are_counted(spark, tmp_path):
    nodes = [(i, [float(i)], i % 2, "train") for i in range(6)]
    edges = [(0, 1), (1, 0), (0, 1), (2, 2), (3, 4)]  # node 5 isolated
    npath, epath = write_graph(spark, tmp_path, nodes, edges, NODE_SCHEMA, EDGE_SCHEMA)
    lake = str(tmp_path / "lake")
    ingest(spark, IngestConfig(lake=lake, nodes=npath, edges=epath, input_format="parquet"))
    stats = partition(spark, PartitionConfig(lake=lake, out=str(tmp_path / "p"), parts=1))
    assert stats["self_loops_dropped"] == 1 and stats["duplicate_edges"] == 2 and stats["isolated_nodes"] == 2
    assert stats["edges_kept"] == 4 and stats["edge_retention"] == 1.0
    assert _read(spark, tmp_path / "p", "edges").where("src = dst").count() == 0


@pytest.mark.parametrize("kwargs,fragment", [
    ({"parts": 0}, "K must be at least 1"),
    ({"parts": 5000}, "larger than the number of nodes (2,708)"),
    ({"strategy": "louvain"}, "--strategy 'louvain' is not one of"),
    ({"strategy": "metis", "metis_max_edges": 1000}, "5,278 edges, above the limit of 1,000"),
])
def test_bad_partition_input(spark, cora_lake, tmp_path, kwargs, fragment):
    out = tmp_path / "parts"
    with pytest.raises(TmaSparkError) as info:
        partition(spark, PartitionConfig(lake=cora_lake, out=str(out), **kwargs))
    assert fragment in str(info.value)
    assert leftovers(out) == []


def test_missing_or_invalid_lake(spark, tmp_path):
    with pytest.raises(TmaSparkError, match="does not exist"):
        partition(spark, PartitionConfig(lake=str(tmp_path / "nope"), out=str(tmp_path / "p")))
    (tmp_path / "notalake").mkdir()
    with pytest.raises(TmaSparkError, match="is not a tma_spark lake"):
        partition(spark, PartitionConfig(lake=str(tmp_path / "notalake"), out=str(tmp_path / "p")))
    assert leftovers(tmp_path / "p") == []


def test_existing_parts_refused_and_failed_overwrite_keeps_previous(spark, cora_lake, tmp_path, cli):
    out = tmp_path / "parts"
    code, stdout, err = cli("partition", "--lake", cora_lake, "--out", out, "--parts", "2")
    assert code == 0, err
    assert json.loads(stdout)["parts"] == 2
    code, _, err = cli("partition", "--lake", cora_lake, "--out", out, "--parts", "3")
    assert code == 2 and "already exists" in err and "--overwrite" in err
    before = (out / "stats.json").read_text()
    with pytest.raises(TmaSparkError):
        partition(spark, PartitionConfig(lake=cora_lake, out=str(out), strategy="metis", overwrite=True,
                                         metis_max_edges=10))
    assert (out / "stats.json").read_text() == before and leftovers(out) == ["parts"]
    code, stdout, _ = cli("partition", "--lake", cora_lake, "--out", out, "--parts", "3", "--overwrite")
    assert code == 0 and json.loads(stdout)["parts"] == 3 and leftovers(out) == ["parts"]
