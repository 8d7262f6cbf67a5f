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


def _ingest_config(**flags):
    """The IngestConfig of ``tma-spark ingest`` with these flags (values as typed on the command line)."""
    from tma_spark.ingest.config import IngestOptions
    from tma_spark.settings import from_values

    return from_values(IngestOptions, {"lake": "lake", **flags}).to_config()


def test_split_flag_gives_a_dataset_those_fractions_and_its_own_split_by_default():
    from tma_spark.ingest.job import load_graph_arrays

    cfg = _ingest_config(dataset="cora", split="0.5,0.25,0.25", seed=3)
    assert cfg.split_fractions == (0.5, 0.25, 0.25)
    g = load_graph_arrays(cfg)
    assert np.bincount(g.split, minlength=3).tolist() == [1354, 677, 677]
    assert np.array_equal(g.split, datasets.seeded_split(2708, 3, (0.5, 0.25, 0.25)))
    assert g.source["split_fractions"] == [0.5, 0.25, 0.25] and g.source["split_seed"] == 3
    default = _ingest_config(dataset="cora")
    assert default.split_fractions is None  # not given: the dataset's own split
    assert np.bincount(load_graph_arrays(default).split, minlength=3).tolist() == [1625, 542, 541]


def test_ogbn_arxiv_keeps_its_official_split_unless_split_is_given(tmp_path):
    import json

    folder = tmp_path / "ogbn_arxiv"
    folder.mkdir()
    n = 20
    np.savez(folder / "adj_full.npz", shape=np.array([n, n]), indptr=np.zeros(n + 1, dtype=np.int64),
             indices=np.zeros(0, dtype=np.int64))
    (folder / "class_map.json").write_text(json.dumps({str(i): i % 3 for i in range(n)}))
    (folder / "role.json").write_text(json.dumps({"tr": list(range(10)), "va": list(range(10, 15)),
                                                  "te": list(range(15, 20))}))
    official = datasets.load_dataset("ogbn_arxiv", str(tmp_path), feature_dim=4)
    assert official.split.tolist() == [0] * 10 + [1] * 5 + [2] * 5 and official.source["split"] == "official"
    mine = datasets.load_dataset("ogbn_arxiv", str(tmp_path), split_seed=1, feature_dim=4,
                                 split_fractions=(0.5, 0.5, 0.0))
    assert np.bincount(mine.split, minlength=3).tolist() == [10, 10, 0]
    assert mine.source["split"] == {"seed": 1, "fractions": [0.5, 0.5, 0.0]}


def test_synthetic_graphs_follow_split_too():
    cfg = _ingest_config(synthetic=True, nodes="100", edges="300", split="0.5,0.5,0")
    assert cfg.synthetic.split == (0.5, 0.5, 0.0)
    assert _ingest_config(synthetic=True, nodes="100", edges="300").synthetic.split == datasets.DEFAULT_SPLIT
