"""The GNN models: SAGE's project-before-aggregate layer equals PyG's SAGEConv (pure torch, no Spark)."""

import pytest
import torch
from torch_geometric.nn import SAGEConv

from tma_spark.train.models import NarrowingSAGEConv, build_model


def _graph(n=30, m=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - 3, (2, m), generator=g)  # the last 3 nodes have no neighbours
    return torch.cat([ei, ei.flip(0)], 1)


@pytest.mark.parametrize("in_dim,out_dim", [(40, 8), (8, 40), (16, 16)])
def test_narrowing_sage_equals_pyg_sage_with_the_same_weights(in_dim, out_dim):
    ei = _graph()
    x = torch.randn(30, in_dim, generator=torch.Generator().manual_seed(1))
    ours, pyg = NarrowingSAGEConv(in_dim, out_dim, aggr="mean"), SAGEConv(in_dim, out_dim, aggr="mean")
    pyg.load_state_dict(ours.state_dict())  # same parameter names: checkpoints stay interchangeable
    out, ref = ours(x, ei), pyg(x, ei)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(out[-3:], ref[-3:], atol=1e-6)  # nodes without neighbours: lin_l(0) + lin_r(x)
    (out.sum() + 0 * ref.sum()).backward()
    assert ours.lin_l.weight.grad is not None and ours.lin_r.weight.grad is not None


def test_narrowing_sage_sends_narrow_messages():
    """The point of the layer: the tensor of per-edge messages is out_dim wide, not in_dim wide."""
    widths = []
    conv = NarrowingSAGEConv(64, 4, aggr="mean")
    conv.register_message_forward_hook(lambda module, inputs, output: widths.append(output.shape[-1]))
    conv(torch.randn(30, 64), _graph())
    assert widths == [4]


def test_sage_model_uses_the_narrowing_layer_and_matches_pyg_layers():
    model = build_model("sage", 50, 16, 3, layers=2).eval()
    assert all(isinstance(c, NarrowingSAGEConv) for c in model.convs)
    plain = build_model("sage", 50, 16, 3, layers=2).eval()
    plain.convs = torch.nn.ModuleList([SAGEConv(c.in_channels, c.out_channels, aggr="mean") for c in model.convs])
    plain.load_state_dict(model.state_dict())
    x, ei = torch.randn(30, 50), _graph()
    with torch.no_grad():
        assert torch.allclose(model(x, ei), plain(x, ei), atol=1e-5)
