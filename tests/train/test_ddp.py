"""The synchronous data-parallel baseline: gradient packing (pure) and lockstep training on real Spark."""

import json

import pytest
import torch

from tma_spark.train.ddp import pack, unpack_mean


def test_pack_unpack_mean_and_stop_votes():
    shapes = [torch.Size([2, 3]), torch.Size([3])]
    a = [torch.ones(2, 3), torch.arange(3.0)]
    b = [3 * torch.ones(2, 3), -torch.arange(3.0)]
    mean, stop = unpack_mean([pack(a, False), pack(b, False)], shapes)
    assert torch.equal(mean[0], 2 * torch.ones(2, 3)) and torch.equal(mean[1], torch.zeros(3)) and not stop
    _, stop = unpack_mean([pack(a, False), pack(b, True)], shapes)
    assert stop  # one vote stops everyone
    with pytest.raises(ValueError, match="gradient messages hold"):
        unpack_mean([pack(a, False)], [torch.Size([2])])


@pytest.mark.spark
def test_ddp_trainers_step_in_lockstep_on_the_whole_graph(spark, cora_lake, tmp_path):
    from tma_spark.train import TrainConfig, train

    out = tmp_path / "run"
    s = train(spark, TrainConfig(lake=cora_lake, out=str(out), mode="ddp", workers=2, round_seconds=2, max_rounds=2,
                                 hidden=32))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [len(r["steps"]) for r in rows] == [2, 2]
    assert all(r["steps"][0] == r["steps"][1] >= 1 for r in rows)  # every step was all-reduced
    assert s["mode"] == "ddp" and s["parts"] == 2 and s["best_val"] > 0.5
