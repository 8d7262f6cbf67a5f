"""What tma_spark survives, shown with real failures: killed trainers, killed executors (local-cluster), a
killed driver that resumes, and jobs killed while committing their output."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from tma_spark.faults import Fault, fault_for, parse_faults
from tma_spark.errors import ConfigError, TmaSparkError
from tma_spark.lake import open_lake
from tma_spark.train import TrainConfig, train
from tma_spark.train.config import default_round_timeout
from tma_spark.train.rounds import _Watchdog

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
FAST = {"round_seconds": 1.5, "hidden": 32}


def _rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _env(**extra):
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", **extra}


# ---------------------------------------------------------------- pure logic


def test_parse_faults_and_fire_only_on_the_first_attempt():
    faults = parse_faults("trainer:1:2, executor:0:3")
    assert faults == (Fault("trainer", 1, 2), Fault("executor", 0, 3))
    assert fault_for(faults, 1, 2, first_attempt=True) == Fault("trainer", 1, 2)
    assert fault_for(faults, 1, 2, first_attempt=False) is None
    assert fault_for(faults, 0, 2, first_attempt=True) is None
    assert parse_faults(None) == () and parse_faults("") == ()
    for bad, fragment in [("trainer:1", "KIND:PART:ROUND"), ("disk:0:1", "not one of"), ("trainer:x:1", "KIND"),
                          ("trainer:0:0", "ROUND >= 1"), ("trainer:-1:2", "PART must be"),
                          ("trainer:0:1:5", "KIND:PART:ROUND")]:
        with pytest.raises(ConfigError, match=fragment):
            parse_faults(bad)


def test_diverge_fault_fires_on_every_attempt():
    """A divergence replays from the same weights and seeds, so the injected one fires on retries too."""
    faults = parse_faults("diverge:0:2")
    assert faults == (Fault("diverge", 0, 2),)
    assert fault_for(faults, 0, 2, first_attempt=False) == Fault("diverge", 0, 2)
    assert fault_for(faults, 0, 3, first_attempt=True) is None


def test_round_timeout_defaults_to_a_bound_derived_from_t_and_must_exceed_t(tmp_path):
    """A round is cancelled after max(3T, T + 120) s unless --round-timeout says otherwise; a bound not longer
    than the round itself is refused. A hang fires on the first attempt only, like a killed trainer."""
    assert [default_round_timeout(t) for t in (1, 30, 60, 100)] == [121, 150, 180, 300]
    cfg = TrainConfig(lake="l", partitions="p", out=str(tmp_path))
    assert cfg.round_timeout is None and cfg.round_bound == 150
    assert TrainConfig(lake="l", partitions="p", out=str(tmp_path), round_timeout=7, round_seconds=1).round_bound == 7
    with pytest.raises(ConfigError, match=r"--round-timeout 5.* longer than the round .*--round-seconds 5"):
        TrainConfig(lake="l", partitions="p", out=str(tmp_path), round_seconds=5, round_timeout=5).validate()
    faults = parse_faults("hang:1:2")
    assert faults == (Fault("hang", 1, 2),) and fault_for(faults, 1, 2, first_attempt=False) is None


def test_watchdog_cancels_the_round_job_group_only_after_the_timeout():
    class FakeContext:
        cancelled = []

        def cancelJobGroup(self, group):  # noqa: N802 -- SparkContext's name
            self.cancelled.append(group)

    sc = FakeContext()
    finished = _Watchdog(sc, "g1", 0.3, 1)
    finished.stop()  # the round finished in time
    unbounded = _Watchdog(sc, "g2", None, 1)
    hung = _Watchdog(sc, "g3", 0.1, 2)
    assert hung.fired.wait(5) and not unbounded.fired.is_set()
    time.sleep(0.4)
    assert sc.cancelled == ["g3"] and not finished.fired.is_set()
    assert "ran past 0.1 s (--round-timeout)" in hung.reason()


# ---------------------------------------------------------------- trainer failures (local mode)


@pytest.mark.spark
def test_killed_trainer_round_is_retried_by_default(spark, cora_lake, cora_parts, tmp_path):
    """trainer 1's Python worker is SIGKILLed half-way through round 2: the barrier round fails and runs again."""
    run = tmp_path / "run"
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(run), max_rounds=3,
                                 inject_failures="trainer:1:2", **FAST))
    rows = _rows(run)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert [r["attempts"] for r in rows] == [1, 2, 1]
    assert all(r["lost_parts"] == [] and min(r["steps"]) >= 1 for r in rows)
    assert s["round_retries"] == 1 and s["lost_trainer_rounds"] == 0 and s["best_val"] > 0.5


def _listening(pid):
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


@pytest.mark.spark
def test_tolerated_trainer_failure_averages_survivors_and_keeps_accuracy(spark, cora_lake, cora_parts, tmp_path):
    """With --tolerate-failures round 1 is averaged over the surviving trainer, trainer 1 rejoins in round 2,
    and the final test accuracy stays within 1 point of the same run without the failure. The driver opens
    no listening socket of its own meanwhile."""
    common = {"lake": cora_lake, "partitions": cora_parts, "max_rounds": 5, "tolerate_failures": True,
              "round_seconds": 1.5, "hidden": 64}
    clean = train(spark, TrainConfig(out=str(tmp_path / "clean"), **common))

    before, seen, stop = _listening(os.getpid()), set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.update(_listening(os.getpid()))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        failed = train(spark, TrainConfig(out=str(tmp_path / "failed"), inject_failures="trainer:1:1", **common))
    finally:
        stop.set()
        watcher.join()
    rows = _rows(tmp_path / "failed")
    assert [r["lost_parts"] for r in rows] == [[1], [], [], [], []]
    assert rows[0]["steps"][1] is None and rows[1]["steps"][1] >= 1  # lost, then back
    assert failed["lost_trainer_rounds"] == 1 and failed["round_retries"] == 0
    assert abs(failed["test"] - clean["test"]) <= 0.01, (failed["test"], clean["test"])
    assert seen <= before, f"new listening sockets in the driver: {seen - before}"


@pytest.mark.spark
def test_executor_fault_needs_separate_executor_processes(spark, cora_lake, cora_parts, tmp_path):
    with pytest.raises(ConfigError, match="local-cluster"):
        train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(tmp_path / "r"),
                                 inject_failures="executor:0:1"))
    with pytest.raises(ConfigError, match="part 2 does not exist"):
        train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(tmp_path / "r"),
                                 inject_failures="trainer:2:1"))
    assert not (tmp_path / "r").exists()


@pytest.mark.spark
def test_diverged_trainer_is_a_failed_trainer(spark, cora_lake, cora_parts, tmp_path):
    """Trainer 1's weights turn NaN in round 1 (diverge:1:1). With --tolerate-failures round 1 is averaged over
    trainer 0 and the model stays finite; trainer 1 rejoins in round 2. Without it, a round whose every trainer
    diverges in every attempt stops the run with an error that names the learning rate."""
    common = {"lake": cora_lake, "partitions": cora_parts, "round_seconds": 1, "hidden": 16}
    run = tmp_path / "tolerated"
    s = train(spark, TrainConfig(out=str(run), max_rounds=2, tolerate_failures=True, inject_failures="diverge:1:1",
                                 **common))
    rows = _rows(run)
    assert [r["lost_parts"] for r in rows] == [[1], []] and [r["attempts"] for r in rows] == [1, 1]
    assert rows[0]["loss"][1] is None and rows[1]["steps"][1] >= 1  # discarded, then back
    assert s["lost_trainer_rounds"] == 1 and math.isfinite(s["best_val"]) and s["best_val"] > 0.3
    for name in ("best.pt", "last.pt"):
        assert all(torch.isfinite(t).all() for t in torch.load(run / name, weights_only=True).values())

    with pytest.raises(TmaSparkError, match=r"Round 1: every trainer diverged .* in all 2 attempt\(s\).*"
                       r"--lr 0\.005 is too large.* --lr 0\.0005"):
        train(spark, TrainConfig(out=str(tmp_path / "diverged"), max_rounds=1, round_retries=1,
                                 inject_failures="diverge:0:1,diverge:1:1", **common))


@pytest.mark.spark
def test_resident_optimizer_state_after_divergence_and_retries(spark, cora_lake, cora_parts):
    """A trainer task run in-process with a resident Adam state: after a round whose weights diverged, its next
    round starts a fresh optimizer (reported as a miss) instead of the state the diverged steps updated; a round
    run twice starts from the same state both times."""
    from tma_spark.train import executor
    from tma_spark.train.contract import ModelSpec, Source, TrainerSpec, to_bytes

    meta = open_lake(spark, cora_lake).meta
    model = ModelSpec("sage", meta.feature_dim, 16, meta.num_classes)
    spec = TrainerSpec(model=model, source=Source("parts", cora_parts, "delta", "test"), optimizer_state="resident",
                       trainers=2, run_id="diverge-test")
    state = to_bytes(model.build().state_dict())

    def task(round_index, fault=None):
        return executor.run_trainer_task(0, spec, state, None, 0.2, round_index, None, torch.get_num_threads(), fault)

    with torch.random.fork_rng():
        assert task(1).divergence() is None and set(executor._OPT_STATES[(spec.run_id, 0)]) == {1}
        assert task(2, Fault("diverge", 0, 2)).divergence().startswith("diverged: non-finite weights")
        assert set(executor._OPT_STATES[(spec.run_id, 0)]) == {1}  # only the state before the diverged round
        assert task(3).opt_miss

        # A round run again (after another trainer failed it) starts from the state before it, which the
        # first attempt did not change in place.
        task(4)
        before = {k: v.clone() for k, v in executor._OPT_STATES[(spec.run_id, 0)][4]["state"][0].items()}
        assert not task(5).opt_miss and set(executor._OPT_STATES[(spec.run_id, 0)]) == {4, 5}
        after = executor._OPT_STATES[(spec.run_id, 0)][4]["state"][0]
        assert all(torch.equal(before[k], after[k]) for k in before), "round 5 changed round 4's state in place"
        again = task(5)
        assert not again.opt_miss and set(executor._OPT_STATES[(spec.run_id, 0)]) == {4, 5}


@pytest.mark.spark
@pytest.mark.parametrize("tolerate", [False, True], ids=["retry", "tolerate"])
def test_hung_trainer_round_is_cancelled_after_the_round_timeout(spark, cora_lake, cora_parts, tmp_path, tolerate):
    """Trainer 1 hangs half-way through round 1 (hang:1:1, an hour's sleep). After --round-timeout 8 s the round's
    Spark job is cancelled (job group, interrupt on cancel): by default the round runs again, with
    --tolerate-failures it is averaged over trainer 0 and trainer 1 rejoins in round 2. The run finishes.
    The bound (20 s) leaves room for a new Python worker (torch import, part load) on a loaded machine."""
    run = tmp_path / "run"
    started = time.monotonic()
    s = train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(run), round_seconds=1, hidden=16,
                                 max_rounds=2, round_timeout=20, tolerate_failures=tolerate,
                                 inject_failures="hang:1:1"))
    assert time.monotonic() - started < 180
    rows = _rows(run)
    assert [r["round"] for r in rows] == [1, 2]
    if tolerate:
        assert [r["lost_parts"] for r in rows] == [[1], []] and [r["attempts"] for r in rows] == [1, 1]
        assert rows[0]["steps"][1] is None and rows[1]["steps"][1] >= 1  # cancelled, then back
        assert s["lost_trainer_rounds"] == 1
    else:
        assert [r["lost_parts"] for r in rows] == [[], []] and rows[0]["attempts"] >= 2
        assert s["round_retries"] >= 1
    assert rows[0]["stage_seconds"] >= 20  # the first attempt ran until the timeout
    assert s["best_val"] > 0.3


# ---------------------------------------------------------------- executor failures (local-cluster)


@pytest.mark.cluster
@pytest.mark.parametrize("tolerate", [False, True], ids=["retry", "tolerate"])
def test_killed_executor_in_local_cluster(cora_lake, cora_parts, tmp_path, tolerate):
    """Two executor JVMs; the one running trainer 1 is SIGKILLed half-way through round 2. The standalone
    worker starts a new executor; by default the round runs again, with --tolerate-failures it is averaged
    over trainer 0 and trainer 1 rejoins in round 3. The job completes either way."""
    run = tmp_path / "run"
    jars = subprocess.run([BIN / "tma-spark", "jars", "--classpath"], capture_output=True, text=True).stdout.strip()
    argv = [BIN / "spark-submit", "--master", "local-cluster[2,1,1024]", "--jars", jars, REPO / "jobs" / "train.py",
            "--lake", cora_lake, "--partitions", cora_parts, "--out", run, "-T", "2", "--max-rounds", "3",
            "--hidden", "32", "--inject-failure", "executor:1:2"] + (["--tolerate-failures"] if tolerate else [])
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=_env(), timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Command exited with code 137" in r.stderr  # Spark saw an executor JVM die of SIGKILL
    rows = _rows(run)
    assert [row["round"] for row in rows] == [1, 2, 3]
    if tolerate:
        assert [row["lost_parts"] for row in rows] == [[], [1], []]
        assert [row["attempts"] for row in rows] == [1, 1, 1]
    else:
        assert [row["lost_parts"] for row in rows] == [[], [], []]
        assert [row["attempts"] for row in rows] == [1, 2, 1]
    assert min(rows[2]["steps"]) >= 1
    # Adam state: --tolerate-failures ships it (auto), so no trainer restarts it. Resident (the default), it
    # restarts in round 2's retry for the part on the new executor, and for the other part too when Spark
    # replaced its worker, killing the failed stage's task (it did in every run seen: [0, 2, 0]).
    misses = [row["optimizer_state_misses"] for row in rows]
    assert misses == [0, 0, 0] if tolerate else (misses[0] == misses[2] == 0 and misses[1] >= 1), misses
    assert json.loads((run / "summary.json").read_text())["best_val"] > 0.5


# ---------------------------------------------------------------- driver failure and resume


def _wait_for_rounds(path: Path, n: int, proc, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"train exited early with {proc.returncode}")
        if path.exists():
            done = len([line for line in path.read_text().splitlines() if line.endswith("}")])
            if done >= n:
                return done
        time.sleep(0.2)
    raise AssertionError(f"no {n} rounds in {path} after {timeout} s")


@pytest.mark.spark
def test_killed_driver_resumes_and_overwrite_keeps_the_previous_run(spark, cli, cora_lake, cora_parts, tmp_path):
    """Run A finishes. Run B replaces it (--overwrite) and its driver is SIGKILLed after two rounds: A is still
    the run in RUN. 'train --resume' continues B from its checkpoint, losing at most the round in flight,
    and swaps it in; B's metrics have every round exactly once."""
    run = tmp_path / "run"
    args = ["train", "--lake", cora_lake, "--partitions", cora_parts, "--out", run, "-T", "1", "--hidden", "32"]
    code, _, err = cli(*args, "--max-rounds", "1")
    assert code == 0, err
    summary_a = (run / "summary.json").read_text()

    b = args + ["--max-rounds", "6"]
    proc = subprocess.Popen([BIN / "tma-spark", *map(str, b), "--overwrite"], env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        recorded = _wait_for_rounds(tmp_path / ".run.next" / "metrics.jsonl", 2, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, mid-run
        proc.wait()
    assert (run / "summary.json").read_text() == summary_a  # the finished run is untouched and loadable
    torch.load(run / "best.pt", weights_only=True)
    assert not (tmp_path / ".run.next" / "summary.json").exists()

    code, out, err = cli(*b, "--resume")
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["resumed_from_round"] >= recorded  # every round recorded before the kill was kept
    assert s["rounds"] == 6
    rows = _rows(run)
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5, 6]
    walls = [r["wall_seconds"] for r in rows]
    assert walls == sorted(walls)  # the elapsed budget continued, it did not restart
    assert json.loads((run / "summary.json").read_text()) == s
    assert not (tmp_path / ".run.next").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".run.previous")]


# ---------------------------------------------------------------- jobs killed while committing


@pytest.mark.spark
@pytest.mark.parametrize("command", ["ingest", "partition", "infer"])
def test_job_killed_while_committing_leaves_the_previous_output(spark, cli, cora_lake, cora_parts, tmp_path,
                                                                command):
    """The job process is SIGKILLed just before its finished output is renamed into place (overwriting an
    existing one): the previous output is still readable and no half-written one is visible. (Delta
    predictions, the default, are replaced in one Delta transaction; Parquet ones are renamed like this.)"""
    if command == "ingest":
        out = tmp_path / "lake"
        argv = ["ingest", "--dataset", "cora", "--lake", out]
    elif command == "partition":
        out = tmp_path / "parts"
        argv = ["partition", "--lake", cora_lake, "--out", out, "-k", "2"]
    else:
        run = tmp_path / "run"
        train(spark, TrainConfig(lake=cora_lake, partitions=cora_parts, out=str(run), max_rounds=1, **FAST))
        out = tmp_path / "pred"
        argv = ["infer", "--lake", cora_lake, "--run", run, "--out", out, "--format", "parquet"]
    code, _, err = cli(*argv)
    assert code == 0, err
    before = sorted(os.listdir(out))
    marker = {"ingest": "_tma_lake.json", "partition": "_tma_parts.json", "infer": "_SUCCESS"}[command]
    marker_text = (out / marker).read_text()
    r = subprocess.run([str(BIN / "tma-spark"), *map(str, argv), "--overwrite"], capture_output=True, text=True,
                       env=_env(TMA_SPARK_CRASH_AT="before-commit"), timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert sorted(os.listdir(out)) == before
    assert (out / marker).read_text() == marker_text
    visible = sorted(p for p in os.listdir(tmp_path) if not p.startswith("."))
    assert visible == sorted([out.name] + (["run"] if command == "infer" else []))
    if command == "ingest":
        assert open_lake(spark, str(out)).nodes().count() == 2708
    elif command == "partition":
        assert spark.read.format("delta").load(str(out / "nodes")).count() == 2708
    else:
        assert spark.read.parquet(str(out)).count() == 2708


@pytest.mark.spark
def test_resume_records_a_round_whose_evaluation_was_lost_and_drops_a_torn_line(spark, cora_lake, cora_parts,
                                                                                 tmp_path):
    """The driver died after checkpointing round 2 but before its (background) evaluation was written, in the
    middle of appending a line: resume evaluates round 2 from the checkpoint, then trains round 3."""
    run = tmp_path / "run"
    common = {"lake": cora_lake, "partitions": cora_parts, "out": str(run), **FAST}
    train(spark, TrainConfig(max_rounds=2, **common))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:40])
    s = train(spark, TrainConfig(max_rounds=3, resume=True, **common))
    rows = _rows(run)
    assert [r["round"] for r in rows] == [1, 2, 3] and s["resumed_from_round"] == 2
    assert rows[1] == json.loads(lines[1])  # the same row and scores as the lost line (same weights)


@pytest.mark.spark
def test_a_failed_evaluation_is_recorded_by_resume_without_a_gap(spark, cora_lake, cora_parts, tmp_path,
                                                                   monkeypatch):
    """Round 2's evaluation fails (the driver runs out of memory): the run stops after checkpointing round 3,
    with metrics.jsonl at round 1. Resume records rounds 2 and 3 before it trains, and the next resume works."""
    from tma_spark.train.evaluation import Evaluator

    run = tmp_path / "run"
    common = {"lake": cora_lake, "partitions": cora_parts, "out": str(run), "round_seconds": 1, "hidden": 16}
    evaluate, calls = Evaluator.evaluate, []

    def failing(self, model):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("driver out of memory")
        return evaluate(self, model)

    monkeypatch.setattr(Evaluator, "evaluate", failing)
    with pytest.raises(MemoryError):
        train(spark, TrainConfig(max_rounds=3, **common))
    assert [r["round"] for r in _rows(run)] == [1]
    monkeypatch.undo()
    s = train(spark, TrainConfig(max_rounds=3, resume=True, **common))
    assert [r["round"] for r in _rows(run)] == [1, 2, 3] and s["resumed_from_round"] == 3
    s = train(spark, TrainConfig(max_rounds=4, resume=True, **common))
    assert [r["round"] for r in _rows(run)] == [1, 2, 3, 4] and s["resumed_from_round"] == 3
