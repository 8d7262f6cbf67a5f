"""One trainer step's loss: node classification or link prediction, full-batch or on sampled subgraphs.

Executor-side code (the driver reuses it for LLCG's correction steps). An
objective is built once per loaded graph and cached with it, so the CSR of a
part is built once per task process, not once per round.

* ``full``: every step runs the model on the whole (part) graph: exact, and the
  fastest per epoch while the graph's message tensors fit in memory.
* ``neighbor``: every step samples a mini-batch of targets and their neighbours
  (fan-outs per hop) and runs the model on that subgraph: bounded memory for
  parts of any size. PyG's NeighborLoader needs pyg-lib or torch-sparse, which
  do not install with current torch from PyPI; the built-in vectorized CSR
  sampler (:mod:`tma_spark.train.sampler`) does the same job.
* ``auto``: ``full`` when the largest message tensor (edges x hidden: every model
  transforms features before it aggregates them when a layer narrows) stays under
  :data:`FULL_BATCH_MAX_ELEMENTS`, else ``neighbor``.

Link prediction scores a pair by the dot product of its two embeddings; each
positive (a training edge of the part) is paired with one uniformly drawn
negative destination, and the loss is binary cross-entropy on both.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .contract import TrainerSpec
from .graphdata import GraphTensors
from .sampler import CSR, sample_subgraph

__all__ = ["FULL_BATCH_MAX_ELEMENTS", "choose_sampler", "build_objective", "NodeObjective", "LinkObjective"]

#: ``auto`` trains full-batch while edges x hidden stays below this (about 2 GiB of float32 for the largest
#: gathered message tensor); larger parts use neighbour sampling.
FULL_BATCH_MAX_ELEMENTS = 500_000_000


def choose_sampler(requested: str, num_edges: int, hidden: int) -> str:
    """``full`` or ``neighbor`` for a graph of ``num_edges`` directed edges (``requested`` unless ``auto``).

    Messages are at most ``hidden`` wide, whatever the input width: SAGE projects before it aggregates when a
    layer narrows (:class:`~tma_spark.train.models.NarrowingSAGEConv`), GCN and GAT always do."""
    if requested != "auto":
        return requested
    return "full" if num_edges * hidden <= FULL_BATCH_MAX_ELEMENTS else "neighbor"


def _shard(items: torch.Tensor, shard: Optional[Tuple[int, int]]) -> torch.Tensor:
    """Every ``world``-th item starting at ``rank`` (data-parallel training), or all items."""
    if not shard:
        return items
    rank, world = shard
    return items[rank::world]


class _Batches:
    """Endless shuffled mini-batches of ``items`` (a new permutation each epoch)."""

    def __init__(self, items: torch.Tensor, batch_size: int):
        self.items, self.batch_size = items, batch_size
        self.order: Optional[torch.Tensor] = None
        self.pos = 0

    def next(self, gen: torch.Generator) -> torch.Tensor:
        if self.order is None or self.pos >= len(self.order):
            self.order, self.pos = self.items[torch.randperm(len(self.items), generator=gen)], 0
        batch = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch


class _Objective:
    def __init__(self, graph: GraphTensors, spec: TrainerSpec, device: torch.device):
        self.device = device
        self.sampler = choose_sampler(spec.sampler, int(graph.edge_index.shape[1]), spec.model.hidden)
        self.fanouts = list(spec.fanouts)
        self.batch_size = int(spec.batch_size)
        self.num_nodes = graph.num_nodes
        self.x = graph.x.to(device)
        self.edge_index = graph.edge_index.to(device)
        self.csr = None
        if self.sampler == "neighbor":
            build = CSR.from_sorted_symmetric if graph.sorted_symmetric else CSR.from_edge_index
            self.csr = build(graph.edge_index, graph.num_nodes)
        self.gen = torch.Generator()

    def seed(self, seed: int) -> None:
        self.gen.manual_seed(seed)

    def _embed(self, model, seeds: torch.Tensor) -> torch.Tensor:
        """Model outputs for ``seeds`` (unique node indices) on their sampled neighbourhood."""
        sub = sample_subgraph(self.csr, seeds, self.fanouts, self.gen)
        out = model(self.x[sub.n_id.to(self.device)], sub.edge_index.to(self.device))
        return out[:sub.batch_size]


class NodeObjective(_Objective):
    """Cross-entropy on the graph's labelled training nodes."""

    def __init__(self, graph: GraphTensors, spec: TrainerSpec, device: torch.device,
                 shard: Optional[Tuple[int, int]] = None):
        super().__init__(graph, spec, device)
        self.train_idx = _shard(graph.mask("train").nonzero().view(-1), shard)
        self.y = graph.y.to(device)
        self.batches = _Batches(self.train_idx, self.batch_size)

    @property
    def targets(self) -> int:
        return int(self.train_idx.numel())

    def loss(self, model) -> torch.Tensor:
        if self.sampler == "full":
            idx = self.train_idx.to(self.device)
            return F.cross_entropy(model(self.x, self.edge_index)[idx].float(), self.y[idx])
        seeds = self.batches.next(self.gen)
        return F.cross_entropy(self._embed(model, seeds).float(), self.y[seeds.to(self.device)])


class LinkObjective(_Objective):
    """Binary cross-entropy of dot-product scores: training edges against uniform negative destinations."""

    def __init__(self, graph: GraphTensors, spec: TrainerSpec, device: torch.device,
                 shard: Optional[Tuple[int, int]] = None):
        super().__init__(graph, spec, device)
        ei = graph.edge_index
        self.pairs = ei[:, ei[0] < ei[1]]  # each undirected training edge once
        if shard:
            self.pairs = self.pairs[:, _shard(torch.arange(self.pairs.shape[1]), shard)]
        self.batches = _Batches(torch.arange(self.pairs.shape[1]), self.batch_size)

    @property
    def targets(self) -> int:
        return int(self.pairs.shape[1])

    def _pairs(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pairs = self.pairs if self.sampler == "full" else self.pairs[:, self.batches.next(self.gen)]
        neg = torch.randint(self.num_nodes, (pairs.shape[1],), generator=self.gen)
        return pairs[0], pairs[1], neg

    def loss(self, model) -> torch.Tensor:
        src, dst, neg = self._pairs()
        if self.sampler == "full":
            z = model(self.x, self.edge_index).float()
            zs, zd, zn = z[src.to(self.device)], z[dst.to(self.device)], z[neg.to(self.device)]
        else:
            nodes, inv = torch.unique(torch.cat([src, dst, neg]), return_inverse=True)
            z = self._embed(model, nodes).float()
            inv = inv.to(self.device).view(3, -1)
            zs, zd, zn = z[inv[0]], z[inv[1]], z[inv[2]]
        pos_score, neg_score = (zs * zd).sum(-1), (zs * zn).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_score, torch.ones_like(pos_score))
                + F.binary_cross_entropy_with_logits(neg_score, torch.zeros_like(neg_score)))


def build_objective(graph: GraphTensors, spec: TrainerSpec, device: torch.device,
                    shard: Optional[Tuple[int, int]] = None) -> _Objective:
    """The objective of ``spec.task`` (``node`` or ``link``) on ``graph``; with ``shard`` = ``(rank, world)``
    only every ``world``-th training target from ``rank`` (data-parallel training)."""
    cls = LinkObjective if spec.task == "link" else NodeObjective
    return cls(graph, spec, device, shard)
