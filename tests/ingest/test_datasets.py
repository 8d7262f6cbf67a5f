"""Pure tests of dataset loading and the seeded split (no Spark)."""

import numpy as np
import pytest

from tma_spark.ingest import datasets
from tma_spark.errors import TmaSparkError


@pytest.mark.parametrize("n,seed", [(10, 0), (2708, 1), (1001, 7)])
def test_seeded_split_sizes_and_determinism(n, seed):
    a = datasets.seeded_split(n, seed)
    assert np.array_equal(a, datasets.seeded_split(n, seed))
    assert not np.array_equal(a, datasets.seeded_split(n, seed + 1)) or n < 3
    counts = np.bincount(a, minlength=3)
    assert counts[0] == round(0.6 * n) and counts[1] == round(0.2 * n) and counts.sum() == n


def test_seeded_split_rejects_bad_fractions():
    with pytest.raises(TmaSparkError, match="summing to 1"):
        datasets.seeded_split(10, 0, (0.5, 0.2, 0.2))


def test_undirected_pairs_dedups_both_directions_and_keeps_self_loops():
    # edges 0-1 both ways, 1-2 one way, self-loop on 2
    indptr = np.array([0, 1, 3, 5])
    indices = np.array([1, 0, 2, 1, 2])
    src, dst = datasets.undirected_pairs(indptr, indices)
    assert sorted(zip(src.tolist(), dst.tolist())) == [(0, 1), (1, 2), (2, 2)]


def test_bundled_cora_matches_published_counts():
    g = datasets.load_dataset("cora")
    assert g.num_nodes == 2708 and len(g.src) == 5278 and g.feature_dim == 1433
    assert set(np.unique(g.labels)) == set(range(7))
    assert (g.src <= g.dst).all()
    dense = g.feature_rows(0, 5)
    assert dense.shape == (5, 1433) and dense.dtype == np.float32 and dense.sum() > 0


def test_feature_rows_equal_scipy_style_densify():
    g = datasets.load_dataset("cora")
    indptr, indices, data, shape = g.csr
    row = 100
    expect = np.zeros(shape[1], dtype=np.float32)
    expect[indices[indptr[row]:indptr[row + 1]]] = data[indptr[row]:indptr[row + 1]]
    assert np.array_equal(g.feature_rows(98, 102)[2], expect)


def test_unknown_dataset_and_missing_data_dir(tmp_path):
    with pytest.raises(TmaSparkError, match="Unknown dataset 'nope'"):
        datasets.resolve_dataset("nope")
    with pytest.raises(TmaSparkError, match="--data-dir"):
        datasets.resolve_dataset("citeseer", str(tmp_path))


def test_npz_missing_keys_and_not_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, labels=np.zeros(3, dtype=np.int32))
    with pytest.raises(TmaSparkError, match="lacks the npz graph keys"):
        datasets.load_npz(bad)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(TmaSparkError, match="not a readable npz"):
        datasets.load_npz(junk)


@pytest.mark.parametrize("values", [[], [5], [3, 1, 3, 2, 1], list(range(100, 0, -7)) * 3])
def test_unique_int64_equals_np_unique(values):
    from tma_spark.arrays import unique_int64

    x = np.asarray(values, dtype=np.int64)
    assert np.array_equal(unique_int64(x), np.unique(x))
