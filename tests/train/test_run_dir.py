"""The run folder without Spark: checkpoint generations, corrupted files, and the recorder's progress hook."""

import json
import logging
import os

import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.train.contract import ModelSpec
from tma_spark.train.evaluation import Evaluator
from tma_spark.train.graphdata import GraphTensors
from tma_spark.train.recorder import Recorder
from tma_spark.train.checkpoint import CHECKPOINT, CHECKPOINT_PREV, Checkpoint, load_checkpoint, save_checkpoint
from tma_spark.train.run_dir import read_config

SPEC = ModelSpec("sage", 2, 4, 2, 2, 0.0)


def _checkpoint(round_: int) -> Checkpoint:
    return Checkpoint(round=round_, elapsed=float(round_), state=SPEC.build(seed=round_).state_dict(),
                      opts={0: b"opt"}, rng=torch.get_rng_state(), row={"round": round_})


def test_a_torn_newest_checkpoint_falls_back_to_the_previous_generation(tmp_path, caplog):
    save_checkpoint(str(tmp_path), _checkpoint(1))
    save_checkpoint(str(tmp_path), _checkpoint(2))
    assert load_checkpoint(str(tmp_path)).round == 2
    assert torch.load(tmp_path / CHECKPOINT_PREV, weights_only=True)["round"] == 1
    assert sorted(os.listdir(tmp_path)) == sorted([CHECKPOINT, CHECKPOINT_PREV])  # no temporary file left
    newest = tmp_path / CHECKPOINT
    newest.write_bytes(newest.read_bytes()[:100])  # torn: the machine died before the bytes reached the disk
    with caplog.at_level(logging.WARNING, logger="tma_spark.train.run_dir"):
        ckpt = load_checkpoint(str(tmp_path))
    assert ckpt.round == 1 and ckpt.opts == {0: b"opt"}
    assert any(CHECKPOINT_PREV in r.getMessage() and "round 1" in r.getMessage() for r in caplog.records)
    newest.unlink()  # the driver died between the two renames
    assert load_checkpoint(str(tmp_path)).round == 1


def test_unreadable_checkpoints_without_a_previous_generation_are_a_clear_error(tmp_path):
    assert load_checkpoint(str(tmp_path)) is None  # killed before the first round finished
    (tmp_path / CHECKPOINT).write_bytes(b"junk")
    with pytest.raises(TmaSparkError, match="checkpoint.pt is not a readable tma_spark checkpoint.*Fix:"):
        load_checkpoint(str(tmp_path))
    (tmp_path / CHECKPOINT_PREV).write_bytes(b"junk too")
    with pytest.raises(TmaSparkError, match="checkpoint.pt is not a readable"):  # the newest one's error
        load_checkpoint(str(tmp_path))


@pytest.mark.parametrize("text,problem", [('{"hidden": 16', "is not valid JSON"), ("[1, 2]", "holds a list")])
def test_a_corrupted_config_json_is_a_clear_error_for_resume_and_infer(tmp_path, text, problem):
    from tma_spark.infer.job import load_run

    (tmp_path / "config.json").write_text(text)
    (tmp_path / "best.pt").write_bytes(b"")
    for read in (lambda: read_config(str(tmp_path)), lambda: load_run(str(tmp_path))):
        with pytest.raises(TmaSparkError) as info:
            read()
        message = str(info.value)
        assert str(tmp_path / "config.json") in message and problem in message and "Fix:" in message
        assert info.value.exit_code == 2


def _evaluator() -> Evaluator:
    graph = GraphTensors(node_ids=torch.arange(4), x=torch.randn(4, 2), y=torch.tensor([0, 1, 0, 1]),
                         split=torch.tensor([0, 1, 2, 1], dtype=torch.int8),
                         edge_index=torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]))
    return Evaluator("node", graph, {"val": torch.tensor([1, 3]), "test": torch.tensor([2])}, exact=True)


def _row(round_: int) -> dict:
    return {"round": round_, "wall_seconds": float(round_), "round_seconds": 1.0, "steps": [1, 1],
            "loss": [0.5, 0.5], "overhead_seconds": 0.1}


def test_a_failing_on_round_callback_is_logged_once_and_never_stops_the_run(tmp_path, caplog):
    """E.g. an experiment tracker whose server is down: every round is still recorded."""
    def hook(row):
        raise ConnectionError("tracking server down")

    recorder = Recorder(str(tmp_path), SPEC.build(), _evaluator(), 60.0, on_round=hook)
    with caplog.at_level(logging.WARNING, logger="tma_spark.train.recorder"):
        for r in (1, 2, 3):
            recorder.submit(_row(r), SPEC.build(seed=r).state_dict())
        recorder.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2, 3]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tracking server down" in warnings[0] and "training goes on" in warnings[0]
