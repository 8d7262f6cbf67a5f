"""L-hop neighbourhood extraction with Spark: node set, induced edges, exact GNN outputs, bad seeds."""

from collections import deque

import numpy as np
import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.lake import open_lake
from tma_spark.train.graphdata import build_graph, read_table
from tma_spark.train.models import build_model
from tma_spark.train.neighbourhood import extract_neighbourhood

pytestmark = pytest.mark.spark

# Both ends of the id range, a duplicate, and 30 random nodes.
SEEDS = [0, 7, 7, 2707] + np.random.default_rng(0).choice(np.arange(8, 2707), 30, replace=False).tolist()


@pytest.fixture(scope="module")
def full(cora_lake):
    """The whole Cora graph as GraphTensors, read without Spark."""
    nodes = read_table(f"{cora_lake}/nodes", "delta", ["id", "features", "label", "split"])
    edges = read_table(f"{cora_lake}/edges", "delta", ["src", "dst"])
    return build_graph(nodes, edges), edges


@pytest.fixture(scope="module")
def adjacency(full):
    g, _ = full
    adj = {i: set() for i in g.node_ids.tolist()}
    ids = g.node_ids.tolist()
    for a, b in g.edge_index.t().tolist():
        adj[ids[a]].add(ids[b])
    return adj


@pytest.fixture(scope="module")
def extracted(spark, cora_lake):
    """Extraction results by hop count (each extraction runs once for the module)."""
    lake = open_lake(spark, cora_lake)
    cache = {}

    def get(hops):
        if hops not in cache:
            cache[hops] = extract_neighbourhood(spark, lake.nodes(), lake.edges(), np.asarray(SEEDS), hops)
        return cache[hops]

    return get


def bfs(adj, seeds, hops):
    dist = {s: 0 for s in seeds}
    queue = deque(seeds)
    while queue:
        u = queue.popleft()
        if dist[u] == hops:
            continue
        for v in adj[u]:
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return set(dist)


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_node_set_equals_bfs(extracted, adjacency, hops):
    nodes, _ = extracted(hops)
    ids = nodes.column("id").to_pylist()
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert set(ids) == bfs(adjacency, sorted(set(SEEDS)), hops)
    assert nodes.column_names == ["id", "features", "label", "split"]


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_edges_are_the_induced_subgraph(extracted, full, hops):
    nodes, edges = extracted(hops)
    assert edges.column_names == ["src", "dst"] and all(str(t) == "int64" for t in edges.schema.types)
    keep = set(nodes.column("id").to_pylist())
    src, dst = edges.column("src").to_pylist(), edges.column("dst").to_pylist()
    assert all(s in keep and d in keep for s, d in zip(src, dst))
    full_src, full_dst = full[1].column("src").to_pylist(), full[1].column("dst").to_pylist()
    inside = sorted((s, d) for s, d in zip(full_src, full_dst) if s != d and s in keep and d in keep)
    assert sorted(zip(src, dst)) == inside
    if hops > 0:
        assert len(inside) > 0


def test_two_layer_sage_gives_full_graph_logits_for_the_seeds(extracted, full):
    g, _ = full
    seeds = sorted(set(SEEDS))
    sub = build_graph(*extracted(2))
    assert sub.num_nodes < g.num_nodes
    model = build_model("sage", g.x.shape[1], 16, int(g.y.max()) + 1).eval()
    assert torch.equal(g.node_ids, torch.arange(g.num_nodes))  # Cora ids are dense: full-graph row == id
    with torch.no_grad():
        want = model(g.x, g.edge_index)[torch.tensor(seeds)]
        rows = torch.searchsorted(sub.node_ids, torch.tensor(seeds))
        assert sub.node_ids[rows].tolist() == seeds
        got = model(sub.x, sub.edge_index)[rows]
    assert (got - want).abs().max().item() < 1e-5


def test_unknown_seeds_are_named(spark, cora_lake):
    lake = open_lake(spark, cora_lake)
    with pytest.raises(TmaSparkError, match=r"2 of 3 seed ids are not in the node table.*5000, 99999"):
        extract_neighbourhood(spark, lake.nodes(), lake.edges(), np.array([99999, 5, 5000]), 1)


def test_negative_hops_are_refused(spark, cora_lake):
    lake = open_lake(spark, cora_lake)
    with pytest.raises(TmaSparkError, match="hops=-1"):
        extract_neighbourhood(spark, lake.nodes(), lake.edges(), np.array([0]), -1)


def _star(spark, leaves: int):
    """A hub (id 0) joined to every leaf 1..leaves, and a path 1-2-3 among the first leaves."""
    nodes = spark.createDataFrame([(i, [float(i), 1.0], i % 3, "val") for i in range(leaves + 1)],
                                  "id long, features array<float>, label int, split string")
    pairs = [(0, i) for i in range(1, leaves + 1)] + [(1, 2), (2, 3), (3, 2)]
    edges = spark.createDataFrame(pairs, "src long, dst long")
    return nodes, edges, pairs


def test_sampled_neighbourhood_of_a_hub_graph_is_bounded_by_the_sample(spark):
    """Two hops from a few leaves of a star reach every node exactly; with capped fan-outs what reaches the
    driver stays within seeds x (1 + f1 + f1 f2), and every sampled edge is a real one. Fails if the whole
    neighbourhood is collected."""
    from tma_spark.train.neighbourhood import sample_neighbourhood, sampled_bound

    leaves, seeds, fanouts = 3000, np.array([1, 2, 50, 60, 70]), (3, 4)
    nodes, edges, pairs = _star(spark, leaves)
    exact_nodes, _ = extract_neighbourhood(spark, nodes, edges, seeds, 2)
    assert exact_nodes.num_rows == leaves + 1  # the hub brings in the whole graph
    sampled_nodes, sampled_edges = sample_neighbourhood(spark, nodes, edges, seeds, fanouts, seed=3)
    max_nodes, max_edges = sampled_bound(len(seeds), fanouts)
    assert sampled_nodes.num_rows <= max_nodes == 5 * (1 + 3 + 12)
    assert sampled_edges.num_rows <= max_edges
    ids = set(sampled_nodes.column("id").to_pylist())
    assert set(seeds.tolist()) <= ids and 0 in ids  # every leaf's only neighbour on hop 1 is the hub (or 1-2-3)
    undirected = {frozenset(p) for p in pairs}
    kept = list(zip(sampled_edges.column("src").to_pylist(), sampled_edges.column("dst").to_pylist()))
    assert kept and all(frozenset(e) in undirected for e in kept)
    assert {s for s, _ in kept} <= ids and {d for _, d in kept} <= ids
    hub_kept = [d for s, d in kept if s == 0]
    assert len(hub_kept) == 4  # the hub, reached in hop 1, keeps fan-out 4 of its 3000 neighbours in hop 2
    again = sample_neighbourhood(spark, nodes, edges, seeds, fanouts, seed=3)
    assert again[0].equals(sampled_nodes) and again[1].equals(sampled_edges)  # seeded: the same every run
    other = sample_neighbourhood(spark, nodes, edges, seeds, fanouts, seed=4)[1]
    assert sorted(d for s, d in zip(other.column("src").to_pylist(), other.column("dst").to_pylist())
                  if s == 0) != sorted(hub_kept)
    graph = build_graph(sampled_nodes, sampled_edges)
    assert graph.num_nodes == sampled_nodes.num_rows and graph.x.shape == (graph.num_nodes, 2)
