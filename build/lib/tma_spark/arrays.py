"""Small numpy helpers shared by the graph loaders."""

from __future__ import annotations

import numpy as np

__all__ = ["unique_int64"]


def unique_int64(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of an integer array.

    Same result as ``np.unique(x)``, which on numpy 2.4 is about 20x slower for
    int64 (10^7 values: 11.7 s against 0.7 s for sort + neighbour compare).
    """
    y = np.sort(np.asarray(x).ravel())
    if y.size == 0:
        return y
    return y[np.concatenate(([True], y[1:] != y[:-1]))]
