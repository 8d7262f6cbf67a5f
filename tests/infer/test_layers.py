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
