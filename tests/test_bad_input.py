"""Bad input across the commands, through the real CLI: each case exits with status 2, names the problem in
one message, and leaves every file as it was (nothing lost, nothing half-written).

The ingest table-validation cases live in test_ingest_validation.py (19 cases, same contract); inference's
corrupted and foreign checkpoints also in test_infer.py. This file adds the cases between commands.
"""

import json
import os
import pickle
import platform
import re
import shutil
from pathlib import Path

import pytest
import torch

from tma_spark.partition import PartitionConfig, partition
from tma_spark.train import TrainConfig, train

pytestmark = pytest.mark.spark
PACKAGE = Path(__file__).resolve().parents[1] / "tma_spark"


class _Evil:
    """Unpickling this object would create the file ``path``: a stand-in for arbitrary code in a pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def world(spark, cora_lake, cora_parts, tmp_path_factory):
    """A finished K = 2 run on Cora, K = 3 parts of the same lake, and parts of another lake."""
    root = tmp_path_factory.mktemp("bad_input")
    run = root / "run"
    train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(run), round_seconds=1, max_rounds=1,
                             hidden=16))
    parts3 = str(root / "p3")
    partition(spark, PartitionConfig(lake=cora_lake, out=parts3, parts=3))
    return {"lake": cora_lake, "parts": cora_parts, "parts3": parts3, "run": str(run)}


def _snapshot(*roots):
    """(path, size, mtime) of every file under ``roots``: equal snapshots mean nothing was written or lost."""
    files = set()
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                st = os.stat(os.path.join(dirpath, name))
                files.add((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
    return files


def _copy_run(world, tmp_path, corrupt=None):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    if corrupt is not None:
        corrupt(run, tmp_path)
    return str(run)


def _garbage(run, tmp):
    (run / "checkpoint.pt").write_bytes(b"\x00 not a checkpoint")


def _foreign(run, tmp):
    torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")


def _malicious(run, tmp):
    (run / "checkpoint.pt").write_bytes(pickle.dumps(_Evil(str(tmp / "PWNED"))))
    (run / "best.pt").write_bytes(pickle.dumps(_Evil(str(tmp / "PWNED"))))


def _parts_with_meta(world, tmp_path, text):
    parts = tmp_path / "parts"
    shutil.copytree(world["parts"], parts)
    (parts / "_tma_parts.json").write_text(text)
    return str(parts)


def _someone_elses(tmp):
    """A folder of someone else's data, where a typo points --overwrite."""
    data = tmp / "data"
    data.mkdir()
    (data / "precious.csv").write_text("keep me\n")
    return data


def _claimed_by_a_live_job(out):
    """``out`` as a running job (process 1, alive on this host) has claimed it."""
    (out.parent / f".{out.name}.claim").write_text(json.dumps(
        {"host": platform.node(), "pid": 1, "command": "tma-spark ingest", "started": "2026-12-01T00:00:00"}))
    return out


def _train(w, out, *extra):
    return ["train", "--lake", w["lake"], "--partitions", w["parts"], "--out", out, "-T", "1", "--max-rounds", "1",
            "--hidden", "16", *extra]


# (id, argv builder (world, tmp_path) -> argv, expected message fragment)
CASES = [
    ("ingest-count-not-a-number", lambda w, t: ["ingest", "--lake", t / "L", "--synthetic", "--nodes", "1e", "--edges",
                                                "5"], "--nodes '1e' is not a number"),
    ("ingest-split-not-summing-to-1", lambda w, t: ["ingest", "--lake", t / "L", "--dataset", "cora", "--split",
                                                    "0.5,0.5,0.5"], "summing to 1"),
    ("ingest-existing-lake", lambda w, t: ["ingest", "--lake", w["lake"], "--dataset", "cora"], "already exists"),
    ("partition-zero-parts", lambda w, t: ["partition", "--lake", w["lake"], "--out", t / "P", "-k", "0"], "--parts"),
    ("partition-unknown-strategy", lambda w, t: ["partition", "--lake", w["lake"], "--out", t / "P", "--strategy",
                                                 "hash"], "hash"),
    ("partition-not-a-lake", lambda w, t: ["partition", "--lake", w["parts"], "--out", t / "P"], "is not a tma_spark lake"),
    ("train-zero-budget", lambda w, t: _train(w, t / "R", "--time-limit", "0"), "--time-limit 0.0 must be positive"),
    ("train-negative-budget", lambda w, t: _train(w, t / "R", "--time-limit", "-30"), "must be positive"),
    ("train-zero-round-seconds", lambda w, t: _train(w, t / "R", "-T", "0"), "--round-seconds 0.0 must be positive"),
    ("train-malformed-number", lambda w, t: _train(w, t / "R", "--max-rounds", "0"), "--max-rounds 0"),
    ("train-malformed-fault", lambda w, t: _train(w, t / "R", "--inject-failure", "trainer-1"), "KIND:PART:ROUND"),
    ("train-parts-of-another-lake", lambda w, t: ["train", "--lake", w["lake"], "--partitions", w["run"], "--out",
                                                  t / "R"], "is not a partitions folder"),
    ("train-corrupted-parts-meta", lambda w, t: ["train", "--lake", w["lake"], "--partitions",
                                                 _parts_with_meta(w, t, "{torn"), "--out", t / "R"],
     "_tma_parts.json is not valid JSON"),
    ("train-foreign-parts-meta", lambda w, t: ["train", "--lake", w["lake"], "--partitions",
                                               _parts_with_meta(w, t, '{"config": {"k": 2}}'), "--out", t / "R"],
     "_tma_parts.json lacks parts"),
    ("ingest-overwrite-foreign-folder", lambda w, t: ["ingest", "--lake", _someone_elses(t), "--dataset", "cora",
                                                      "--overwrite"], "--overwrite refused"),
    ("partition-overwrite-a-lake", lambda w, t: ["partition", "--lake", w["lake"], "--out", w["lake"], "--overwrite"],
     "is not a partitions folder written by"),
    ("train-overwrite-foreign-folder", lambda w, t: _train(w, _someone_elses(t), "--overwrite"), "--overwrite refused"),
    ("infer-overwrite-foreign-folder", lambda w, t: ["infer", "--lake", w["lake"], "--run", w["run"], "--out",
                                                     _someone_elses(t), "--overwrite"], "--overwrite refused"),
    ("bench-overwrite-a-run", lambda w, t: ["bench", "--lake", w["lake"], "--out", w["run"], "--methods", "central",
                                            "--seeds", "1", "--overwrite"], "is not a benchmark folder"),
    ("ingest-claimed-by-another-job", lambda w, t: ["ingest", "--lake", _claimed_by_a_live_job(t / "L"), "--dataset",
                                                    "cora"], "is being written by another job: tma-spark ingest"),
    ("train-claimed-by-another-job", lambda w, t: _train(w, _claimed_by_a_live_job(t / "R")),
     "is being written by another job"),
    ("train-existing-run", lambda w, t: _train(w, w["run"]), "already exists (finished)"),
    ("train-resume-nothing", lambda w, t: _train(w, t / "R", "--resume"), "holds no run to resume"),
    ("train-resume-and-overwrite", lambda w, t: _train(w, w["run"], "--resume", "--overwrite"), "pass one of them"),
    ("train-resume-wrong-k", lambda w, t: ["train", "--lake", w["lake"], "--partitions", w["parts3"], "--out", w["run"],
                                           "-T", "1", "--hidden", "16", "--resume"], "parts=2 (now 3)"),
    ("train-resume-other-model", lambda w, t: _train(w, w["run"], "--hidden", "32", "--resume"), "hidden=16 (now 32)"),
    ("train-resume-garbage-checkpoint", lambda w, t: _train(w, _copy_run(w, t, _garbage), "--resume"),
     "is not a readable tma_spark checkpoint"),
    ("train-resume-foreign-checkpoint", lambda w, t: _train(w, _copy_run(w, t, _foreign), "--resume"),
     "is not a tma_spark train checkpoint"),
    ("train-resume-pickle-payload", lambda w, t: _train(w, _copy_run(w, t, _malicious), "--resume"),
     "is not a readable tma_spark checkpoint"),
    ("infer-pickle-payload", lambda w, t: ["infer", "--lake", w["lake"], "--run", _copy_run(w, t, _malicious),
                                           "--out", t / "PRED"], "could not be read"),
    ("infer-unknown-checkpoint", lambda w, t: ["infer", "--lake", w["lake"], "--run", w["run"], "--out", t / "PRED",
                                               "--checkpoint", "newest"], "--checkpoint"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(cli, world, tmp_path, case):
    _, build, fragment = case
    argv = build(world, tmp_path)
    before = _snapshot(tmp_path, world["run"], world["lake"], world["parts"])
    code, out, err = cli(*argv)
    assert code == 2, (code, err[-2000:])
    assert fragment in err, err[-2000:]
    assert "Traceback" not in err
    assert _snapshot(tmp_path, world["run"], world["lake"], world["parts"]) == before
    assert not (tmp_path / "PWNED").exists()  # nothing was unpickled


def _calls(text, name):
    """The full text of each call ``name(...)`` in ``text`` (parentheses balanced)."""
    for start in (m.start() for m in re.finditer(re.escape(name), text)):
        depth, i = 0, start + len(name) - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        yield text[start:i + 1]


def test_no_unsafe_loading_and_no_listening_sockets_in_the_package():
    """Static guarantees: every torch.load is weights_only=True, every numpy load refuses pickles, no pickle
    module loads, and tma_spark itself never opens a server socket (Spark's own sockets are Spark's)."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for name, required in (("torch.load(", "weights_only=True"), ("np.load(", "allow_pickle=False")):
            for call in _calls(text, name):
                if required not in call:
                    problems.append(f"{path.name}: {call}")
        for pattern in (r"\bimport pickle\b", r"pickle\.loads?\(", r"\bimport socket", r"socketserver",
                        r"http\.server", r"\.listen\(", r"\.bind\(", r"xmlrpc", r"multiprocessing\.connection"):
            if re.search(pattern, text):
                problems.append(f"{path.name}: {pattern}")
    assert not problems, problems
