"""Executor side of Spark inference: a trained model's dense per-node maths, as ``mapInArrow`` functions.

Layer-wise inference splits every message-passing layer into three Spark steps::

    pre   (id, vec)            -> (id, msg, root)   per node: what to send, and the node's own term
    propagate(msg; root)       -> (id, agg, root)   :func:`tma_spark.graphops.propagate.propagate` (root
                                                    rides through its node join: no second join)
    post  (id, agg, root)      -> (id, vec)         per node: combine, then PReLU + LayerNorm between layers

so that only per-node rows ever meet the dense maths, never the graph. The
functions below are built on the driver from plain values (the checkpoint's
weights as numpy arrays, :func:`weights`, and the run's
:class:`~tma_spark.train.contract.ModelSpec`) and run on executors in numpy,
float32 like the models: the executors never import torch or PyG. That is what
a Python worker would otherwise hold before any data, about 0.7 GB each (torch
0.5 GB, PyG 0.2 GB of private memory, measured), and Spark runs one or two
workers per core.

How each model maps onto that split (all exact rewrites of the PyG layers):

* GraphSAGE (mean): ``lin_l(mean_j x_j) + lin_r(x_i)``. When the layer narrows
  (out < in), ``pre`` sends ``x_j W_l`` instead of ``x_j`` (the mean commutes
  with a linear map) so that messages are as small as possible. The own term
  travels the same way: ``x_i W_r`` when the layer narrows, else ``x_i`` itself,
  with ``W_r`` applied in ``post`` (at 10^8 edges, 32 features and hidden 256,
  that is 1.4 GB of node rows through layer 1's join instead of 10.4 GB).
* GCN: ``sum_j norm_ij (x_j W) + b``; ``pre`` applies ``W``, propagate applies
  the normalization with self loops.
* GAT: ``pre`` applies ``W`` and the two attention vectors (per-head logits
  ``a_src``, ``a_dst``); :func:`tma_spark.infer.attention.attention_propagate`
  does the per-node softmax over incoming edges and self loop; ``post`` adds
  the bias.
* MLP: ``post`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Iterator, Tuple

import numpy as np
import pyarrow as pa

from ..graphops.propagate import vector_column, vector_matrix

if TYPE_CHECKING:  # the driver only: executors get numpy arrays
    from ..train.contract import ModelSpec

__all__ = ["PRE_SCHEMA", "pre_fn", "post_fn", "output_fn", "link_ranks", "narrows", "weights", "heads",
           "widths"]

#: Output columns of :func:`pre_fn` per model.
PRE_SCHEMA = {"sage": "id long, msg array<float>, root array<float>",
              "gcn": "id long, msg array<float>, root array<float>",
              "gat": "id long, xw array<float>, a_src array<float>, a_dst array<float>"}

Weights = Dict[str, np.ndarray]


def weights(spec: "ModelSpec", state: dict) -> Weights:
    """A checkpoint's state dict as float32 numpy arrays (what executors need, without torch), plus each
    LayerNorm's epsilon as ``norms.I.eps``, read from the model the spec builds (driver side)."""
    model = spec.build()
    model.load_state_dict(state)  # refuses a state dict that does not fit the spec
    out = {name: t.detach().cpu().numpy().astype(np.float32) for name, t in model.state_dict().items()}
    for i, norm in enumerate(model.norms):
        out[f"norms.{i}.eps"] = np.float32(norm.eps)
    return out


def narrows(spec: "ModelSpec", layer: int) -> bool:
    """True when a SAGE layer's output is narrower than its input (then messages are projected first)."""
    dims = spec.dims
    return dims[layer + 1] < dims[layer]


def widths(spec: "ModelSpec", layer: int, heads: int = 1) -> Tuple[int, int]:
    """(floats each message carries, floats of the node's own term ``root``) of message-passing layer ``layer``,
    as :func:`pre_fn` splits it: what sizes the layer's shuffles. GAT (``heads`` attention heads) sends its
    transformed features and one logit per head each way, and has no own term."""
    dims = spec.dims
    if spec.kind == "sage":
        width = dims[layer + 1] if narrows(spec, layer) else dims[layer]
        return width, width  # messages and the own term: the narrower of the input and the output
    if spec.kind == "gcn":
        return dims[layer + 1], 0
    if spec.kind == "gat":
        return (dims[layer + 1] // heads) * heads + 2 * heads, 0
    raise ValueError(f"widths: {spec.kind} layers pass no messages")


def heads(spec: "ModelSpec", w: Weights, layer: int) -> int:
    """Attention heads of GAT layer ``layer`` (``att_src`` is ``(1, heads, channels)``)."""
    return int(w[f"convs.{layer}.att_src"].shape[1])


def _matrix(batch: pa.RecordBatch, column: str) -> np.ndarray:
    return vector_matrix(batch.column(column), np.float32)


def _rows(ids: pa.Array, **columns: np.ndarray) -> pa.RecordBatch:
    names = ["id"] + list(columns)
    return pa.RecordBatch.from_arrays([ids] + [vector_column(c) for c in columns.values()], names=names)


def _between_layers(w: Weights, layer: int, x: np.ndarray) -> np.ndarray:
    """``LayerNorm(PReLU(x))`` as the models apply it after every layer but the last (float32, as torch)."""
    a = w[f"acts.{layer}.weight"]
    x = np.where(x >= 0, x, a * x)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / np.sqrt(var + w[f"norms.{layer}.eps"]) * w[f"norms.{layer}.weight"] + w[f"norms.{layer}.bias"]


def _conv(w: Weights, layer: int) -> Weights:
    """The weights of conv layer ``layer``, by their names inside the layer (``lin_l.weight``, ``bias``, ...)."""
    prefix = f"convs.{layer}."
    return {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}


def pre_fn(spec: "ModelSpec", w: Weights, layer: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(id, vec)`` -> :data:`PRE_SCHEMA` rows for message-passing layer ``layer``: ``(id, msg, root)`` (root is
    empty for GCN), or ``(id, xw, a_src, a_dst)`` for GAT. ``w``: :func:`weights`. The function closes over
    plain values and numpy arrays only (not ``spec``, whose module imports torch)."""
    kind, narrow, conv = spec.kind, narrows(spec, layer), _conv(w, layer)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            x = _matrix(b, "vec")
            if kind == "gat":
                xw = x @ conv["lin.weight"].T
                _, h, c = conv["att_src"].shape
                per_head = xw.reshape(len(x), h, c)
                yield _rows(b.column("id"), xw=xw, a_src=(per_head * conv["att_src"]).sum(-1),
                            a_dst=(per_head * conv["att_dst"]).sum(-1))
                continue
            if kind == "sage":  # both terms as narrow as the layer allows (module docstring)
                msg = x @ conv["lin_l.weight"].T if narrow else x
                root = x @ conv["lin_r.weight"].T if narrow else x
            else:  # gcn
                msg, root = x @ conv["lin.weight"].T, x[:, :0]
            yield _rows(b.column("id"), msg=msg, root=root)

    return run


def post_fn(spec: "ModelSpec", w: Weights, layer: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``(id, root, agg)`` (``(id, agg)`` for GCN and GAT, ``(id, vec)`` for MLP) -> ``(id, vec)``: the layer's
    output, activated and normalized unless it is the last layer. ``w``: :func:`weights`."""
    kind, narrow, conv = spec.kind, narrows(spec, layer), _conv(w, layer)
    between = None if layer == spec.layers - 1 else {k: v for k, v in w.items()
                                                     if k.startswith((f"acts.{layer}.", f"norms.{layer}."))}

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if b.num_rows == 0:
                continue
            if kind == "mlp":
                out = _matrix(b, "vec") @ conv["weight"].T + conv["bias"]
            elif kind == "sage":
                agg, root = _matrix(b, "agg"), _matrix(b, "root")
                lin_l = agg if narrow else agg @ conv["lin_l.weight"].T
                lin_r = root if narrow else root @ conv["lin_r.weight"].T
                out = lin_l + conv["lin_l.bias"] + lin_r
            else:  # gcn, gat: the aggregation is complete, add the bias
                out = _matrix(b, "agg") + conv["bias"]
            if between is not None:
                out = _between_layers(between, layer, out)
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
