"""The vectorized CSR neighbour sampler: structure, determinism and exactness against full-graph models."""

import pytest
import torch

from tma_spark.train.models import build_model
from tma_spark.train.sampler import CSR, sample_subgraph

HUB = 9  # in-neighbours 10..39 (degree 30)


def small_graph():
    """A hand-made directed graph of 40 nodes: a few short chains and a hub with 30 in-neighbours."""
    pairs = [(1, 0), (2, 0), (3, 0), (0, 1), (4, 1), (5, 2), (0, 3), (6, 4), (6, 5), (7, 6), (8, 7), (9, 0)]
    pairs += [(u, HUB) for u in range(10, 40)] + [(HUB, u) for u in range(10, 20)] + [(0, 12), (12, 4)]
    return torch.tensor(pairs).t().contiguous(), 40


def random_undirected(n=50, m=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, n, (2, m), generator=g)
    a = a[:, a[0] != a[1]]
    return torch.unique(torch.cat([a, a.flip(0)], 1), dim=1), n


def in_neighbours(edge_index, v):
    return sorted(edge_index[0][edge_index[1] == v].tolist())


def hops(sub):
    """Hop of every local node, reconstructed from the edges: seeds 0, a source one more than its target."""
    hop = torch.full((sub.n_id.numel(),), -1)
    hop[: sub.batch_size] = 0
    src, dst = sub.edge_index
    for h in range(sub.n_id.numel()):
        reached = (hop[dst] == h) & (hop[src] < 0)
        if not reached.any():
            break
        hop[src[reached]] = h + 1
    return hop


def test_csr_from_edge_index():
    ei, n = small_graph()
    csr = CSR.from_edge_index(ei, n)
    assert csr.indptr.dtype == csr.indices.dtype == torch.int64
    assert csr.indptr.shape == (n + 1,) and int(csr.indptr[-1]) == ei.size(1)
    for v in range(n):
        got = sorted(csr.indices[csr.indptr[v]:csr.indptr[v + 1]].tolist())
        assert got == in_neighbours(ei, v)


def test_csr_of_a_sorted_symmetric_graph_is_a_view_and_equals_the_sorted_one():
    from tma_spark.arrays import symmetric_edge_index

    g = torch.Generator().manual_seed(3)
    raw = torch.randint(0, 60, (2, 300), generator=g).numpy()
    ei = torch.from_numpy(symmetric_edge_index(raw[0], raw[1], 61))  # node 60 is isolated
    fast, sorted_ = CSR.from_sorted_symmetric(ei, 61), CSR.from_edge_index(ei, 61)
    assert torch.equal(fast.indptr, sorted_.indptr) and torch.equal(fast.indices, sorted_.indices)
    assert fast.indices.data_ptr() == ei[1].data_ptr()  # the edges are not copied


@pytest.mark.parametrize("fanout", [30, 31, 100, -1])
def test_fanout_at_least_degree_keeps_all_neighbours(fanout):
    ei, n = small_graph()
    sub = sample_subgraph(CSR.from_edge_index(ei, n), torch.tensor([HUB, 0]), [fanout])
    src, dst = sub.n_id[sub.edge_index]
    for v in (HUB, 0):
        assert sorted(src[dst == v].tolist()) == in_neighbours(ei, v)


@pytest.mark.parametrize("fanouts", [(3,), (2, 2), (5, 1, 3), (1, -1), (-1, -1)])
@pytest.mark.parametrize("seeds", [[0], [HUB, 4, 0], [7, 39, 12, 2]])
def test_structure(fanouts, seeds):
    ei, n = small_graph()
    csr = CSR.from_edge_index(ei, n)
    sub = sample_subgraph(csr, torch.tensor(seeds), fanouts, torch.Generator().manual_seed(1))
    n_id, local = sub.n_id, sub.edge_index
    assert n_id.dtype == local.dtype == torch.int64
    assert sub.batch_size == len(seeds) and n_id[: len(seeds)].tolist() == seeds
    assert n_id.unique().numel() == n_id.numel()
    assert local.numel() == 0 or int(local.max()) < n_id.numel()
    glob = n_id[local]
    existing = set(map(tuple, ei.t().tolist()))
    sampled = list(map(tuple, glob.t().tolist()))
    assert set(sampled) <= existing, "every sampled edge exists in the input graph"
    assert len(set(sampled)) == len(sampled), "no duplicate edges"
    hop = hops(sub)
    assert (hop >= 0).all(), "every node is reached from the seeds"
    assert (hop[1:] >= hop[:-1]).all(), "n_id is ordered by hop"
    for t in range(n_id.numel()):
        srcs = glob[0][local[1] == t].tolist()
        h, deg = int(hop[t]), len(in_neighbours(ei, int(n_id[t])))
        if h >= len(fanouts):
            assert not srcs, "nodes of the last hop are not expanded"
            continue
        # Expanded exactly once, at its own hop: the neighbour count obeys that hop's fanout.
        f = fanouts[h]
        assert len(srcs) == deg if f == -1 or deg <= f else 1 <= len(srcs) <= f


def test_same_seed_same_output_different_seed_differs():
    ei, n = small_graph()
    csr = CSR.from_edge_index(ei, n)
    seeds = torch.tensor([HUB, 0])

    def run(s):
        return sample_subgraph(csr, seeds, (5, 3), torch.Generator().manual_seed(s))

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)
    hub_nbrs = [set(x.n_id[x.edge_index[0][x.edge_index[1] == 0]].tolist()) for x in (a, c)]
    assert hub_nbrs[0] != hub_nbrs[1]


def forward_full_and_sampled(kind):
    ei, n = random_undirected()
    x = torch.randn(n, 7, generator=torch.Generator().manual_seed(2))
    seeds = torch.tensor([3, 17, 40, 8, 25])
    sub = sample_subgraph(CSR.from_edge_index(ei, n), seeds, (-1, -1))
    assert sub.n_id.numel() < n, "the 2-hop subgraph should be a strict subgraph"
    model = build_model(kind, 7, 16, 3).eval()
    with torch.no_grad():
        return model(x, ei)[seeds], model(x[sub.n_id], sub.edge_index)[: sub.batch_size]


@pytest.mark.parametrize("kind", ["sage", "gat", "mlp"])
def test_full_neighbourhoods_are_exact(kind):
    full, sampled = forward_full_and_sampled(kind)
    assert (full - sampled).abs().max() < 1e-5


def test_gcn_uses_subgraph_degrees():
    """Documented limitation: GCNConv normalizes by degrees inside the subgraph, so it is not exact."""
    full, sampled = forward_full_and_sampled("gcn")
    assert (full - sampled).abs().max() > 1e-3


def test_duplicate_seeds_raise_and_leave_csr_clean():
    ei, n = small_graph()
    csr = CSR.from_edge_index(ei, n)
    with pytest.raises(ValueError, match="unique"):
        sample_subgraph(csr, torch.tensor([3, 5, 3]), (2,))
    with pytest.raises(ValueError, match="seeds"):
        sample_subgraph(csr, torch.tensor([3, n]), (2,))
    assert (csr.node_map() == -1).all()
    sub = sample_subgraph(csr, torch.tensor([5, 3]), (-1,))
    assert sub.n_id[:2].tolist() == [5, 3] and (csr.node_map() == -1).all()
