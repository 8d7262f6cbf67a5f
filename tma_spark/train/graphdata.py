"""Read graph tables into torch tensors with pyarrow, without Spark (executor and driver side).

Delta tables are read by replaying their JSON commit log (add / remove actions)
to find the live Parquet files, then reading only those files (optionally only
one ``part`` partition) with pyarrow. Parquet tables are read as a dataset.
This keeps trainer tasks free of the SparkSession and of Petastorm (see README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch

from ..arrays import symmetric_edges
from ..delta_log import delta_live_files, local_path

__all__ = ["delta_live_files", "read_table", "GraphTensors", "build_graph", "message_passing_edges", "SPLIT_CODES"]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def read_table(table: str, fmt: str, columns: List[str], partition: Optional[dict] = None) -> pa.Table:
    """Read ``columns`` of a Delta or Parquet table (optionally one partition) into Arrow."""
    table = local_path(table)
    if fmt == "delta":
        files = delta_live_files(table, partition)
        if not files:
            return pa.table({c: pa.array([]) for c in columns})
        parts = [pq.read_table(f, columns=[c for c in columns if c not in (partition or {})]) for f in files]
        return pa.concat_tables(parts, promote_options="default")
    dataset = ds.dataset(table, format="parquet", partitioning="hive")
    flt = None
    for k, v in (partition or {}).items():
        cond = ds.field(k) == v
        flt = cond if flt is None else flt & cond
    return dataset.to_table(columns=[c for c in columns if c not in (partition or {})], filter=flt)


def message_passing_edges(edges: pa.Table, task: str) -> pa.Table:
    """The edges a model may see: all of them for node tasks; for link prediction only training edges
    (``split`` train or null), so that validation and test edges stay held out."""
    if task != "link" or "split" not in edges.column_names:
        return edges
    split = edges.column("split")
    keep = pc.or_kleene(pc.is_null(split), pc.equal(split, "train"))
    return edges.filter(pc.fill_null(keep, True))


@dataclass
class GraphTensors:
    """A (sub)graph ready for PyG: local ids 0..n-1, global ids kept in ``node_ids``."""

    node_ids: torch.Tensor  # (n,) global ids
    x: torch.Tensor  # (n, d) float32
    y: torch.Tensor  # (n,) long, -1 where unlabelled
    split: torch.Tensor  # (n,) int8 codes, -1 where none
    edge_index: torch.Tensor  # (2, m) local ids, symmetric, no self-loops, no duplicates

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    def mask(self, split: str) -> torch.Tensor:
        return (self.split == SPLIT_CODES[split]) & (self.y >= 0)


def _empty_graph() -> GraphTensors:
    """A graph without nodes (an empty part: small N, large K); its trainer has no targets and trains 0 steps."""
    return GraphTensors(torch.zeros(0, dtype=torch.long), torch.zeros(0, 0), torch.zeros(0, dtype=torch.long),
                        torch.zeros(0, dtype=torch.int8), torch.zeros(2, 0, dtype=torch.long))


def build_graph(nodes: pa.Table, edges: pa.Table) -> GraphTensors:
    """Tensors of a graph from its node and edge tables; edges to unknown nodes are dropped."""
    if nodes.num_rows == 0:  # an empty Delta partition reads as columns of type null: nothing to convert
        return _empty_graph()
    order = np.argsort(nodes.column("id").to_numpy())
    nodes = nodes.take(pa.array(order))
    ids = nodes.column("id").to_numpy()
    feats = nodes.column("features").combine_chunks()
    n = len(ids)
    dim = len(feats[0]) if n else 0
    x = feats.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, dim)
    y = nodes.column("label").to_numpy(zero_copy_only=False)
    y = np.where(np.isnan(y.astype(np.float64)), -1, y).astype(np.int64) if n else np.zeros(0, np.int64)
    split_names = nodes.column("split").to_pylist()
    split = np.array([SPLIT_CODES.get(s, -1) if s is not None else -1 for s in split_names], dtype=np.int8)
    src = edges.column("src").to_numpy()
    dst = edges.column("dst").to_numpy()
    s_loc, d_loc = np.searchsorted(ids, src), np.searchsorted(ids, dst)
    s_loc, d_loc = np.minimum(s_loc, max(n - 1, 0)), np.minimum(d_loc, max(n - 1, 0))
    ok = (n > 0) & (ids[s_loc] == src) & (ids[d_loc] == dst) & (src != dst) if n else np.zeros(0, bool)
    rows, cols = symmetric_edges(s_loc[ok], d_loc[ok], n)  # symmetric, deduplicated, sorted
    edge_index = torch.from_numpy(np.stack([rows, cols])) if n else torch.zeros(2, 0, dtype=torch.long)
    return GraphTensors(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(x), torch.from_numpy(y),
                        torch.from_numpy(split), edge_index)
