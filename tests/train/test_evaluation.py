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


@pytest.mark.parametrize("kind,in_dim,hidden", [("sage", 8, 16), ("sage", 32, 16), ("mlp", 8, 16)])
def test_trimmed_forward_gives_the_targets_the_outputs_of_the_whole_subgraph(kind, in_dim, hidden):
    """Evaluation on a sampled neighbourhood computes each layer only on the nodes a later layer reads; the
    targets' outputs are those of the forward over the whole subgraph, for widening and narrowing layers."""
    import numpy as np
    import torch

    from tma_spark.arrays import symmetric_edge_index
    from tma_spark.train.evaluation import trim_to_targets
    from tma_spark.train.graphdata import GraphTensors
    from tma_spark.train.models import build_model

    rng = np.random.default_rng(0)
    n = 400
    ei = torch.from_numpy(symmetric_edge_index(rng.integers(0, n, 1500), rng.integers(0, n, 1500), n))
    graph = GraphTensors(torch.arange(n) * 7, torch.randn(n, in_dim), torch.from_numpy(rng.integers(0, 3, n)),
                         torch.zeros(n, dtype=torch.int8), ei)
    model = build_model(kind, in_dim, hidden, 3, layers=3, seed=1).eval()
    targets = torch.tensor([5, 17, 200, 399])
    with torch.no_grad():
        whole = model(graph.x, graph.edge_index)[targets]
        trimmed, new_row, plan = trim_to_targets(graph, targets, 3)
        out = model(trimmed.x, trimmed.edge_index, trim=plan)
    assert [rows for rows, _ in plan][-1] == len(targets) and plan[0][0] < n  # the first layer skips the outermost hop
    assert torch.equal(trimmed.node_ids[new_row[targets]], graph.node_ids[targets])
    torch.testing.assert_close(out[new_row[targets]], whole, rtol=1e-5, atol=1e-5)
