"""Evaluation metrics (pure torch, no Spark): node accuracy and link-prediction MRR."""

from __future__ import annotations

import torch

__all__ = ["accuracy", "mrr"]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rows whose arg-max class equals ``y`` (NaN for no rows). A row with a NaN logit counts as
    wrong: ``argmax`` would pick the NaN, so a diverged model could still score."""
    if y.numel() == 0:
        return float("nan")
    right = (logits.argmax(-1) == y) & ~torch.isnan(logits).any(-1)
    return float(right.float().mean())


def mrr(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Mean reciprocal rank of each positive score among its row of negative scores, as OGB ranks it.

    ``pos`` is (E,), ``neg`` is (E, M). Ties count half (the mean of the optimistic and pessimistic rank),
    as in ogbl-citation2's evaluator, so a constant scorer gets about 2 / (M + 2), not 1. NaN scores rank
    last: a NaN positive gets rank M + 1 (every comparison with NaN is false, so it would otherwise rank
    first and a diverged model would score 1.0), and a NaN negative is never above a positive.

    Args:
        pos: score of each true edge.
        neg: scores of M negative (corrupted) edges per true edge.
    """
    if pos.ndim != 1 or neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"mrr needs pos (E,) and neg (E, M); got {tuple(pos.shape)} and {tuple(neg.shape)}")
    if pos.numel() == 0:
        return float("nan")
    p = pos.view(-1, 1)
    optimistic = (neg > p).sum(1)
    pessimistic = (neg >= p).sum(1)
    rank = 0.5 * (optimistic + pessimistic).double() + 1.0
    rank = torch.where(torch.isnan(pos), float(neg.shape[1] + 1), rank)
    return float((1.0 / rank).mean())
