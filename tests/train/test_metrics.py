"""Evaluation metrics: accuracy and OGB-style MRR (pure torch)."""

import math

import pytest
import torch

from tma_spark.train.metrics import accuracy, mrr


def test_accuracy_counts_argmax_matches():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    assert math.isnan(accuracy(logits[:0], torch.tensor([], dtype=torch.long)))


def test_mrr_ranks_with_ties_counted_half():
    pos = torch.tensor([5.0, 1.0, 2.0])
    neg = torch.tensor([[1.0, 2.0, 3.0],    # rank 1
                        [2.0, 3.0, 0.0],    # two higher: rank 3
                        [2.0, 0.0, 0.0]])   # one tie: rank 1.5
    assert mrr(pos, neg) == pytest.approx((1 + 1 / 3 + 1 / 1.5) / 3)


def test_mrr_of_a_constant_scorer_is_about_two_over_m_plus_two():
    m = 100
    assert mrr(torch.zeros(10), torch.zeros(10, m)) == pytest.approx(1 / (0.5 * m + 1))
    assert mrr(torch.ones(4), torch.zeros(4, m)) == 1.0


def test_mrr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mrr needs pos"):
        mrr(torch.zeros(3), torch.zeros(2, 5))


def test_nan_scores_rank_last():
    """A diverged model scores NaN: its true edges must rank last (not first, which would score 1.0), and a NaN
    negative must not beat a real positive; a row of NaN logits is a wrong prediction."""
    m, nan = 4, float("nan")
    assert mrr(torch.full((3,), nan), torch.full((3, m), nan)) == pytest.approx(1 / (m + 1))
    assert mrr(torch.tensor([nan]), torch.zeros(1, m)) == pytest.approx(1 / (m + 1))
    assert mrr(torch.tensor([1.0]), torch.tensor([[nan, nan, 2.0, 0.0]])) == pytest.approx(1 / 2)  # only 2.0 above
    assert mrr(torch.tensor([1.0, nan]), torch.zeros(2, m)) == pytest.approx((1 + 1 / (m + 1)) / 2)
    logits = torch.tensor([[nan, nan], [0.1, 0.9], [nan, 0.5]])
    assert accuracy(logits, torch.tensor([0, 1, 0])) == pytest.approx(1 / 3)
