"""SuperTMA: label propagation, super-node size caps, balanced random assignment (real Spark)."""

import itertools
import os
import tempfile
from collections import Counter

import pytest
from pyspark.sql import functions as F

from helpers import leftovers
from tma_spark.errors import TmaSparkError
from tma_spark.events import Recorder
from tma_spark.partition import PartitionConfig, partition, supernodes
from tma_spark.partition.supernodes import (default_super_nodes, graphframes_available, label_propagation,
                                            super_assignment)

pytestmark = pytest.mark.spark

_M64 = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                           0x27D4EB2F165667C5)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(h):
    h = (h ^ (h >> 33)) * _P2 & _M64
    h = (h ^ (h >> 29)) * _P3 & _M64
    return h ^ (h >> 32)


def _parity(node):
    """Spark's ``pmod(xxhash64(id, 'lpa'), 2)``, written out: XXH64 of the long (seed 42), then of the bytes
    of 'lpa' seeded with that hash."""
    h = (42 + _P5 + 8) & _M64
    h ^= _rotl(node * _P2 & _M64, 31) * _P1 & _M64
    h = _fmix((_rotl(h, 27) * _P1 + _P4) & _M64)
    h = (h + _P5 + 3) & _M64
    for byte in b"lpa":
        h ^= byte * _P5 & _M64
        h = _rotl(h, 11) * _P1 & _M64
    return _fmix(h) & 1


def _reference_lpa(num_nodes, pairs, max_iter, tolerance=0.0):
    """The label propagation of the built-in implementation, one node at a time: in iteration ``it`` the nodes
    of parity ``it % 2`` take their neighbours' most frequent label (ties: the smallest), all reading the
    labels of the previous iteration; stop when at most ``tolerance`` of the nodes changed."""
    neighbours = [set() for _ in range(num_nodes)]
    for a, b in pairs:
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    labels = list(range(num_nodes))
    for it in range(max_iter):
        new, changed = list(labels), 0
        for v in range(num_nodes):
            if _parity(v) == it % 2 and neighbours[v]:
                counts = Counter(labels[u] for u in neighbours[v])
                new[v] = min(counts, key=lambda c: (-counts[c], c))
                changed += new[v] != labels[v]
        labels = new
        if changed <= tolerance * num_nodes:
            break
    return labels


def _cliques_graph(spark):
    """Cliques of 3 to 12 nodes, each joined to the next by one bridge, plus a few duplicate and reversed edges,
    a self-loop and 3 isolated nodes (ids 70-72)."""
    pairs, base = [], 0
    for size in (3, 5, 8, 12, 4, 9, 6, 11, 7, 5):
        pairs += itertools.combinations(range(base, base + size), 2)
        if base:
            pairs.append((base - 1, base))
        base += size
    pairs += [(1, 0), (0, 1), (9, 9), (20, 18)]
    nodes = spark.createDataFrame([(i,) for i in range(base + 3)], "id long")
    return nodes, spark.createDataFrame(pairs, "src long, dst long"), base + 3, pairs


def _communities(df, num_nodes):
    got = {r["id"]: r["community"] for r in df.collect()}
    assert sorted(got) == list(range(num_nodes))
    return [got[i] for i in range(num_nodes)]


def _two_cliques(spark, size):
    ids = list(range(2 * size))
    pairs = [(a, b) for base in (0, size) for a, b in itertools.combinations(range(base, base + size), 2)]
    pairs.append((0, size))  # one bridge
    nodes = spark.createDataFrame([(i,) for i in ids], "id long")
    edges = spark.createDataFrame(pairs, "src long, dst long")
    return nodes, edges


def test_label_propagation_finds_cliques(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its own scratch folder goes (no scratch=)
    nodes, edges = _two_cliques(spark, 30)
    comm = {r["id"]: r["community"] for r in label_propagation(spark, nodes, edges, 6, "builtin").collect()}
    assert len({comm[i] for i in range(30)}) == 1 and len({comm[i] for i in range(30, 60)}) == 1
    assert comm[0] != comm[30]
    assert os.listdir(tmp_path) == []  # its scratch folder is gone; the result is held by localCheckpoint


def test_builtin_lpa_matches_a_one_process_reference_on_cliques(spark, tmp_path):
    nodes, edges, n, pairs = _cliques_graph(spark)
    scratch = str(tmp_path / "scratch")
    with Recorder("partition.lpa_iteration") as rec:
        got = _communities(label_propagation(spark, nodes, edges, 10, "builtin", scratch=scratch), n)
    assert got == _reference_lpa(n, pairs, 10)
    assert got[70:] == [70, 71, 72] and len(set(got)) < 20  # isolated nodes keep their id; cliques merge
    runs = len(rec.events)
    assert [e.fields["iteration"] for e in rec.events] == list(range(1, runs + 1))
    assert rec.events[-1].fields["changed"] == 0 or runs == 10
    # each iteration is written once, and only the last two are kept
    assert sorted(os.listdir(scratch)) == [f"iter-{k}" for k in range(max(1, runs - 1), runs + 1)]
    written = spark.read.parquet(f"{scratch}/iter-{runs}")
    assert written.columns == ["id", "community", "changed"] and written.where("changed").count() == \
        rec.events[-1].fields["changed"]


def test_builtin_lpa_matches_a_one_process_reference_on_cora(spark, tmp_path, cora_lake):
    nodes = spark.read.format("delta").load(f"{cora_lake}/nodes")
    edges = spark.read.format("delta").load(f"{cora_lake}/edges")
    pairs = [(r["src"], r["dst"]) for r in edges.select("src", "dst").collect()]
    got = _communities(label_propagation(spark, nodes, edges, 10, "builtin", scratch=str(tmp_path / "s")), 2708)
    assert got == _reference_lpa(2708, pairs, 10)
    assert 20 < len(set(got)) < 1500


def test_lpa_tolerance_stops_early(spark, tmp_path):
    nodes, edges, n, pairs = _cliques_graph(spark)
    with Recorder("partition.lpa_iteration") as rec:
        got = _communities(label_propagation(spark, nodes, edges, 10, "builtin", scratch=str(tmp_path / "s"),
                                             tolerance=0.1), n)
    changed = [e.fields["changed"] for e in rec.events]
    assert changed[-1] <= 0.1 * n and all(c > 0.1 * n for c in changed[:-1]) and 0 < changed[-1]  # stopped early
    assert got == _reference_lpa(n, pairs, 10, tolerance=0.1) != _reference_lpa(n, pairs, 10)


def _subtrees(lines: list, node: str) -> list:
    """The subtrees (lists of lines) of a plan printed by ``DataFrame.explain()`` whose root starts with
    ``node``, found by the depth of each line's operator."""
    depth = [len(line) - len(line.lstrip(" :+-|")) for line in lines]
    out = []
    for i, line in enumerate(lines):
        if line.lstrip(" :+-|").startswith(node):
            below = itertools.takewhile(lambda j: depth[j] > depth[i], range(i + 1, len(lines)))
            out.append([line] + [lines[j] for j in below])
    return out


def _ancestors(lines: list, i: int) -> list:
    """The indices of the operators above line ``i`` of a printed plan, nearest first."""
    depth = [len(line) - len(line.lstrip(" :+-|")) for line in lines]
    out = []
    for j in range(i - 1, -1, -1):
        if depth[j] < (depth[out[-1]] if out else depth[i]):
            out.append(j)
    return out


@pytest.mark.parametrize("it", [0, 1])  # the first iteration aggregates differently
def test_an_iteration_exchanges_the_labels_and_never_the_cached_adjacency(spark, tmp_path, capsys, it):
    nodes, edges, _, _ = _cliques_graph(spark)
    adj = supernodes._lpa_adjacency(edges, 3)
    try:
        adj.count()
        nodes.select("id", F.col("id").alias("community")).write.parquet(str(tmp_path / "labels"))
        step = supernodes._lpa_step(supernodes._read_labels(spark, str(tmp_path / "labels"), 3), adj, it, 3)
        capsys.readouterr()
        step.explain()
        plan = capsys.readouterr().out
    finally:
        adj.unpersist()
    # the iteration's own plan, without the plan that built the cached adjacency (under InMemoryRelation)
    lines = [line for line in plan.splitlines()[1:] if line.strip()]
    cached = {id(line) for sub in _subtrees(lines, "InMemoryRelation") for line in sub}
    iteration = [line for line in lines if id(line) not in cached]
    assert any("InMemoryTableScan" in line for line in iteration) and len(iteration) < len(lines)
    exchanged = _subtrees(iteration, "Exchange ")
    assert len(exchanged) == 3  # the labels (for each of the two joins) and the messages
    assert all("hashpartitioning" in sub[0] for sub in exchanged)
    # between the cached adjacency and the join that reads it, nothing is exchanged
    scan = next(i for i, line in enumerate(iteration) if "InMemoryTableScan" in line)
    path = _ancestors(iteration, scan)
    join = next(k for k, i in enumerate(path) if "Join" in iteration[i])
    assert "ShuffledHashJoin" in iteration[path[join]] and not any("Exchange" in iteration[i] for i in path[:join])
    reads = [sub for sub in exchanged if not any("Join" in line for line in sub)]  # the labels, for both joins
    assert len(reads) == 2 and all("FileScan parquet" in sub[-1] for sub in reads)


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
    assert leftovers(tmp_path / "s") == ["s"] and leftovers(tmp_path / "s2") == ["s2"]  # no scratch folder left


def test_lpa_scratch_folder_is_deleted_when_partition_fails(spark, tmp_path, cora_lake, monkeypatch):
    seen = []

    def fail(*args, **kwargs):
        seen.extend((e, os.listdir(tmp_path / e)) for e in os.listdir(tmp_path) if e.startswith(".p.scratch-"))
        raise TmaSparkError("injected failure after label propagation")

    monkeypatch.setattr(supernodes, "balanced_assignment", fail)
    with pytest.raises(TmaSparkError, match="injected failure"):
        partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "p"), strategy="super", parts=4))
    assert len(seen) == 1 and seen[0][1]  # the iterations were there when it failed
    assert leftovers(tmp_path / "p") == []


def test_super_with_metis_clusters(spark, tmp_path, cora_lake):
    s = partition(spark, PartitionConfig(lake=cora_lake, out=str(tmp_path / "s"), strategy="super", parts=4,
                                         super_method="metis", super_nodes=64))
    assert s["super_method"] == "metis" and s["super_nodes"] >= 60
    assert s["edge_retention"] > 0.5 and s["node_balance"] < 1.05
    assert leftovers(tmp_path / "s") == ["s"]  # its scratch folder (the stored assignment) is gone


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


def test_super_partition_on_s3a_keeps_its_scratch_on_the_store_and_removes_it(spark, s3, cora_lake, monkeypatch):
    scratches = []
    builtin = supernodes._builtin_lpa

    def spy(spark, nodes, edges, max_iter, scratch, *args):
        scratches.append(scratch)
        return builtin(spark, nodes, edges, max_iter, scratch, *args)

    monkeypatch.setattr(supernodes, "_builtin_lpa", spy)
    out = "s3a://lake/super/parts"
    stats = partition(spark, PartitionConfig(lake=cora_lake, out=out, strategy="super", parts=4, seed=2,
                                             lpa_iter=3))
    assert len(scratches) == 1 and scratches[0].startswith("s3a://lake/super/.parts.scratch-")
    keys = s3.keys("lake", "super/")
    assert keys and all(k.startswith("super/parts/") for k in keys), keys  # the scratch folder is gone
    assert stats["strategy"] == "super" and spark.read.format("delta").load(f"{out}/assignment").count() == 2708
