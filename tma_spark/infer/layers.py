"""Executor side of Spark inference: a trained model's dense per-node maths, as ``mapInArrow`` functions.

Layer-wise inference splits every message-passing layer into three Spark steps::

    pre   (id, vec)            -> (id, msg, root)   per node: what to send, and the node's own term
    propagate(msg)             -> (id, agg)         :func:`tma_spark.graphops.propagate.propagate`
    post  (id, root, agg)      -> (id, vec)         per node: combine, then PReLU + LayerNorm between layers

so that only per-node rows ever meet torch, never the graph. The functions
below are built on the driver from plain values (the checkpoint as bytes, the
run's :class:`~tma_spark.train.contract.ModelSpec`) and run on executors; the
model is rebuilt once per Python worker.

How each model maps onto that split (all exact rewrites of the PyG layers):

* GraphSAGE (mean): ``lin_l(mean_j x_j) + lin_r(x_i)``. When the layer narrows
  (out < in), ``pre`` sends ``x_j W_l`` instead of ``x_j`` (the mean commutes
  with a linear map) so that messages are as small as possible.
* GCN: ``sum_j norm_ij (x_j W) + b``; ``pre`` applies ``W``, propagate applies
  the normalization with self loops.
* GAT: ``pre`` applies ``W`` and the two attention vectors (per-head logits
  ``a_src``, ``a_dst``); :func:`tma_spark.infer.attention.attention_propagate`
  does the per-node softmax over incoming edges and self loop; ``post`` adds
  the bias.
* MLP: ``post`` only.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable, Dict, Iterator

import numpy as np
import pyarrow as pa

from ..graphops.propagate import vector_column, vector_matrix

if TYPE_CHECKING:  # the executors import torch only when a function runs
    from ..train.contract import ModelSpec

__all__ = ["PRE_SCHEMA", "pre_fn", "post_fn", "output_fn", "link_ranks", "narrows", "state_bytes",
           "heads"]

#: Output columns of :func:`pre_fn` per model.
PRE_SCHEMA = {"sage": "id long, msg array<float>, root array<float>",
              "gcn": "id long, msg array<float>, root array<float>",
              "gat": "id long, xw array<float>, a_src array<float>, a_dst array<float>"}

_MODELS: Dict[tuple, object] = {}


def _model(spec: "ModelSpec", state: bytes):
    """The evaluated model for ``spec`` and ``state``, built once per Python worker."""
    key = (spec, hash(state))
    if key not in _MODELS:
        import torch

        model = spec.build()
        model.load_state_dict(torch.load(io.BytesIO(state), weights_only=True, map_location="cpu"))
        model.eval()
        _MODELS.clear()
        _MODELS[key] = model
    return _MODELS[key]


def narrows(spec: "ModelSpec", layer: int) -> bool:
    """True when a SAGE layer's output is narrower than its input (then messages are projected first)."""
    dims = spec.dims
    return dims[layer + 1] < dims[layer]


def _tensor(batch: pa.RecordBatch, column: str):
    import torch

    return torch.from_numpy(vector_matrix(batch.column(column)).astype(np.float32))


def _rows(ids: pa.Array, **columns) -> pa.RecordBatch:
    names = ["id"] + list(columns)
    return pa.RecordBatch.from_arrays([ids] + [vector_column(c.numpy()) for c in columns.values()], names=names)


def heads(spec: "ModelSpec", state: bytes, layer: int) -> int:
    """Attention heads of GAT layer ``layer``."""
    return int(_model(spec, state).convs[layer].heads)


def pre_fn(spec: "ModelSpec", state: bytes, layer: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(id, vec)`` -> :data:`PRE_SCHEMA` rows for message-passing layer ``layer``: ``(id, msg, root)`` (root is
    empty for GCN), or ``(id, xw, a_src, a_dst)`` for GAT."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import torch

        conv = _model(spec, state).convs[layer]
        with torch.no_grad():
            for b in batches:
                if b.num_rows == 0:
                    continue
                x = _tensor(b, "vec")
                if spec.kind == "gat":
                    xw = conv.lin(x)
                    h = xw.view(len(x), conv.heads, conv.out_channels)
                    yield _rows(b.column("id"), xw=xw, a_src=(h * conv.att_src).sum(-1),
                                a_dst=(h * conv.att_dst).sum(-1))
                    continue
                if spec.kind == "sage":
                    msg = x @ conv.lin_l.weight.T if narrows(spec, layer) else x
                    root = conv.lin_r(x)
                else:  # gcn
                    msg, root = conv.lin(x), x[:, :0]
                yield _rows(b.column("id"), msg=msg, root=root)

    return run


def post_fn(spec: "ModelSpec", state: bytes, layer: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(id, root, agg)`` (``(id, agg)`` for GCN and GAT, ``(id, vec)`` for MLP) -> ``(id, vec)``: the layer's
    output, activated and normalized unless it is the last layer."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import torch

        model = _model(spec, state)
        conv = model.convs[layer]
        last = layer == spec.layers - 1
        with torch.no_grad():
            for b in batches:
                if b.num_rows == 0:
                    continue
                if spec.kind == "mlp":
                    out = conv(_tensor(b, "vec"))
                elif spec.kind == "sage":
                    agg = _tensor(b, "agg")
                    out = (agg + conv.lin_l.bias if narrows(spec, layer) else conv.lin_l(agg)) + _tensor(b, "root")
                else:  # gcn, gat: the aggregation is complete, add the bias
                    out = _tensor(b, "agg") + conv.bias
                if not last:
                    out = model.norms[layer](model.acts[layer](out))
                yield _rows(b.column("id"), vec=out)

    return run


def output_fn(task: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(id, vec)`` -> the prediction rows: ``(id, prediction, probabilities, logits)`` for node
    classification, ``(id, embedding)`` for link prediction."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            if task == "link":
                yield pa.RecordBatch.from_arrays([b.column("id"), b.column("vec")], names=["id", "embedding"])
                continue
            logits = vector_matrix(b.column("vec"))
            z = np.exp(logits - logits.max(1, keepdims=True))
            probs = z / z.sum(1, keepdims=True)
            yield pa.RecordBatch.from_arrays(
                [b.column("id"), pa.array(logits.argmax(1).astype(np.int32)), vector_column(probs),
                 vector_column(logits)], names=["id", "prediction", "probabilities", "logits"])

    return run


def link_ranks(pool: np.ndarray) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(zs, zd)`` embedding pairs -> ``(rr)``: reciprocal rank of each true edge's score among the scores of
    the source against every node embedding in ``pool`` (M, d), ties counted half as in OGB; NaN scores rank
    last, as in :func:`tma_spark.train.metrics.mrr` (a NaN true-edge score gets rank M + 1)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            zs, zd = vector_matrix(b.column("zs")), vector_matrix(b.column("zd"))
            pos = (zs * zd).sum(1, keepdims=True)
            neg = zs @ pool.T
            rank = 0.5 * ((neg > pos).sum(1) + (neg >= pos).sum(1)) + 1.0  # NaN negatives are never above
            rank = np.where(np.isnan(pos[:, 0]), neg.shape[1] + 1.0, rank)
            yield pa.RecordBatch.from_arrays([pa.array(1.0 / rank)], names=["rr"])

    return run


def state_bytes(state: dict) -> bytes:
    """A state dict as bytes for shipping to executors (loaded there with ``weights_only=True``)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


