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


# ---------------------------------------------------------------- resume: no round lost while evaluation lags


def _state(round_: int) -> dict:
    return SPEC.build(seed=round_).state_dict()


def _rounds(run) -> list:
    return [json.loads(line)["round"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _resume_once(run, evaluator) -> int:
    """What 'train --resume' does before its first round: load the checkpoint, keep the recorded rounds, record
    the missing ones; the round training continues from."""
    from tma_spark.train.driver import _resume

    recorder = Recorder(str(run), SPEC.build(), evaluator, 60.0)
    try:
        return _resume(str(run), load_checkpoint(str(run)), recorder, None, {}).round
    finally:
        recorder.close()


class _FailingEvaluator:
    """Scores like ``inner`` except the ``fail``-th evaluation, which raises (e.g. the driver ran out of memory)."""

    def __init__(self, inner: Evaluator, fail: int):
        self.inner, self.fail, self.calls, self.metric = inner, fail, 0, inner.metric

    def evaluate(self, model):
        self.calls += 1
        if self.calls == self.fail:
            raise MemoryError("driver out of memory")
        return self.inner.evaluate(model)


def test_resume_records_every_round_the_evaluation_lagged_behind(tmp_path):
    """metrics.jsonl ends at round 2 while checkpoint.pt holds round 5 with rounds 3-5 pending (the evaluation
    lagged three rounds when the driver died): resume records 3, 4, 5 in order from their own weights, and the
    next resume finds rounds 1..5 and records nothing again."""
    evaluator = _evaluator()
    recorder = Recorder(str(tmp_path), SPEC.build(), evaluator, 60.0)
    for r in (1, 2):
        recorder.submit(_row(r), _state(r))
    recorder.close()
    pending = [{"row": _row(r), "state": _state(r)} for r in (3, 4, 5)]
    save_checkpoint(str(tmp_path), Checkpoint(round=5, elapsed=5.0, state=_state(5), opts={}, rng=torch.get_rng_state(),
                                              row=_row(5), pending=pending))
    assert _resume_once(tmp_path, evaluator) == 5
    assert _rounds(tmp_path) == [1, 2, 3, 4, 5]
    model = SPEC.build()
    model.load_state_dict(_state(4))
    row4 = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[3])
    assert row4["val"] == pytest.approx(evaluator.evaluate(model)["val"])  # round 4 scored with round 4's weights
    assert _resume_once(tmp_path, evaluator) == 5  # the next resume works
    assert _rounds(tmp_path) == [1, 2, 3, 4, 5]


def test_a_failed_evaluation_stops_the_run_and_resume_records_that_round(tmp_path, caplog):
    """Round 2's evaluation fails: the driver learns it when it hands round 3 to the recorder, after writing
    round 3's checkpoint, which carries rounds 2 and 3 (the evaluation lags two rounds). The run stops with
    the error logged; resume records rounds 2 and 3; the next resume works."""
    from tma_spark.train.driver import _checkpoint_and_record

    evaluator = _evaluator()
    recorder = Recorder(str(tmp_path), SPEC.build(), _FailingEvaluator(evaluator, 2), 60.0)
    with caplog.at_level(logging.ERROR, logger="tma_spark.train.recorder"), pytest.raises(MemoryError):
        try:
            for r in (1, 2, 3, 4):
                _checkpoint_and_record(str(tmp_path), recorder, Checkpoint(
                    round=r, elapsed=float(r), state=_state(r), opts={}, rng=torch.get_rng_state(), row=_row(r)))
        finally:
            recorder.close()
    assert any("round 2: evaluation failed" in r.getMessage() and "--resume" in r.getMessage()
               for r in caplog.records)
    assert _rounds(tmp_path) == [1]
    ckpt = load_checkpoint(str(tmp_path))
    assert ckpt.round == 3 and [p["row"]["round"] for p in ckpt.pending] == [2, 3]
    assert _resume_once(tmp_path, evaluator) == 3
    assert _rounds(tmp_path) == [1, 2, 3]
    assert _resume_once(tmp_path, evaluator) == 3
    assert _rounds(tmp_path) == [1, 2, 3]


def test_checkpoints_without_pending_rounds_resume_as_before_or_refuse_a_gap(tmp_path):
    """A checkpoint written before ``pending`` existed records its own round, as before; when a round between
    metrics.jsonl and it is lost, resume refuses clearly instead of writing a gap the next resume would refuse."""
    evaluator = _evaluator()
    recorder = Recorder(str(tmp_path), SPEC.build(), evaluator, 60.0)
    recorder.submit(_row(1), _state(1))
    recorder.close()
    for round_ in (2, 3):
        old = {"format": "tma_spark.train.checkpoint/1", "round": round_, "elapsed": 1.0, "state": _state(round_),
               "opts": {}, "rng": torch.get_rng_state(), "row": _row(round_), "server_opt": None}
        torch.save(old, tmp_path / CHECKPOINT)
        if round_ == 2:
            assert _resume_once(tmp_path, evaluator) == 2 and _rounds(tmp_path) == [1, 2]
    (tmp_path / "metrics.jsonl").write_text((tmp_path / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(TmaSparkError, match=r"ends at round 1 .*round 3 without the weights of round\(s\) \[2\].*Fix:"):
        _resume_once(tmp_path, evaluator)
    assert _rounds(tmp_path) == [1]


# ---------------------------------------------------------------- the run folder as a URI


def test_run_folder_files_work_on_a_file_uri(tmp_path):
    """Every run-folder operation goes through tma_spark.fs, so a run folder given as a URI (here ``file:``,
    the same code path as ``s3a://`` minus the network) is written, replaced, resumed and read back whole."""
    from tma_spark.infer.job import load_run
    from tma_spark.train.run_dir import (check_run_dir, open_run_dir, publish_run_dir, read_history,
                                         read_model_spec, read_tracking, write_run_files, write_tracking)

    out = f"file:{tmp_path}/run"
    check_run_dir(out, overwrite=False, resume=False)
    run_dir = open_run_dir(out, overwrite=False, resume=False)
    assert run_dir == out and (tmp_path / "run").is_dir()
    write_run_files(run_dir, {"task": "node", "model": "sage"}, SPEC)
    write_tracking(run_dir, {"run_id": "abc"})
    recorder = Recorder(run_dir, SPEC.build(), _evaluator(), 60.0)
    for r in (1, 2):
        save_checkpoint(run_dir, _checkpoint(r))
        recorder.submit(_row(r), _state(r))
    recorder.close()
    assert _rounds(tmp_path / "run") == [1, 2] and load_checkpoint(run_dir).round == 2
    assert [r["round"] for r in read_history(run_dir, 1)] == [1] and _rounds(tmp_path / "run") == [1]
    assert read_config(run_dir)["model"] == "sage" and read_tracking(out) == {"run_id": "abc"}
    run_cfg, state, spec = load_run(run_dir, "best")
    assert spec == SPEC and read_model_spec(run_dir, run_cfg, state, "best.pt") == SPEC
    with pytest.raises(TmaSparkError, match="already exists"):
        check_run_dir(out, overwrite=False, resume=False)

    staged = open_run_dir(out, overwrite=True, resume=False)  # --overwrite trains beside the finished run
    assert staged == f"file:{tmp_path}/.run.next"
    write_run_files(staged, {"task": "node", "model": "gcn"}, SPEC)
    assert open_run_dir(out, overwrite=False, resume=True) == staged
    publish_run_dir(staged, out)
    assert read_config(out)["model"] == "gcn" and sorted(os.listdir(tmp_path)) == ["run"]
