"""Streaming ingest of in-memory graphs (npz files, datasets): bounded chunks staged as Parquet, then Spark."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import leftovers
from tma_spark.errors import InputValidationError
from tma_spark.ingest import IngestConfig, ingest
from tma_spark.ingest.datasets import GraphArrays, load_npz
from tma_spark.ingest.staging import dense_size, node_chunk_rows, stage_graph

BIN = Path(sys.executable).parent


def sparse_npz(path, n, d, density=0.005, degree=5, classes=10, seed=0, nan_at=None):
    """An npz graph file (gnn-benchmark layout) of ``n`` nodes with ``d`` sparse features (about ``density``
    of them non-zero per node), about ``degree`` random edges per node and ``classes`` labels; seeded."""
    rng = np.random.default_rng(seed)
    k = max(1, int(round(density * d)))
    cols = np.sort(rng.integers(0, d, size=(n, k)), axis=1)
    keep = np.ones((n, k), dtype=bool)
    keep[:, 1:] = cols[:, 1:] != cols[:, :-1]  # distinct columns per row
    attr_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=attr_indptr[1:])
    attr_data = rng.random(int(attr_indptr[-1]), dtype=np.float32) + 0.5
    if nan_at is not None:
        attr_data[attr_indptr[nan_at]] = np.nan
    src, dst = rng.integers(0, n, size=n * degree), rng.integers(0, n, size=n * degree)
    adj_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=adj_indptr[1:])
    np.savez(path, adj_indptr=adj_indptr, adj_indices=dst[np.argsort(src, kind="stable")].astype(np.int32),
             adj_shape=np.array([n, n]), attr_indptr=attr_indptr, attr_indices=cols[keep].astype(np.int32),
             attr_data=attr_data, attr_shape=np.array([n, d]), labels=rng.integers(0, classes, size=n))
    return str(path)


@pytest.mark.parametrize("dim", [1, 7, 8000, 10**8])
def test_a_node_chunk_holds_at_most_the_byte_budget(dim):
    rows = node_chunk_rows(dim, chunk_bytes=64 * 2**20)
    assert rows >= 1 and (rows == 1 or rows * dim * 4 <= 64 * 2**20)
    assert dense_size(34_493, 8_415) == "34,493 nodes x 8,415 features (1.16 GB as dense float32)"


def test_staged_tables_hold_the_graph_exactly(tmp_path):
    g = load_npz(sparse_npz(tmp_path / "g.npz", 50, 7, density=0.3))
    g.labels[[3, 4]] = -1  # unlabelled: null label
    g.split[[5, 6]] = -1  # no split: null
    staged = stage_graph(g, str(tmp_path / "staging"), chunk_bytes=8 * 7 * 4, edge_rows=40)
    assert staged.node_files == 7 and staged.edge_files == -(-len(g.src) // 40)
    nodes = pq.read_table(staged.nodes).to_pydict()
    assert nodes["id"] == list(range(50))
    assert np.array_equal(np.array(nodes["features"], dtype=np.float32), g.feature_rows(0, 50))
    assert nodes["label"][3] is None and nodes["label"][7] == g.labels[7]
    assert nodes["split"][5] is None and nodes["split"][7] == ("train", "val", "test")[g.split[7]]
    edges = pq.read_table(staged.edges)
    assert edges.column("src").to_pylist() == g.src.tolist() and edges.column("dst").to_pylist() == g.dst.tolist()


def test_a_graph_without_edges_stages_an_empty_edge_table(tmp_path):
    g = GraphArrays(name="g", src=np.zeros(0, np.int64), dst=np.zeros(0, np.int64), num_nodes=2, labels=None,
                    split=np.array([-1, -1], np.int8), directed=False, features=np.ones((2, 3), np.float32))
    staged = stage_graph(g, str(tmp_path / "staging"))
    assert staged.edge_files == 1 and pq.read_table(staged.edges).num_rows == 0
    assert pq.read_table(staged.nodes).column("label").null_count == 2


@pytest.mark.spark
def test_staged_npz_is_validated_by_spark_and_the_staging_removed(spark, tmp_path):
    """A NaN feature in an npz is found by the Spark checks over the staged tables; nothing is left behind."""
    lake = tmp_path / "lake"
    with pytest.raises(InputValidationError, match="NaN, infinite or non-numeric values in 1 rows"):
        ingest(spark, IngestConfig(lake=str(lake), npz=sparse_npz(tmp_path / "bad.npz", 40, 6, 0.5, nan_at=17)))
    assert leftovers(lake) == []


@pytest.mark.spark
def test_wide_sparse_npz_ingests_with_the_default_driver_memory(spark, tmp_path):
    """30,000 nodes x 8,000 sparse features (0.96 GB dense) through the real CLI, default settings. Before
    streaming, 34,493 x 8,415 ran out of the driver JVM's memory."""
    n, d = 30_000, 8_000
    npz = sparse_npz(tmp_path / "wide.npz", n, d)
    lake = tmp_path / "lake"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("TMA_SPARK_DRIVER_MEMORY", None)
    started = time.time()
    r = subprocess.run([BIN / "tma-spark", "ingest", "-q", "--npz", npz, "--lake", lake], capture_output=True,
                       text=True, env=env)
    seconds = time.time() - started
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"ingest of {n} x {d} sparse npz: {seconds:.1f} s")
    meta = json.loads((lake / "_tma_lake.json").read_text())
    assert (meta["num_nodes"], meta["feature_dim"]) == (n, d)
    assert leftovers(lake) == ["lake"]
    row = spark.read.format("delta").load(str(lake / "nodes")).where("id = 12345").first()
    assert np.array_equal(np.asarray(row["features"], dtype=np.float32), load_npz(npz).feature_rows(12345, 12346)[0])


@pytest.mark.spark
def test_npz_staging_beside_an_s3a_lake_is_written_and_removed_through_the_store(spark, cli, s3):
    """The staged tables go beside the lake on the store (pyarrow's S3 client, the settings given to Spark),
    Spark reads them through s3a, and nothing but the lake is left."""
    code, _, err = cli("ingest", "--dataset", "cora", "--lake", "s3a://lake/staged/cora")
    assert code == 0, err
    keys = s3.keys("lake", "staged/")
    assert keys and all(k.startswith("staged/cora/") for k in keys), [k for k in keys if "/cora/" not in k]
    assert spark.read.format("delta").load("s3a://lake/staged/cora/nodes").count() == 2708
