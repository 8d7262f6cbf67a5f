"""One writer per output (claims) and recovery of a commit interrupted between its two renames.

Local paths through the session-free filesystem layer; the CLI case is in test_bad_input.py."""

import json
import os
import platform

import pytest

from tma_spark.claims import claim_path, claimed, holder_alive, recover_interrupted_commit
from tma_spark.errors import TmaSparkError


def _claim(out, pid, host=None):
    with open(claim_path(str(out)), "w") as fh:
        json.dump({"host": host or platform.node(), "pid": pid, "command": "tma-spark ingest",
                   "started": "2026-12-01T00:00:00+00:00"}, fh)


def test_a_claim_is_held_for_the_block_and_released_after_it(tmp_path):
    out = tmp_path / "lake"
    with claimed(None, str(out), "tma-spark ingest"):
        held = json.loads(open(claim_path(str(out))).read())
        assert held["pid"] == os.getpid() and held["command"] == "tma-spark ingest"
        with pytest.raises(TmaSparkError, match="is being written by another job: tma-spark ingest"):
            with claimed(None, str(out), "tma-spark ingest"):
                pass
    assert not os.path.exists(claim_path(str(out)))


def test_a_live_writer_is_reported_and_a_dead_one_on_this_host_is_taken_over(tmp_path):
    out = tmp_path / "lake"
    _claim(out, pid=1)  # init: alive
    with pytest.raises(TmaSparkError, match=r"process 1, since .* delete .*\.lake\.claim"):
        with claimed(None, str(out), "tma-spark ingest"):
            pass
    assert os.path.exists(claim_path(str(out)))  # someone else's claim stays
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    _claim(out, pid=dead)
    with claimed(None, str(out), "tma-spark ingest"):
        assert json.loads(open(claim_path(str(out))).read())["pid"] == os.getpid()


def test_holder_on_another_host_cannot_be_judged():
    assert holder_alive({"host": "elsewhere", "pid": 1}, "here") is None
    assert holder_alive({}, "here") is None
    assert holder_alive({"host": "here", "pid": 1}, "here") is True


def test_a_commit_killed_between_its_two_renames_gets_its_previous_version_back(tmp_path):
    previous = tmp_path / ".lake.previous-abc123"
    previous.mkdir()
    (previous / "_tma_lake.json").write_text("{}")
    (tmp_path / ".lake.staging-def456").mkdir()  # the new version, never renamed in
    assert recover_interrupted_commit(None, str(tmp_path / "lake")) == ".lake.previous-abc123"
    assert (tmp_path / "lake" / "_tma_lake.json").exists() and not previous.exists()
    assert recover_interrupted_commit(None, str(tmp_path / "lake")) is None  # nothing to do now
    (tmp_path / ".other.previous-1").mkdir()
    (tmp_path / ".other.previous-2").mkdir()
    with pytest.raises(TmaSparkError, match="interrupted more than once"):
        recover_interrupted_commit(None, str(tmp_path / "other"))
