"""Model aggregation maths (pure torch, no Spark): the averaging step of TMA, and LLCG's correction.

The paper and the authors' code average parameters with an unweighted mean
and overwrite every trainer's model with it; weighting by part size is an
option. Integer buffers (e.g. counters) are taken from the first state.

LLCG (Ramezani et al., "Learn Locally, Correct Globally", ICLR 2022) follows
each averaging with a few server steps of the training objective on the whole
graph: :func:`llcg_correction`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

__all__ = ["average_state_dicts", "normalized_weights", "llcg_correction"]


def normalized_weights(counts: Optional[Sequence[float]], k: int) -> List[float]:
    """Weights summing to 1: uniform when ``counts`` is None, else proportional to counts."""
    if counts is None:
        return [1.0 / k] * k
    if len(counts) != k:
        raise ValueError(f"{len(counts)} weights for {k} states")
    total = float(sum(counts))
    if total <= 0 or any(c < 0 for c in counts):
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(counts)}")
    return [float(c) / total for c in counts]


def average_state_dicts(states: Sequence[Dict[str, torch.Tensor]],
                        weights: Optional[Sequence[float]] = None) -> Dict[str, torch.Tensor]:
    """Weighted mean of state dicts with identical keys and shapes (unweighted by default)."""
    if not states:
        raise ValueError("no states to average")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise ValueError("state dicts have different keys")
    w = normalized_weights(weights, len(states))
    out: Dict[str, torch.Tensor] = {}
    for key in keys:
        first = states[0][key]
        if not torch.is_floating_point(first):
            out[key] = first.clone()
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for wi, s in zip(w, states):
            if s[key].shape != first.shape:
                raise ValueError(f"shape mismatch for {key}: {tuple(s[key].shape)} vs {tuple(first.shape)}")
            acc.add_(s[key].to(torch.float64), alpha=wi)
        out[key] = acc.to(first.dtype)
    return out


def llcg_correction(model: torch.nn.Module, opt: torch.optim.Optimizer, objective, steps: int,
                    ) -> Dict[str, torch.Tensor]:
    """LLCG's server correction: ``steps`` full-graph steps of ``objective`` on ``model`` (holding the averaged
    weights), with ``opt`` kept across rounds; returns the corrected weights."""
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = objective.loss(model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
