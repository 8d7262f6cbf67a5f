"""Valid JSON for every file tma_spark writes: non-finite numbers become ``null``.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: ``jq``, JavaScript,
Spark's JSON reader and most dashboards reject the whole file. A score that is undefined (a split with no
targets: NaN; no round scored yet: -inf) is written as ``null`` instead, and :func:`dumps` refuses anything
else that is not JSON (``allow_nan=False``). Pure functions; no Spark.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

__all__ = ["nonfinite_to_null", "dumps"]


def nonfinite_to_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (numpy's included) replaced by None, in nested dicts, lists
    and tuples (tuples become lists, as JSON has no tuples); finite numpy floats become Python floats.
    Everything else is returned as it is."""
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dict):
        return {k: nonfinite_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nonfinite_to_null(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps`` of :func:`nonfinite_to_null` of ``obj`` with ``allow_nan=False``: always valid JSON.
    ``kwargs`` go to ``json.dumps`` (``indent``, ``default``, ``sort_keys``)."""
    return json.dumps(nonfinite_to_null(obj), allow_nan=False, **kwargs)
