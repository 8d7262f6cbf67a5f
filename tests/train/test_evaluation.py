"""The choice between exact and sampled evaluation (pure): by the driver memory it takes, not the edge count."""

import pytest

from tma_spark.errors import ConfigError
from tma_spark.train import TrainConfig
from tma_spark.train.evaluation import eval_mode, full_eval_bytes


def _cfg(**kw):
    return TrainConfig(lake="l", partitions="p", out="o", **kw).validate()


def test_auto_evaluation_follows_the_memory_estimate_not_the_edge_count():
    cfg = _cfg()  # hidden 256, eval_max_gb 4
    # ogbn-arxiv (169,343 nodes, 128 features, 1.17M edges): about 2.6 GB, exact on the driver.
    assert full_eval_bytes(169_343, 1_166_243, 128, 256) < 4e9
    assert eval_mode(cfg, 169_343, 1_166_243, 128) == "full"
    # The same edges with 8,415 features (a wide bag of words): sampled, though the edge count is small.
    assert eval_mode(cfg, 169_343, 1_166_243, 8_415) == "sampled"
    # 10^7 nodes, 10^8 edges, 64 features: far beyond any driver.
    assert full_eval_bytes(10**7, 10**8, 64, 256) > 1e11
    assert eval_mode(cfg, 10**7, 10**8, 64) == "sampled"
    assert eval_mode(_cfg(eval_max_gb=1000), 10**7, 10**8, 64) == "full"
    assert eval_mode(_cfg(eval="full"), 10**7, 10**8, 64) == "full"
    assert eval_mode(_cfg(eval="sampled"), 100, 100, 4) == "sampled"


def test_eval_fanouts_default_to_the_largest_training_fanout_per_hop_and_are_checked():
    assert _cfg().eval_hop_fanouts == (25, 25)
    assert _cfg(fanouts=(5, 3)).eval_hop_fanouts == (5, 5)
    assert _cfg(fanouts=(10, -1)).eval_hop_fanouts == (-1, -1)
    assert _cfg(eval_fanouts=(-1, -1)).eval_hop_fanouts == (-1, -1)
    assert _cfg(eval_fanouts=(40, 20)).to_dict()["eval_fanouts"] == [40, 20]
    with pytest.raises(ConfigError, match="--eval-fanouts 5 must give one fan-out per layer"):
        _cfg(eval_fanouts=(5,))
    with pytest.raises(ConfigError, match="--eval-max-gb"):
        _cfg(eval_max_gb=0)
