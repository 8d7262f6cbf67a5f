"""The averaging maths of TMA (pure torch)."""

import pytest
import torch

from tma_spark.train.averaging import average_state_dicts, normalized_weights


def _state(v, n=0):
    return {"w": torch.full((2, 2), float(v)), "b": torch.tensor([v, -v], dtype=torch.float32),
            "count": torch.tensor(n)}


def test_unweighted_mean_as_in_the_paper():
    avg = average_state_dicts([_state(1.0, 7), _state(2.0, 9), _state(6.0, 1)])
    assert torch.allclose(avg["w"], torch.full((2, 2), 3.0))
    assert torch.allclose(avg["b"], torch.tensor([3.0, -3.0]))
    assert avg["count"].item() == 7 and avg["w"].dtype == torch.float32  # integer buffers: first state's


def test_weighted_mean_and_single_state_identity():
    avg = average_state_dicts([_state(0.0), _state(4.0)], weights=[3, 1])
    assert torch.allclose(avg["w"], torch.full((2, 2), 1.0))
    one = _state(5.0)
    assert torch.equal(average_state_dicts([one])["w"], one["w"])


def test_mean_of_identical_models_is_the_model_and_precision_is_kept():
    s = {"w": torch.randn(100, 100)}
    avg = average_state_dicts([s, {"w": s["w"].clone()}, {"w": s["w"].clone()}])
    assert torch.allclose(avg["w"], s["w"], atol=1e-7)


def test_errors():
    with pytest.raises(ValueError, match="no states"):
        average_state_dicts([])
    with pytest.raises(ValueError, match="different keys"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="shape mismatch"):
        average_state_dicts([{"a": torch.zeros(1)}, {"a": torch.zeros(2)}])
    with pytest.raises(ValueError, match="positive sum"):
        normalized_weights([0, 0], 2)
    with pytest.raises(ValueError, match="3 weights for 2"):
        normalized_weights([1, 2, 3], 2)
