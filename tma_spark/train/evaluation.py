"""Driver-side evaluation of the averaged model after each round.

* ``full``: the whole graph is read on the driver (pyarrow, no Spark job) and
  the model runs on all of it: exact validation and test metrics.
* ``sampled``: for graphs too large for the driver, a fixed, seeded sample of
  validation and test nodes (node task) or edges and a pool of negative nodes
  (link task) is drawn once, and Spark extracts their neighbourhoods once with
  capped fan-outs (``--eval-fanouts``, by default the training fan-outs:
  :func:`tma_spark.train.neighbourhood.sample_neighbourhood`), so the driver
  holds at most ``targets x (1 + f1 + f1 f2 ...)`` nodes whatever the degrees.
  Every round then evaluates on that small subgraph, an estimate as
  neighbour-sampled inference is. With ``--eval-fanouts -1,-1`` the exact
  L-hop neighbourhoods are extracted instead
  (:func:`~tma_spark.train.neighbourhood.extract_neighbourhood`): exact outputs
  for the sampled targets (L + 1 hops for GCN, whose normalization needs the
  full degree of the outermost nodes), but as large as the graph's hubs make it.

``auto`` picks ``full`` while :func:`full_eval_bytes`, the driver memory exact
evaluation takes (features, edge index, one layer's messages and outputs), is at
most ``--eval-max-gb``; the edge count alone ignores the feature width.

Link prediction is evaluated as ogbl-citation2 is: each held-out edge (src,
dst) is ranked against ``eval_negatives`` corrupted edges (src, random node),
with scores from the model's embeddings of the training-edge graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ..arrays import hop_distances
from ..lake import Lake
from .config import TrainConfig
from .graphdata import GraphTensors, build_graph, message_passing_edges, read_table
from .metrics import accuracy, mrr
from .models import GNN
from .neighbourhood import extract_neighbourhood, sample_neighbourhood

__all__ = ["Evaluator", "build_evaluator", "trim_to_targets", "full_eval_bytes", "eval_mode", "SAMPLED_NEGATIVE_POOL"]

log = logging.getLogger(__name__)

#: Sampled link evaluation draws each edge's negatives from a fixed pool of this many nodes.
SAMPLED_NEGATIVE_POOL = 1000
_LINK_CHUNK = 512  # held-out edges scored at once (bounds the (chunk, M, dim) negative tensor)


@dataclass
class Evaluator:
    """A graph to run the model on and, per split, the targets to score on it (local indices).

    Node task: ``targets[split]`` is a (n,) index tensor. Link task: ``targets[split]`` is
    ``(src (E,), dst (E,), neg (E, M))``.
    """

    task: str
    graph: GraphTensors
    targets: Dict[str, object]
    exact: bool
    #: Per layer, the rows it computes and its incoming edges (:meth:`GNN.forward <tma_spark.train.models.GNN>`
    #: ``trim``), or None: every layer on every node.
    trim: Optional[List[Tuple[int, torch.Tensor]]] = None

    @property
    def metric(self) -> str:
        return "mrr" if self.task == "link" else "accuracy"

    def evaluate(self, model) -> Dict[str, float]:
        """Metric per split of ``model`` (switched to eval mode)."""
        model.eval()
        with torch.no_grad():
            out = model(self.graph.x, self.graph.edge_index, trim=self.trim).float()
            if self.task == "node":
                return {s: accuracy(out[idx], self.graph.y[idx]) for s, idx in self.targets.items()}
            return {s: _link_mrr(out, *t) for s, t in self.targets.items()}


def _link_mrr(z: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, neg: torch.Tensor) -> float:
    pos, negs = [], []
    for a in range(0, len(src), _LINK_CHUNK):
        zs = z[src[a:a + _LINK_CHUNK]]
        pos.append((zs * z[dst[a:a + _LINK_CHUNK]]).sum(-1))
        negs.append((zs.unsqueeze(1) * z[neg[a:a + _LINK_CHUNK]]).sum(-1))
    if not pos:
        return float("nan")
    return mrr(torch.cat(pos), torch.cat(negs))


def full_eval_bytes(num_nodes: int, num_edges: int, feature_dim: int, hidden: int) -> int:
    """Driver memory (bytes) of exact evaluation on the whole graph: float32 features, the symmetric int64 edge
    index (2 x 2E), and the largest layer's work: one float32 message per directed edge at the wider of the
    input and hidden widths, plus two layers' node outputs. (Layers run one at a time without gradients.)"""
    width = max(feature_dim, hidden)
    return 4 * num_nodes * feature_dim + 32 * num_edges + 8 * num_edges * width + 8 * num_nodes * hidden


def eval_mode(cfg: TrainConfig, num_nodes: int, num_edges: int, feature_dim: int) -> str:
    """``full`` or ``sampled``: ``cfg.eval`` unless ``auto``, which is ``full`` while :func:`full_eval_bytes`
    is at most ``cfg.eval_max_gb``."""
    if cfg.eval != "auto":
        return cfg.eval
    need = full_eval_bytes(num_nodes, num_edges, feature_dim, cfg.hidden)
    return "full" if need <= cfg.eval_max_gb * 1e9 else "sampled"


def _local(graph: GraphTensors, ids: np.ndarray) -> torch.Tensor:
    """Local row of each global id in ``graph`` (node_ids are sorted)."""
    return torch.from_numpy(np.searchsorted(graph.node_ids.numpy(), ids)).long()


def trim_to_targets(graph: GraphTensors, targets: torch.Tensor, layers: int) -> Tuple[GraphTensors, torch.Tensor, list]:
    """``graph`` with its nodes ordered by hops from ``targets`` (local rows), the new row of every old one, and
    the per-layer plan of a trimmed forward (:meth:`GNN.forward <tma_spark.train.models.GNN>`): layer i of
    ``layers`` computes the nodes within ``layers - 1 - i`` hops of a target, from its edges into them.

    On a sampled neighbourhood most nodes are the outermost hop's, which only the first layer reads: computing
    every layer on them (3 million nodes x hidden 256 at 10^8 edges) would take several times the memory and
    time of the outputs the metric needs."""
    src, dst = graph.edge_index.numpy()
    dist = hop_distances(src, dst, graph.num_nodes, targets.numpy(), layers)
    order = np.argsort(dist, kind="stable")
    new_row = np.empty_like(order)
    new_row[order] = np.arange(len(order))
    edge_index = torch.from_numpy(new_row[graph.edge_index.numpy()])
    index = torch.from_numpy(order)
    reordered = GraphTensors(graph.node_ids[index], graph.x[index], graph.y[index], graph.split[index], edge_index)
    within = np.cumsum(np.bincount(dist, minlength=layers + 2))  # nodes within h hops, h = 0..layers + 1
    plan = []
    for i in range(layers):
        rows = int(within[layers - 1 - i])
        plan.append((rows, edge_index[:, edge_index[1] < rows]))
    return reordered, torch.from_numpy(new_row), plan


def _edge_sample(edges: pa.Table, split: str, limit: int, rng: np.random.Generator):
    """Up to ``limit`` (src, dst) of the ``split`` edges, seeded."""
    sel = edges.filter(pc.fill_null(pc.equal(edges.column("split"), split), False))
    src, dst = sel.column("src").to_numpy(), sel.column("dst").to_numpy()
    if len(src) > limit:
        keep = np.sort(rng.choice(len(src), limit, replace=False))
        src, dst = src[keep], dst[keep]
    return src, dst


def _full(lake: Lake, cfg: TrainConfig) -> Evaluator:
    log.info("loading the whole graph on the driver for exact evaluation")
    nodes = read_table(f"{lake.path}/nodes", lake.meta.format, ["id", "features", "label", "split"])
    edge_cols = ["src", "dst"] + (["split"] if cfg.task == "link" else [])
    edges = read_table(f"{lake.path}/edges", lake.meta.format, edge_cols)
    graph = build_graph(nodes, message_passing_edges(edges, cfg.task))
    if cfg.task == "node":
        targets = {s: graph.mask(s).nonzero().view(-1) for s in ("train", "val", "test")}
        return Evaluator("node", graph, targets, exact=True)
    rng = np.random.default_rng(cfg.seed)
    targets = {}
    for split in ("val", "test"):
        src, dst = _edge_sample(edges, split, cfg.eval_edges, rng)
        neg = rng.integers(0, graph.num_nodes, size=(len(src), cfg.eval_negatives))
        targets[split] = (_local(graph, src), _local(graph, dst), torch.from_numpy(neg).long())
    return Evaluator("link", graph, targets, exact=True)


def _sampled(spark: SparkSession, lake: Lake, cfg: TrainConfig) -> Evaluator:
    nodes_df, edges_df = lake.nodes(), lake.edges()
    seed = F.lit(int(cfg.seed))
    rng = np.random.default_rng(cfg.seed)
    picked = {}
    if cfg.task == "node":
        for split in ("val", "test"):
            rows = (nodes_df.where((F.col("split") == split) & F.col("label").isNotNull())
                    .orderBy(F.xxhash64("id", seed)).limit(cfg.eval_nodes).select("id").toArrow())
            picked[split] = rows.column("id").to_numpy()
        seeds = np.concatenate(list(picked.values()))
        mp_edges = edges_df.select("src", "dst")
    else:
        for split in ("val", "test"):
            rows = (edges_df.where(F.col("split") == split).orderBy(F.xxhash64("src", "dst", seed))
                    .limit(cfg.eval_edges).select("src", "dst").toArrow())
            picked[split] = (rows.column("src").to_numpy(), rows.column("dst").to_numpy())
        pool = rng.choice(lake.meta.num_nodes, min(SAMPLED_NEGATIVE_POOL, lake.meta.num_nodes), replace=False)
        seeds = np.concatenate([pool] + [a for pair in picked.values() for a in pair])
        mp_edges = edges_df.where(F.col("split").isNull() | (F.col("split") == "train")).select("src", "dst")
    seeds = np.unique(seeds)
    fanouts = cfg.eval_hop_fanouts
    if all(f == -1 for f in fanouts):
        # GCN normalizes by both ends' degrees: one more hop gives the outermost nodes their full degree.
        hops = cfg.layers + (1 if cfg.model == "gcn" else 0)
        log.info("sampled evaluation: extracting the exact %d-hop neighbourhoods of %d nodes with Spark", hops,
                 len(seeds))
        nodes, edges = extract_neighbourhood(spark, nodes_df, mp_edges, seeds, hops)
    else:
        log.info("sampled evaluation: extracting the neighbourhoods of %d nodes with fan-outs %s with Spark",
                 len(seeds), ",".join(map(str, fanouts)))
        nodes, edges = sample_neighbourhood(spark, nodes_df, mp_edges, seeds, fanouts, seed=cfg.seed)
    graph = build_graph(nodes, edges)
    log.info("sampled evaluation graph: %d nodes, %d edges", graph.num_nodes, graph.edge_index.shape[1] // 2)
    if cfg.task == "node":
        targets = {s: _local(graph, ids) for s, ids in picked.items()}
    else:
        targets = {}
        for split, (src, dst) in picked.items():
            neg = pool[rng.integers(0, len(pool), size=(len(src), cfg.eval_negatives))]
            targets[split] = (_local(graph, src), _local(graph, dst),
                              _local(graph, neg.ravel()).view(len(src), cfg.eval_negatives))
    if cfg.model not in GNN.TRIMMABLE:
        return Evaluator(cfg.task, graph, targets, exact=False)
    graph, new_row, plan = trim_to_targets(graph, _local(graph, seeds), cfg.layers)
    targets = {s: new_row[t] if cfg.task == "node" else tuple(new_row[a] for a in t) for s, t in targets.items()}
    log.info("sampled evaluation: layers compute %s of the %d nodes", " then ".join(f"{r:,}" for r, _ in plan),
             graph.num_nodes)
    return Evaluator(cfg.task, graph, targets, exact=False, trim=plan)


def build_evaluator(spark: SparkSession, lake: Lake, cfg: TrainConfig) -> Evaluator:
    """The evaluator the train job uses for ``cfg`` on ``lake`` (see the module docstring)."""
    meta = lake.meta
    if eval_mode(cfg, meta.num_nodes, meta.num_edges, meta.feature_dim) == "full":
        return _full(lake, cfg)
    return _sampled(spark, lake, cfg)
