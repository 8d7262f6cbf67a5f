"""Attention-weighted message passing over the whole graph as a Spark job: the aggregation of PyG's ``GATConv``.

For every node i, with self loops added (as ``GATConv(add_self_loops=True)`` does)::

    e_ij   = leaky_relu(a_src[j] + a_dst[i], 0.2)           per head
    alpha  = softmax of e_ij over j in N(i) ∪ {i}             per head
    out_i  = sum_j alpha_ij * xw[j]                          (heads, channels)

Built like :func:`tma_spark.graphops.propagate.propagate`: messages ``(dst, src, xw_j, a_src_j)`` from one join
of the edges with the senders, plus one self message per node that also carries the receiver's ``a_dst_i``;
shuffled by ``dst`` and sorted by ``(dst, self first, src)``, so each run of a ``dst`` opens with its own row and
the receiver's logits need no second join of all 2E messages. An Arrow UDF reduces each contiguous run. The
softmax is computed online (running maximum, rescaled sums) so a run may span Arrow batches and memory stays
bounded by the batch size, whatever a node's degree. Messages and results are float32.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..graphops.propagate import vector_column, vector_matrix

__all__ = ["attention_propagate", "NEGATIVE_SLOPE"]

NEGATIVE_SLOPE = 0.2  # GATConv's default


def _run_logits(a_dst: pa.Array, own: np.ndarray, starts: np.ndarray, carried: Optional[np.ndarray]) -> np.ndarray:
    """``a_dst`` (R, H) of each run of a batch: from the run's first row, its self message (``own``), or for a
    first run that continues the previous batch's, the ``carried`` logits."""
    first = own[starts]
    if not first[1:].all() or (not first[0] and carried is None):
        raise RuntimeError("attention_propagate: a run of messages does not open with its node's self message")
    if first[0]:
        return vector_matrix(a_dst.take(pa.array(starts)))
    rest = vector_matrix(a_dst.take(pa.array(starts[1:]))) if len(starts) > 1 else np.zeros((0, len(carried)))
    return np.vstack([carried[None, :], rest])


def _reduce(heads: int):
    """Online softmax-weighted sums of each ``dst`` run; emits ``(id, vec)`` with the heads' outputs concatenated.

    Input rows ``(dst, own, xw, a_src, a_dst)`` sorted by ``dst``, each run opening with the self message
    (``own``), the only row whose ``a_dst`` is set."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # (id, a_dst (H,), running max (H,), running sum (H,), running weighted sum (H, C))
        carry: Optional[tuple] = None
        for b in batches:
            if b.num_rows == 0:
                continue
            dst = b.column("dst").to_numpy()
            own = b.column("own").to_numpy(zero_copy_only=False)
            xw = vector_matrix(b.column("xw"))
            n = len(dst)
            xw = xw.reshape(n, heads, -1)
            starts = np.flatnonzero(np.concatenate(([True], dst[1:] != dst[:-1])))
            continued = carry is not None and dst[0] == carry[0]
            ids = dst[starts]
            run_of = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
            a_dst = _run_logits(b.column("a_dst"), own, starts, carry[1] if continued else None)
            e = vector_matrix(b.column("a_src")) + a_dst[run_of]
            e = np.where(e > 0, e, NEGATIVE_SLOPE * e)  # (n, H)
            m = np.maximum.reduceat(e, starts, axis=0)  # (R, H)
            w = np.exp(e - m[run_of])
            s = np.add.reduceat(w, starts, axis=0)
            acc = np.add.reduceat(w[:, :, None] * xw, starts, axis=0)  # (R, H, C)
            if carry is not None:
                cid, _, cm, cs, cacc = carry
                if continued:  # the carried run continues: merge the two partial softmaxes
                    top = np.maximum(cm, m[0])
                    a, b_ = np.exp(cm - top), np.exp(m[0] - top)
                    m[0], s[0], acc[0] = top, cs * a + s[0] * b_, cacc * a[:, None] + acc[0] * b_[:, None]
                else:
                    ids = np.concatenate(([cid], ids))
                    m, s, acc = np.vstack([cm[None], m]), np.vstack([cs[None], s]), np.concatenate([cacc[None], acc])
                    a_dst = np.vstack([carry[1][None], a_dst])
            if len(ids) > 1:
                out = acc[:-1] / s[:-1, :, None]
                yield pa.RecordBatch.from_arrays([pa.array(ids[:-1], pa.int64()),
                                                  vector_column(out.reshape(len(out), -1))], names=["id", "vec"])
            carry = (int(ids[-1]), a_dst[-1].copy(), m[-1].copy(), s[-1].copy(), acc[-1].copy())
        if carry is not None:
            cid, _, _, cs, cacc = carry
            out = (cacc / cs[:, None]).reshape(1, -1)
            yield pa.RecordBatch.from_arrays([pa.array([cid], pa.int64()), vector_column(out)], names=["id", "vec"])

    return run


def attention_propagate(und: DataFrame, values: DataFrame, heads: int, num_partitions: Optional[int] = None) -> DataFrame:
    """(id, vec array<float>) for every id of ``values(id, xw, a_src, a_dst)``: GAT attention aggregation.

    Args:
        und: symmetric edges without self loops (:func:`tma_spark.graphops.propagate.undirected_edges`).
        values: per node the transformed features ``xw`` (heads x channels, flattened), and the attention
            logits ``a_src`` and ``a_dst`` (one per head).
        heads: number of attention heads H.
        num_partitions: partitions of the message shuffle (default ``spark.sql.shuffle.partitions``).

    Returns the heads' outputs concatenated (H x channels), before GATConv's bias; float32.
    """
    spark = values.sparkSession
    parts = int(num_partitions or spark.conf.get("spark.sql.shuffle.partitions"))
    senders = values.select(F.col("id").alias("src"), "xw", "a_src")
    neighbours = und.select("src", "dst").join(senders, "src").select(
        "dst", "src", F.lit(False).alias("own"), "xw", "a_src", F.lit(None).cast("array<float>").alias("a_dst"))
    self_loops = values.select(F.col("id").alias("dst"), F.col("id").alias("src"), F.lit(True).alias("own"),
                               "xw", "a_src", "a_dst")
    messages = neighbours.unionByName(self_loops)
    return (messages.repartition(parts, "dst").sortWithinPartitions("dst", F.col("own").desc(), "src")
            .select("dst", "own", "xw", "a_src", "a_dst").mapInArrow(_reduce(heads), "id long, vec array<float>"))
