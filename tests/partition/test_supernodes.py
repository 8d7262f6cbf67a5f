"""SuperTMA: label propagation, super-node size caps, balanced random assignment (real Spark)."""

import itertools

import pytest

from tma_spark.errors import TmaSparkError
from tma_spark.partition import PartitionConfig, partition
from tma_spark.partition.supernodes import (default_super_nodes, graphframes_available, label_propagation,
                                            super_assignment)

pytestmark = pytest.mark.spark


def _two_cliques(spark, size):
    ids = list(range(2 * size))
    pairs = [(a, b) for base in (0, size) for a, b in itertools.combinations(range(base, base + size), 2)]
    pairs.append((0, size))  # one bridge
    nodes = spark.createDataFrame([(i,) for i in ids], "id long")
    edges = spark.createDataFrame(pairs, "src long, dst long")
    return nodes, edges


def test_label_propagation_finds_cliques(spark):
    nodes, edges = _two_cliques(spark, 30)
    comm = {r["id"]: r["community"] for r in label_propagation(spark, nodes, edges, 6, "builtin").collect()}
    assert len({comm[i] for i in range(30)}) == 1 and len({comm[i] for i in range(30, 60)}) == 1
    assert comm[0] != comm[30]


def test_communities_above_the_cap_are_cut_into_chunks(spark):
    nodes, edges = _two_cliques(spark, 120)
    assignment, chunked, facts = super_assignment(spark, nodes, edges, 240, parts=3, seed=1, super_nodes=12,
                                                  lpa_implementation="builtin")
    assert facts["communities"] == 2 and facts["super_node_cap"] == 20
    assert facts["super_nodes"] == 12  # each 120-node community cut into ceil(120 / 20) = 6 chunks
    sizes = [r["count"] for r in chunked.groupBy("community", "chunk").count().collect()]
    assert sum(sizes) == 240 and max(sizes) <= 20 + 4 * 20 ** 0.5  # random chunks: about the cap
    parts = {r["part"]: r["count"] for r in assignment.groupBy("part").count().collect()}
    assert sorted(parts) == [0, 1, 2] and max(parts.values()) / (240 / 3) < 1.25
    # every node is in exactly one part
    assert assignment.count() == 240 and assignment.select("id").distinct().count() == 240


def test_small_communities_are_kept_whole(spark):
    nodes, edges = _two_cliques(spark, 10)
    _, chunked, facts = super_assignment(spark, nodes, edges, 20, parts=2, seed=0, super_nodes=2,
                                         lpa_implementation="builtin")
    assert facts["super_node_cap"] == 10 and facts["super_nodes"] == 2


def test_super_partition_on_cora(spark, tmp_path, cora_lake):
    s = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "s"), strategy="super", parts=4, seed=2))
    r = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "r"), strategy="random", parts=4, seed=2))
    assert s["strategy"] == "super" and s["super_nodes_target"] == default_super_nodes(2708, 4) == 128
    assert s["edge_retention"] > 1.5 * r["edge_retention"]
    assert s["node_balance"] < 1.05  # largest part within a few percent of the mean
    again = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "s2"), strategy="super", parts=4,
                                             seed=2))
    a = spark.read.format("delta").load(str(tmp_path / "s" / "assignment"))
    b = spark.read.format("delta").load(str(tmp_path / "s2" / "assignment"))
    assert a.exceptAll(b).count() == 0 and again["edge_retention"] == s["edge_retention"]


def test_super_with_metis_clusters(spark, tmp_path, cora_lake):
    s = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "s"), strategy="super", parts=4,
                                         super_method="metis", super_nodes=64))
    assert s["super_method"] == "metis" and s["super_nodes"] >= 60
    assert s["edge_retention"] > 0.5 and s["node_balance"] < 1.05


@pytest.mark.parametrize("kwargs,fragment", [
    ({"super_nodes": 2}, "--super-nodes 2 must be between K (4)"),
    ({"super_method": "louvain"}, "--super-method 'louvain' is not one of"),
    ({"lpa": "magic"}, "--lpa 'magic' is not one of"),
])
def test_bad_super_options(spark, tmp_path, cora_lake, kwargs, fragment):
    with pytest.raises(TmaSparkError, match=None) as info:
        partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "p"), strategy="super", parts=4, **kwargs))
    assert fragment in str(info.value) and not (tmp_path / "p").exists()


def test_graphframes_request_without_its_jars_is_a_clear_error(spark, tmp_path, cora_lake):
    assert not graphframes_available(spark)  # its jars are not obtainable from this project's registries
    with pytest.raises(TmaSparkError, match="GraphFrames JVM classes .* are not on the classpath"):
        partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "p"), strategy="super", lpa="graphframes"))
    assert not (tmp_path / "p").exists()
