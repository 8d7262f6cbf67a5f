"""GNN models from PyG layers, shaped as in the authors' code: 2 layers, PReLU + LayerNorm between layers."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from .config import MODELS  # declared once, with the setting (the config module imports no torch)

__all__ = ["MODELS", "GNN", "NarrowingSAGEConv", "build_model"]


class NarrowingSAGEConv(SAGEConv):
    """PyG's ``SAGEConv`` (mean aggregation) that projects before it aggregates when the layer narrows.

    ``lin_l(mean_j x_j) = mean_j (W_l x_j) + b_l``: mean aggregation commutes with a linear map, so when
    ``out_channels < in_channels`` every edge carries an ``out_channels``-wide message instead of an
    ``in_channels``-wide one. On bag-of-words features (Coauthor CS: 6,805 wide, hidden 256) that is 26x less
    memory and arithmetic per edge, and it decides whether a full-batch step fits at all. Same parameters
    (state dict) as ``SAGEConv``, same outputs (a node without neighbours gets ``b_l``, as ``lin_l(0)``),
    and the same split as layer-wise inference (:mod:`tma_spark.infer.layers`).
    """

    def forward(self, x, edge_index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``x``: node features, or ``(x_src, x_dst)`` where the destinations are the first rows of the
        sources (a trimmed layer: :meth:`GNN.forward` with ``trim``)."""
        if self.out_channels >= self.in_channels or self.project or self.normalize or not self.root_weight:
            return super().forward(x, edge_index)
        x_src, x_dst = x if isinstance(x, tuple) else (x, x)
        xw = x_src @ self.lin_l.weight.t()
        out = self.propagate(edge_index, x=(xw, xw[:x_dst.shape[0]]), size=(x_src.shape[0], x_dst.shape[0]))
        if self.lin_l.bias is not None:
            out = out + self.lin_l.bias
        return out + self.lin_r(x_dst)


class GNN(nn.Module):
    """``layers`` message-passing layers (or linear layers for ``mlp``) with PReLU, LayerNorm and dropout.

    Args:
        kind: ``sage`` (GraphSAGE, mean aggregation; :class:`NarrowingSAGEConv`), ``gcn``, ``gat`` (4 heads,
            concatenated in hidden layers) or ``mlp`` (ignores edges).
        in_dim, hidden, out_dim: feature, hidden and output sizes.
        layers: number of layers (default 2).
        dropout: dropout probability on hidden representations.
    """

    def __init__(self, kind: str, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.5):
        super().__init__()
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r}; choose one of {MODELS}")
        self.kind = kind
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.convs = nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == layers - 1
            if kind == "sage":
                self.convs.append(NarrowingSAGEConv(a, b, aggr="mean"))
            elif kind == "gcn":
                self.convs.append(GCNConv(a, b, cached=False))
            elif kind == "gat":
                heads = 1 if last else 4
                self.convs.append(GATConv(a, b // heads, heads=heads))
            else:
                self.convs.append(nn.Linear(a, b))
        self.acts = nn.ModuleList([nn.PReLU() for _ in range(layers - 1)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(layers - 1)])
        self.dropout = dropout

    #: Models whose forward can be trimmed (``trim``): a layer's output at a node reads only the node's own row
    #: and its incoming edges. GCN also reads its neighbours' degrees; GAT is not trimmed (untested).
    TRIMMABLE = ("sage", "mlp")

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                trim: Optional[Sequence[Tuple[int, torch.Tensor]]] = None) -> torch.Tensor:
        """Outputs of every node, or with ``trim`` (one ``(rows, edge_index)`` per layer; :data:`TRIMMABLE`
        models) of the first ``rows`` nodes of the last layer only: layer i computes the first ``rows_i`` rows
        from the incoming ``edge_index_i`` (its edges into those rows), so evaluation on a sampled
        neighbourhood computes each layer only where a later layer reads it, as PyG's ``trim_to_layer`` does
        (nodes ordered by hop from the targets)."""
        for i, conv in enumerate(self.convs):
            if trim is not None:
                rows, layer_edges = trim[i]
                x = conv(x[:rows]) if self.kind == "mlp" else conv((x, x[:rows]), layer_edges)
            else:
                x = conv(x) if self.kind == "mlp" else conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.norms[i](self.acts[i](x))
                x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        return x


def build_model(kind: str, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.5,
                seed: int = 0) -> GNN:
    """A freshly initialized model whose initial weights come from ``seed`` (the same seed, the same weights).

    The global random state is left as it was: building a model (e.g. to load weights into it) must not
    reset the dropout and sampling streams of the code around it. Initialization runs on the CPU, so only
    the CPU generator is forked and seeded.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return GNN(kind, in_dim, hidden, out_dim, layers, dropout)
