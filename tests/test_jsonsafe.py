"""Every JSON file tma_spark writes is valid JSON: non-finite numbers become null (no Spark)."""

import json
import math

import numpy as np
import pytest

from tma_spark import fs
from tma_spark.jsonsafe import dumps, nonfinite_to_null


def _strict(text: str):
    """Parse as strict JSON: NaN, Infinity and -Infinity are refused, as jq or JavaScript refuse them."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_nonfinite_to_null_maps_nan_and_infinities_in_nested_values():
    obj = {"best_val": float("-inf"), "test": float("nan"), "rows": [1.5, float("inf"), (2, np.float32("nan"))],
           "n": 3, "ok": True, "name": "run", "none": None, "np": np.float64(0.25), "np32": np.float32(0.5)}
    out = nonfinite_to_null(obj)
    assert out == {"best_val": None, "test": None, "rows": [1.5, None, [2, None]], "n": 3, "ok": True,
                   "name": "run", "none": None, "np": 0.25, "np32": 0.5}
    assert type(out["np32"]) is float and out["ok"] is True and type(out["n"]) is int
    assert math.isnan(obj["test"])  # the input is left alone


def test_dumps_is_strict_json():
    text = dumps({"val": float("nan"), "curve": [[1.0, float("-inf")]]}, indent=2)
    assert _strict(text) == {"val": None, "curve": [[1.0, None]]}
    with pytest.raises(ValueError):
        json.dumps(float("nan"), allow_nan=False)  # what dumps guards against: it never writes NaN


def test_write_json_writes_null_for_an_unscored_summary(tmp_path):
    path = tmp_path / "summary.json"
    fs.write_json(str(path), {"best_val": float("-inf"), "test": float("nan"), "rounds": 2})
    assert _strict(path.read_text()) == {"best_val": None, "test": None, "rounds": 2}
