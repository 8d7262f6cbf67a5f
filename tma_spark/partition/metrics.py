"""Pure partition maths: data uniformity, balance and super-node packing (no Spark).

``label_tv`` makes the paper's data-uniformity argument measurable: random
assignment gives every part nearly the global label distribution (TV near 0),
min-cut partitioners like METIS give skewed parts (large TV).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["total_variation", "label_tv", "node_balance", "balanced_assignment", "part_targets", "idle_parts"]


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Total-variation distance ``0.5 * sum|p/|p| - q/|q||`` between two histograms (0 when either is empty)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def label_tv(part_histograms: Sequence[Mapping[int, int]], num_classes: int) -> float:
    """Mean TV distance between each part's training-label histogram and the global one.

    Parts without training labels are left out of the mean.
    """
    def dense(h: Mapping[int, int]) -> np.ndarray:
        v = np.zeros(num_classes, dtype=np.float64)
        for k, c in h.items():
            v[int(k)] += c
        return v

    parts = [dense(h) for h in part_histograms]
    total = np.sum(parts, axis=0) if parts else np.zeros(num_classes)
    tvs = [total_variation(p, total) for p in parts if p.sum() > 0]
    return float(np.mean(tvs)) if tvs else 0.0


def node_balance(sizes: Sequence[int]) -> float:
    """Largest part over mean part size (1.0 is perfect balance)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    return float(sizes.max() / sizes.mean()) if len(sizes) and sizes.mean() > 0 else 1.0


def balanced_assignment(sizes: Mapping[int, int], parts: int, seed: int) -> Dict[int, int]:
    """Assign groups (super-nodes) to ``parts`` at random, balanced by node count.

    Largest group first (LPT list scheduling), each to the currently lightest
    part (ties to the lowest index); groups of equal size are taken in a seeded
    random order. Size says nothing about a group's content, so which groups
    share a part is random, while the largest part stays within one small group
    of the mean (super-node sizes are capped).
    """
    if parts < 1:
        raise ValueError("parts must be >= 1")
    keys: List[int] = list(sizes)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    order.sort(key=lambda k: -sizes[k])  # stable sort: the shuffle decides among equal sizes
    load = np.zeros(parts, dtype=np.int64)
    out: Dict[int, int] = {}
    for k in order:
        p = int(np.argmin(load))
        out[k] = p
        load[p] += sizes[k]
    return out


def part_targets(part: Mapping, task: str) -> Optional[int]:
    """The training targets a trainer of this part will have, from the part's ``stats.json`` entry: labelled
    training nodes (``task`` node) or training edges (``task`` link; None in statistics written before
    ``train_edges`` was counted)."""
    if task == "link":
        return part.get("train_edges")
    return int(sum(part.get("label_hist", {}).values()))


def idle_parts(per_part: Sequence[Mapping]) -> Dict[str, List[int]]:
    """Parts on which a trainer would train nothing (``stats.json`` fields): ``empty_parts`` (no nodes: small N,
    large K), and among the other parts ``parts_without_train_nodes`` (no labelled training node: nothing to
    train for node classification) and ``parts_without_train_edges`` (no training edge: nothing to train for
    link prediction)."""
    filled = [d for d in per_part if d["nodes"]]
    return {
        "empty_parts": [d["part"] for d in per_part if not d["nodes"]],
        "parts_without_train_nodes": [d["part"] for d in filled if not part_targets(d, "node")],
        "parts_without_train_edges": [d["part"] for d in filled if part_targets(d, "link") == 0],
    }
