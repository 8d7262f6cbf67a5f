"""Spark-native synthetic graphs with communities, homophily and heavy-tailed degrees.

Every row is generated inside Spark tasks (``spark.range`` + ``mapInArrow``),
so nothing is built on the driver and the generator scales with the cluster.

Model (node ``i`` of ``N``, ``C`` communities):

* community / label: ``i mod C``; member ``k`` of community ``c`` is node ``k*C + c``;
* features: ``signal * centroid[label] + N(0, 1)`` in ``D`` dimensions, with
  seeded standard-normal class centroids, so features are correlated with labels. With the default
  ``signal`` 1 the classes are about sqrt(2D) noise deviations apart and features alone separate them; a
  small ``signal`` (0.1 with D = 64) makes a node's own features weak evidence, so a model has to learn
  to use its neighbourhood, as on real graphs;
* split: a seeded hash of the id gives train/val/test with odds ``split`` (default 60/20/20; ``--split``);
* edge ``e``: the source is ``floor(N * u**ALPHA)`` (a power-law in rank:
  heavy-tailed degrees); with probability ``H`` (homophily) the destination is
  drawn the same way inside the source's community, otherwise from all nodes.
  Self-loops are redirected to the next member of the source's community.

Each Arrow batch seeds its generator with (seed, first row id), so the output
is a pure function of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Tuple

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from ..arrays import splitmix64
from ..errors import ConfigError
from ..lake import EDGE_SCHEMA, NODE_SCHEMA, SPLITS
from .datasets import DEFAULT_SPLIT

__all__ = ["SyntheticConfig", "generate", "node_batch", "edge_batch"]

ALPHA = 3.0  # rank exponent: P(rank <= x) = (x/N)**(1/ALPHA); degree tail exponent about 1 + ALPHA/(ALPHA-1)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic graph."""

    nodes: int
    edges: int
    communities: int = 10
    homophily: float = 0.8
    feature_dim: int = 64
    seed: int = 0
    #: scale of the class centroid in the features (noise has unit variance)
    signal: float = 1.0
    #: train/val/test odds of the node split
    split: Tuple[float, float, float] = DEFAULT_SPLIT

    def validate(self) -> "SyntheticConfig":
        if self.nodes < 2:
            raise ConfigError(f"--nodes {self.nodes}: a synthetic graph needs at least 2 nodes.")
        if self.edges < 1:
            raise ConfigError(f"--edges {self.edges}: a synthetic graph needs at least 1 edge.")
        if not 1 <= self.communities <= self.nodes // 2:
            raise ConfigError(f"--communities {self.communities} must be between 1 and nodes/2 ({self.nodes // 2}).")
        if not 0.0 <= self.homophily <= 1.0:
            raise ConfigError(f"--homophily {self.homophily} must be between 0 and 1.")
        if self.feature_dim < 1:
            raise ConfigError(f"--feature-dim {self.feature_dim} must be at least 1.")
        if not self.signal >= 0.0:
            raise ConfigError(f"--signal {self.signal} must be at least 0 (0: features carry no label signal).")
        return self


def _centroids(cfg: SyntheticConfig) -> np.ndarray:
    return np.random.default_rng([cfg.seed, 1]).standard_normal((cfg.communities, cfg.feature_dim)).astype(np.float32)


def node_batch(ids: np.ndarray, cfg: SyntheticConfig, centroids: np.ndarray) -> pa.RecordBatch:
    """Node rows for ``ids`` (pure function of ids and config)."""
    rng = np.random.default_rng([cfg.seed, 2, int(ids[0]) if len(ids) else 0])
    labels = (ids % cfg.communities).astype(np.int32)
    feats = np.float32(cfg.signal) * centroids[labels] + rng.standard_normal((len(ids), cfg.feature_dim), dtype=np.float32)
    u = (splitmix64(ids, cfg.seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    train, val = cfg.split[0], cfg.split[0] + cfg.split[1]
    split = np.where(u < train, SPLITS[0], np.where(u < val, SPLITS[1], SPLITS[2])).astype(object)
    flat = pa.array(feats.ravel(), type=pa.float32())
    return pa.RecordBatch.from_arrays(
        [pa.array(ids, pa.int64()), pa.FixedSizeListArray.from_arrays(flat, cfg.feature_dim).cast(pa.list_(pa.float32())),
         pa.array(labels, pa.int32()), pa.array(split, pa.string())],
        names=["id", "features", "label", "split"],
    )


def edge_batch(eids: np.ndarray, cfg: SyntheticConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(src, dst) arrays for edge indices ``eids`` (pure function of indices and config)."""
    n, c = cfg.nodes, cfg.communities
    rng = np.random.default_rng([cfg.seed, 3, int(eids[0]) if len(eids) else 0])
    m = len(eids)
    src = np.minimum((n * rng.random(m) ** ALPHA).astype(np.int64), n - 1)
    comm = src % c
    size = (n - comm + c - 1) // c  # members of each source's community
    k = np.minimum((size * rng.random(m) ** ALPHA).astype(np.int64), size - 1)
    inside = k * c + comm
    anywhere = np.minimum((n * rng.random(m) ** ALPHA).astype(np.int64), n - 1)
    dst = np.where(rng.random(m) < cfg.homophily, inside, anywhere)
    loop = dst == src
    nxt = src + c
    dst[loop] = np.where(nxt[loop] < n, nxt[loop], comm[loop])  # the next member, or the community's first
    still = dst == src  # a community of one member: step outside it
    dst[still] = (src[still] + 1) % n
    return src, dst


def generate(spark: SparkSession, cfg: SyntheticConfig, partitions: int | None = None) -> Tuple[DataFrame, DataFrame]:
    """Node and edge DataFrames of the synthetic graph (lazy; nothing runs until written)."""
    cfg.validate()
    par = partitions or max(spark.sparkContext.defaultParallelism, 1)
    edge_parts = max(par, cfg.edges // 2_000_000)
    node_parts = max(par, cfg.nodes * cfg.feature_dim // 20_000_000)
    centroids = _centroids(cfg)

    def nodes_fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield node_batch(b.column(0).to_numpy(), cfg, centroids)

    def edges_fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            src, dst = edge_batch(b.column(0).to_numpy(), cfg)
            yield pa.RecordBatch.from_arrays([pa.array(src), pa.array(dst)], names=["src", "dst"])

    nodes = spark.range(0, cfg.nodes, numPartitions=node_parts).mapInArrow(nodes_fn, NODE_SCHEMA)
    edges = spark.range(0, cfg.edges, numPartitions=edge_parts).mapInArrow(edges_fn, EDGE_SCHEMA)
    return nodes, edges
