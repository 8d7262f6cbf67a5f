"""Real graphs from npz files and the ogbn-arxiv folder, as arrays ready for the lake.

The npz format (``adj_*`` CSR adjacency, ``attr_*`` CSR features, ``labels``,
``class_names``) is the one of shchur/gnn-benchmark, re-packed without pickles;
everything is loaded with ``allow_pickle=False``. Cora ships inside the
package (``tma_spark/data/cora.npz``, see ``tma_spark/data/README.md``) so the
demo and the tests need nothing else.

Graphs from npz files are stored undirected: each unordered pair once
(``src <= dst``), as the published adjacency may hold both directions.
ogbn-arxiv keeps its directed citation edges.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import fs
from ..arrays import unique_int64
from ..errors import TmaSparkError

__all__ = [
    "GraphArrays", "DATASETS", "DEFAULT_SPLIT", "seeded_split", "load_npz", "load_ogbn_arxiv", "load_dataset",
    "resolve_dataset", "undirected_pairs", "bundled_dataset_path", "default_data_dir",
]

log = logging.getLogger(__name__)

#: Dataset name -> file or folder name in the data directory.
DATASETS = {
    "cora": "cora.npz",
    "citeseer": "citeseer.npz",
    "amazon_computers": "amazon_computers.npz",
    "coauthor_cs": "coauthor_cs.npz",
    "ogbn_arxiv": "ogbn_arxiv",
}
BUNDLED = {"cora"}
#: The train/val/test fractions of the seeded node split when ``--split`` is not given and the graph has no
#: split of its own.
DEFAULT_SPLIT = (0.6, 0.2, 0.2)


@dataclass
class GraphArrays:
    """A graph in memory: dense ids 0..N-1, edges, features (dense or CSR), labels, split codes."""

    name: str
    src: np.ndarray
    dst: np.ndarray
    num_nodes: int
    labels: Optional[np.ndarray]
    split: np.ndarray  # int8 codes into SPLITS, -1 for none
    directed: bool
    features: Optional[np.ndarray] = None  # dense (N, D) float32, or None when CSR is given
    csr: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[int, int]]] = None  # indptr, indices, data, shape
    class_names: Sequence[str] = ()
    source: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1]) if self.features is not None else int(self.csr[3][1])

    def feature_rows(self, start: int, stop: int) -> np.ndarray:
        """Dense float32 features of nodes ``start..stop-1`` (densifies CSR one chunk at a time)."""
        if self.features is not None:
            return np.ascontiguousarray(self.features[start:stop], dtype=np.float32)
        indptr, indices, data, shape = self.csr
        out = np.zeros((stop - start, shape[1]), dtype=np.float32)
        lo, hi = indptr[start], indptr[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(indptr[start:stop + 1]))
        out[rows, indices[lo:hi]] = data[lo:hi]
        return out


def seeded_split(num_nodes: int, seed: int, fractions: Sequence[float] = DEFAULT_SPLIT) -> np.ndarray:
    """Random train/val/test split as int8 codes (0 train, 1 val, 2 test), exact sizes, reproducible.

    The first ``round(f_train * N)`` nodes of a seeded permutation are train, the
    next ``round(f_val * N)`` are val, the rest test.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise TmaSparkError(f"split fractions {tuple(fractions)} must be three non-negative numbers summing to 1.")
    perm = np.random.default_rng(seed).permutation(num_nodes)
    n_train = int(round(fractions[0] * num_nodes))
    n_val = int(round(fractions[1] * num_nodes))
    codes = np.full(num_nodes, 2, dtype=np.int8)
    codes[perm[:n_train]] = 0
    codes[perm[n_train:n_train + n_val]] = 1
    return codes


def undirected_pairs(indptr: np.ndarray, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Unique unordered pairs (src <= dst) of a CSR adjacency; self-loops kept once."""
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    cols = indices.astype(np.int64)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    n = max(int(hi.max(initial=0)) + 1, len(indptr) - 1)
    keys = unique_int64(lo * n + hi)
    return keys // n, keys % n


def _load(path):
    """An npz file from local disk, or from a store (``s3a://`` …, read whole through :mod:`tma_spark.fs`)."""
    try:
        if fs.is_remote(str(path)):
            return np.load(io.BytesIO(fs.read_bytes(str(path))), allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TmaSparkError(f"{path} does not exist. Fix: pass the path of an npz graph file.") from None
    except (OSError, ValueError) as exc:
        raise TmaSparkError(f"{path} is not a readable npz file ({exc}). Fix: pass a file in the npz graph format.") from exc


def load_npz(path: str | os.PathLike, split_seed: int = 0,
             split_fractions: Optional[Sequence[float]] = None, name: Optional[str] = None) -> GraphArrays:
    """Load an npz graph (gnn-benchmark layout) with a seeded random node split (``split_fractions``, default
    :data:`DEFAULT_SPLIT`)."""
    path = str(path) if fs.is_remote(str(path)) else Path(path)  # Path() would fold the // of a URI
    split_fractions = tuple(split_fractions or DEFAULT_SPLIT)
    data = _load(path)
    need = {"adj_indptr", "adj_indices", "adj_shape", "attr_indptr", "attr_indices", "attr_data", "attr_shape", "labels"}
    missing = sorted(need - set(data.files))
    if missing:
        raise TmaSparkError(
            f"{path} lacks the npz graph keys {missing} (has {sorted(data.files)}). "
            "Fix: provide adj_* (CSR adjacency), attr_* (CSR features) and labels."
        )
    n = int(data["adj_shape"][0])
    src, dst = undirected_pairs(data["adj_indptr"], data["adj_indices"])
    attr_shape = tuple(int(x) for x in data["attr_shape"])
    labels = data["labels"].astype(np.int32)
    if attr_shape[0] != n or len(labels) != n:
        raise TmaSparkError(f"{path}: adjacency has {n} nodes, features {attr_shape[0]}, labels {len(labels)}; they must agree.")
    return GraphArrays(
        name=name or str(path).rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0], src=src, dst=dst, num_nodes=n, labels=labels,
        split=seeded_split(n, split_seed, split_fractions), directed=False,
        csr=(data["attr_indptr"], data["attr_indices"], data["attr_data"].astype(np.float32), attr_shape),
        class_names=[str(c) for c in data["class_names"]] if "class_names" in data.files else [],
        source={"kind": "npz", "path": str(path), "split_seed": split_seed, "split_fractions": list(split_fractions)},
    )


def load_ogbn_arxiv(folder: str | os.PathLike, feature_dim: int = 128, feature_seed: int = 0,
                    split_fractions: Optional[Sequence[float]] = None) -> GraphArrays:
    """Load the ogbn-arxiv folder (GraphSAINT layout): directed citations, labels, the official split.

    The folder has no node features; nodes get seeded standard-normal random
    features of ``feature_dim`` (structural features come from the inference
    job's FastRP option). With ``split_fractions`` the labelled nodes get a seeded random split of those
    fractions (seed ``feature_seed``) instead of the official one.
    """
    folder = Path(folder)
    adj = _load(folder / "adj_full.npz")
    n = int(adj["shape"][0])
    indptr, indices = adj["indptr"].astype(np.int64), adj["indices"].astype(np.int64)
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    class_map = json.loads((folder / "class_map.json").read_text())
    labels = np.full(n, -1, dtype=np.int32)
    for k, v in class_map.items():
        labels[int(k)] = int(v)
    if split_fractions is None:
        role = json.loads((folder / "role.json").read_text())
        split = np.full(n, -1, dtype=np.int8)
        for code, key in enumerate(("tr", "va", "te")):
            split[np.asarray(role[key], dtype=np.int64)] = code
        split_source = "official"
    else:
        split = np.where(labels >= 0, seeded_split(n, feature_seed, split_fractions), -1).astype(np.int8)
        split_source = {"seed": feature_seed, "fractions": list(split_fractions)}
    features = np.random.default_rng(feature_seed).standard_normal((n, feature_dim), dtype=np.float32)
    return GraphArrays(
        name="ogbn_arxiv", src=src, dst=indices, num_nodes=n, labels=labels, split=split, directed=True,
        features=features,
        source={"kind": "ogbn_arxiv", "path": str(folder), "split": split_source,
                "features": f"random normal, dim {feature_dim}, seed {feature_seed}"},
    )


def bundled_dataset_path(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / "data" / DATASETS[name]


def default_data_dir() -> Path:
    """``TMA_SPARK_DATA_DIR``, else ``../shared/datasets`` of the working directory or of the repository."""
    env = os.environ.get("TMA_SPARK_DATA_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        cand = base.parent / "shared" / "datasets"
        if cand.is_dir():
            return cand
    return Path.cwd() / "datasets"


def resolve_dataset(name: str, data_dir: Optional[str] = None) -> Path:
    """Path of a named dataset: bundled copy first, then the data directory."""
    if name not in DATASETS:
        raise TmaSparkError(f"Unknown dataset {name!r}. Fix: choose one of {', '.join(sorted(DATASETS))}, or use --npz PATH.")
    if name in BUNDLED and data_dir is None:
        return bundled_dataset_path(name)
    base = Path(data_dir) if data_dir else default_data_dir()
    path = base / DATASETS[name]
    if not path.exists():
        raise TmaSparkError(
            f"Dataset {name!r} not found at {path}. Fix: pass --data-dir pointing at the folder that holds "
            f"{DATASETS[name]} (or set TMA_SPARK_DATA_DIR)."
        )
    return path


def load_dataset(name: str, data_dir: Optional[str] = None, split_seed: int = 0, feature_dim: int = 128,
                 split_fractions: Optional[Sequence[float]] = None) -> GraphArrays:
    """The named dataset with its node split: a seeded split of ``split_fractions`` when given (``--split``),
    else the dataset's own (ogbn-arxiv's official split; the npz graphs have none: a seeded
    :data:`DEFAULT_SPLIT`)."""
    path = resolve_dataset(name, data_dir)
    if name == "ogbn_arxiv":
        return load_ogbn_arxiv(path, feature_dim=feature_dim, feature_seed=split_seed, split_fractions=split_fractions)
    graph = load_npz(path, split_seed=split_seed, split_fractions=split_fractions, name=name)
    graph.source["dataset"] = name
    return graph
