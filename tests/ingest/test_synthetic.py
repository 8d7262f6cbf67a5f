"""The synthetic generator: pure batch functions, and the Spark job."""

import numpy as np
import pytest

from tma_spark.errors import ConfigError
from tma_spark.ingest.synthetic import SyntheticConfig, _centroids, edge_batch, generate, node_batch


def test_edges_are_deterministic_and_loop_free():
    cfg = SyntheticConfig(nodes=1000, edges=50_000, communities=5, homophily=0.8, seed=3)
    ids = np.arange(50_000, dtype=np.int64)
    s1, d1 = edge_batch(ids, cfg)
    s2, d2 = edge_batch(ids, cfg)
    assert np.array_equal(s1, s2) and np.array_equal(d1, d2)
    assert not np.array_equal(d1, edge_batch(ids, SyntheticConfig(**{**cfg.__dict__, "seed": 4}))[1])
    assert (s1 != d1).all()
    assert s1.min() >= 0 and max(s1.max(), d1.max()) < cfg.nodes


@pytest.mark.parametrize("h", [0.0, 0.5, 0.9])
def test_homophily_knob_controls_intra_community_edges(h):
    cfg = SyntheticConfig(nodes=10_000, edges=100_000, communities=10, homophily=h, seed=0)
    src, dst = edge_batch(np.arange(cfg.edges), cfg)
    same = np.mean(src % 10 == dst % 10)
    # P(same) = h + (1 - h) * P(random pair shares a community) ~ h + (1 - h) / C, with skew from the power law.
    assert abs(same - (h + (1 - h) / 10)) < 0.08


def test_degrees_are_heavy_tailed():
    cfg = SyntheticConfig(nodes=20_000, edges=200_000, seed=1)
    src, dst = edge_batch(np.arange(cfg.edges), cfg)
    deg = np.bincount(np.concatenate([src, dst]), minlength=cfg.nodes)
    assert deg.max() > 50 * deg.mean()


def _nearest_mean_accuracy(signal):
    cfg = SyntheticConfig(nodes=2000, edges=10, communities=4, feature_dim=16, seed=2, signal=signal)
    batch = node_batch(np.arange(2000, dtype=np.int64), cfg, _centroids(cfg))
    x = np.stack(batch.column(1).to_pylist())
    y = np.asarray(batch.column(2).to_pylist())
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    pred = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return (pred == y).mean(), batch.column(3).to_pylist()


def test_features_correlate_with_labels_as_strongly_as_the_signal_says():
    accuracy, splits = _nearest_mean_accuracy(1.0)
    assert accuracy > 0.8  # nearest class mean classifies far better than chance (0.25)
    assert 0.5 < splits.count("train") / 2000 < 0.7
    weak, _ = _nearest_mean_accuracy(0.1)  # features alone are weak evidence: the graph is needed
    assert _nearest_mean_accuracy(0.0)[0] < weak < accuracy - 0.3


def test_config_validation():
    with pytest.raises(ConfigError, match="homophily"):
        SyntheticConfig(nodes=100, edges=10, homophily=1.5).validate()
    with pytest.raises(ConfigError, match="communities"):
        SyntheticConfig(nodes=10, edges=10, communities=6).validate()
    with pytest.raises(ConfigError, match="--signal -1"):
        SyntheticConfig(nodes=100, edges=10, signal=-1).validate()


@pytest.mark.spark
def test_spark_generator_counts_and_schema(spark):
    cfg = SyntheticConfig(nodes=3000, edges=20_000, communities=3, feature_dim=8, seed=5)
    nodes, edges = generate(spark, cfg, partitions=3)
    assert nodes.count() == 3000 and edges.count() == 20_000
    assert nodes.schema.simpleString().startswith("struct<id:bigint,features:array<float>,label:int,split:string")
    row = edges.agg({"src": "max", "dst": "max"}).first()
    assert max(row) < 3000
    # same config, different partitioning of the work: same graph
    again = generate(spark, cfg, partitions=3)[1]
    assert edges.exceptAll(again).count() == 0
