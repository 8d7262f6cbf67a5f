"""Per-layer inference maths of tma_spark.infer.layers (pure numpy and Arrow, no Spark)."""

import numpy as np
import pyarrow as pa
import pytest

from tma_spark.infer.layers import link_ranks


def _rr(zs, zd, pool):
    vec = lambda rows: pa.array([list(map(float, r)) for r in rows], type=pa.list_(pa.float32()))  # noqa: E731
    batch = pa.RecordBatch.from_arrays([vec(zs), vec(zd)], names=["zs", "zd"])
    return [x for b in link_ranks(np.asarray(pool, dtype=np.float32))(iter([batch])) for x in b.column("rr").to_pylist()]


def test_link_ranks_count_ties_half_and_rank_nan_scores_last():
    """Like train.metrics.mrr: a NaN true-edge score ranks last (M + 1), never first; a NaN negative is never
    above a real one."""
    nan = float("nan")
    pool = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]  # M = 3 candidates
    zs = [[1.0, 0.0],   # pos 1: candidates score 1, 0, 2: one above, one tie -> rank 2.5
          [nan, 0.0],   # pos NaN -> rank 4
          [0.0, 1.0]]   # pos 3 with zd = (0, 3): candidates 0, 1, 0 -> rank 1
    zd = [[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]]
    assert _rr(zs, zd, pool) == pytest.approx([1 / 2.5, 1 / 4, 1.0])
    assert _rr([[1.0, 0.0]], [[1.0, 0.0]], [[nan, nan], [0.0, 0.0], [nan, 0.0]]) == pytest.approx([1.0])


def test_widths_are_what_each_layer_sends_and_keeps():
    """Message and own-term widths size the shuffles: SAGE sends and keeps x (x W_l and x W_r when the layer
    narrows)."""
    from tma_spark.infer.layers import widths
    from tma_spark.train.contract import ModelSpec

    sage = ModelSpec("sage", in_dim=64, hidden=256, out_dim=10)
    assert widths(sage, 0) == (64, 64)    # widens: messages and own term are the 64 input features
    assert widths(sage, 1) == (10, 10)    # narrows: messages are x W_l, 10 wide
    assert widths(ModelSpec("gcn", 64, 256, 10), 0) == (256, 0)
    assert widths(ModelSpec("gat", 64, 256, 10), 0, heads=4) == (256 + 8, 0)
    with pytest.raises(ValueError, match="mlp"):
        widths(ModelSpec("mlp", 64, 256, 10), 0)


@pytest.mark.parametrize("kind", ["sage", "gcn", "gat", "mlp"])
@pytest.mark.parametrize("hidden", [16, 4])  # widening and narrowing first layers
def test_numpy_layers_equal_the_pyg_model(kind, hidden):
    """pre -> (dense aggregation of the messages) -> post, layer by layer in numpy, equals the PyG model's forward
    pass: the executors need no torch."""
    import torch

    from tma_spark.graphops.propagate import vector_column, vector_matrix
    from tma_spark.infer import layers
    from tma_spark.infer.attention import _reduce
    from tma_spark.train.contract import ModelSpec

    rng = np.random.default_rng(0)
    n = 60
    a = np.triu(rng.random((n, n)) < 0.08, 1)
    adj = (a | a.T).astype(np.float64)  # symmetric, no self loops; adj[i, j]: j sends to i
    edge_index = torch.from_numpy(np.stack(np.nonzero(adj.T)))
    x = rng.standard_normal((n, 10)).astype(np.float32)
    spec = ModelSpec(kind, 10, hidden, 3)
    model = spec.build(seed=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # nonzero biases, PReLU and LayerNorm affine terms
        want = model(torch.from_numpy(x), edge_index).numpy()

    def rows(**cols):
        ids = pa.array(np.arange(n), pa.int64())
        return pa.RecordBatch.from_arrays([ids] + [vector_column(v) for v in cols.values()], names=["id", *cols])

    deg = adj.sum(1)
    w = layers.weights(spec, model.state_dict())
    h = x
    for i in range(spec.layers):
        if kind == "mlp":
            batch = rows(vec=h)
        else:
            pre = next(layers.pre_fn(spec, w, i)(iter([rows(vec=h)])))
            if kind == "gat":
                xw, a_src, a_dst = (vector_matrix(pre.column(c)) for c in ("xw", "a_src", "a_dst"))
                src, dst = np.nonzero((adj + np.eye(n)).T)
                own = src == dst
                order = np.lexsort((src, ~own, dst))  # as attention_propagate sorts: each run opens with its self loop
                src, dst, own = src[order], dst[order], own[order]
                a_dst_own = pa.array([list(a_dst[d]) if o else None for d, o in zip(dst, own)], pa.list_(pa.float32()))
                msgs = pa.RecordBatch.from_arrays([pa.array(dst, pa.int64()), pa.array(own), vector_column(xw[src]),
                                                   vector_column(a_src[src]), a_dst_own],
                                                  names=["dst", "own", "xw", "a_src", "a_dst"])
                pieces = [msgs.slice(k, 7) for k in range(0, msgs.num_rows, 7)]  # runs span batches: carried
                out = pa.Table.from_batches(list(_reduce(layers.heads(spec, w, i))(iter(pieces))))
                batch = rows(agg=vector_matrix(out.column("vec").combine_chunks()))  # the last run comes alone
            else:
                msg, root = vector_matrix(pre.column("msg")), vector_matrix(pre.column("root"))
                if kind == "sage":
                    agg = adj @ msg / np.maximum(deg, 1)[:, None]
                else:
                    s = 1 / np.sqrt(deg + 1)[:, None]
                    agg = s * ((adj + np.eye(n)) @ (s * msg))
                batch = rows(root=root, agg=agg)
        h = vector_matrix(next(layers.post_fn(spec, w, i)(iter([batch]))).column("vec"))
    assert np.abs(h - want).max() < 1e-5
