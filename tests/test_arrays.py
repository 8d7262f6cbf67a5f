"""Pure numpy helpers (no Spark, no torch): symmetric CSR for METIS, unique, splitmix64."""

import numpy as np
import pytest

from tma_spark.arrays import splitmix64, symmetric_csr, symmetric_edge_index, symmetric_edges, unique_int64


def test_symmetric_csr_drops_loops_and_duplicates_and_adds_reverse_edges():
    # 0->1 twice and 1->0 (one undirected edge), a self-loop on 2, 2->3, 3->1; node 4 is isolated
    src = np.array([0, 0, 1, 2, 2, 3])
    dst = np.array([1, 1, 0, 2, 3, 1])
    xadj, adjncy = symmetric_csr(src, dst, 5)
    assert xadj.tolist() == [0, 1, 3, 4, 6, 6]
    assert adjncy.tolist() == [1, 0, 3, 3, 1, 2]  # rows 0: {1}, 1: {0, 3}, 2: {3}, 3: {1, 2}, 4: {}
    assert xadj.dtype == np.int64 and adjncy.dtype == np.int64


def test_symmetric_edges_is_sorted_symmetric_and_leaves_its_input_alone():
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    before = (src.copy(), dst.copy())
    rows, cols = symmetric_edges(src, dst, 50)
    assert np.array_equal(src, before[0]) and np.array_equal(dst, before[1])
    pairs = set(zip(rows.tolist(), cols.tolist()))
    expected = {(a, b) for a, b in zip(src.tolist(), dst.tolist()) if a != b}
    assert pairs == expected | {(b, a) for a, b in expected}
    assert len(pairs) == len(rows)  # no duplicates
    keys = rows * 50 + cols
    assert np.all(keys[1:] > keys[:-1])  # sorted by row, then column


def test_symmetric_edge_index_is_one_array_holding_rows_then_columns():
    src, dst = np.array([3, 0, 2, 1]), np.array([0, 3, 2, 0])
    edge_index = symmetric_edge_index(src, dst, 4)
    assert edge_index.shape == (2, 4) and edge_index.dtype == np.int64 and edge_index.flags.c_contiguous
    assert edge_index.tolist() == [[0, 0, 1, 3], [1, 3, 0, 0]]
    rows, cols = symmetric_edges(src, dst, 4)
    assert rows.base is not None and rows.base is cols.base  # views of the one array, not copies
    assert symmetric_edge_index(np.array([], np.int64), np.array([], np.int64), 2).shape == (2, 0)


def test_symmetric_csr_of_no_edges():
    xadj, adjncy = symmetric_csr(np.array([], np.int64), np.array([], np.int64), 3)
    assert xadj.tolist() == [0, 0, 0, 0] and adjncy.tolist() == []


def test_symmetric_csr_is_accepted_by_metis():
    pymetis = pytest.importorskip("pymetis")
    src = np.array([0, 1, 2, 3, 4, 5, 0, 3])
    dst = np.array([1, 2, 0, 4, 5, 3, 3, 0])  # two triangles joined by 0-3, with a duplicate
    xadj, adjncy = symmetric_csr(src, dst, 6)
    result = pymetis.part_graph(2, pymetis.CSRAdjacency(xadj, adjncy))
    assert result.edge_cuts == 1


@pytest.mark.parametrize("overwrite", [False, True])
def test_unique_int64_matches_np_unique(overwrite):
    x = np.random.default_rng(1).integers(-5, 5, 100)
    expected = np.unique(x)
    assert np.array_equal(unique_int64(x.copy(), overwrite=overwrite), expected)
    assert unique_int64(np.array([], np.int64)).size == 0


def test_splitmix64_is_the_standard_generator():
    # splitmix64 seeded with 0: its first output is 0xE220A8397B1DCDAF
    assert int(splitmix64(np.array([0]), 0)[0]) == 0xE220A8397B1DCDAF
    assert splitmix64(np.arange(4), 1).dtype == np.uint64
    assert not np.array_equal(splitmix64(np.arange(4), 1), splitmix64(np.arange(4), 2))


def test_hop_distances_counts_hops_from_the_nearest_source_and_caps_the_rest():
    from tma_spark.arrays import hop_distances

    # path 0-1-2-3-4 (both directions) and an isolated node 5
    src = np.array([0, 1, 1, 2, 2, 3, 3, 4])
    dst = np.array([1, 0, 2, 1, 3, 2, 4, 3])
    assert hop_distances(src, dst, 6, np.array([0]), 2).tolist() == [0, 1, 2, 3, 3, 3]
    assert hop_distances(src, dst, 6, np.array([0, 4]), 2).tolist() == [0, 1, 2, 1, 0, 3]
    # directed: only src -> dst edges are followed
    assert hop_distances(np.array([0]), np.array([1]), 2, np.array([1]), 1).tolist() == [2, 0]
