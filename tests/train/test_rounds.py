"""The round's failure policy and the cluster checks before training (pure; the Spark settings come as a dict),
plus the check_slots path on the shared session."""

import logging

import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.train.cluster import check_cluster, check_slots, spark_conf
from tma_spark.train.contract import LostTrainer, ModelSpec, TrainerResult, to_bytes
from tma_spark.train.rounds import round_failure, screen_diverged

YARN = {"spark.master": "yarn"}
DYNAMIC = {**YARN, "spark.dynamicAllocation.enabled": "true"}
SPECULATION = {**YARN, "spark.speculation": "true", "spark.speculation.task.duration.threshold": "30s"}


# ---------------------------------------------------------------- diverged trainers


def _result(part, nan=False, loss=0.5):
    state = ModelSpec("mlp", 4, 8, 2).build().state_dict()
    if nan:
        state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    return TrainerResult(part=part, state=to_bytes(state), opt=None, steps=3, loss=loss, train_nodes=10, edges=20,
                         sampler="full", load_seconds=0.1, task_seconds=1.0, device="cpu", gpus=(), pid=1, code="/x")


def test_diverged_trainers_become_lost_trainers_logged_with_part_and_round(caplog):
    results = [_result(0), _result(1, nan=True), LostTrainer(2, "killed"), _result(3, loss=float("nan"))]
    with caplog.at_level(logging.WARNING, logger="tma_spark.train.rounds"):
        screened = screen_diverged(results, 7)
    assert screened[0] is results[0] and screened[2] is results[2]
    assert [r.lost for r in screened] == [False, True, True, True]
    assert [getattr(r, "diverged", None) for r in screened] == [None, True, False, True]
    assert screened[1].reason.startswith("diverged: non-finite weights")
    assert screened[3].reason == "diverged: non-finite loss nan"
    assert "round 7 part 1 diverged: non-finite" in caplog.text and "round 7 part 3 diverged" in caplog.text


def test_a_round_whose_every_trainer_diverges_names_the_learning_rate():
    err = round_failure(3, 2, "part 0: diverged; part 1: diverged", 0.05, all_diverged=True, diverged=True)
    assert isinstance(err, TmaSparkError)
    text = str(err)
    assert "every trainer diverged" in text and "all 2 attempt(s)" in text
    assert "--lr 0.05 is too large" in text and "--lr 0.005" in text and "checkpoint of round 2" in text
    some = str(round_failure(3, 3, "part 1: diverged: non-finite loss nan", 0.05, all_diverged=False, diverged=True))
    assert some.startswith("Round 3 failed 3 times") and "try --lr 0.005" in some
    crash = str(round_failure(3, 3, "Python worker exited", 0.05, all_diverged=False, diverged=False))
    assert "--lr" not in crash and "--resume" in crash


# ---------------------------------------------------------------- platform settings


def test_dynamic_allocation_is_refused_for_barrier_rounds_and_allowed_for_tolerant_ones(caplog):
    with pytest.raises(TmaSparkError, match=r"spark\.dynamicAllocation\.enabled=true .* barrier stage.* Fix: set "
                       r"spark\.dynamicAllocation\.enabled=false .*--tolerate-failures"):
        check_cluster(DYNAMIC, 64, needed=4)
    with pytest.raises(TmaSparkError, match="dynamicAllocation.enabled=false") as ddp:
        check_cluster(DYNAMIC, 64, needed=4, tolerant=True, lockstep=True)  # ddp: always a barrier stage
    assert "--tolerate-failures" not in str(ddp.value)
    with caplog.at_level(logging.INFO, logger="tma_spark.train.cluster"):
        check_cluster(DYNAMIC, 2, needed=4, tolerant=True)  # executors are added on demand: 2 slots now is fine
    assert "on demand" in caplog.text
    capped = {**DYNAMIC, "spark.dynamicAllocation.maxExecutors": "1", "spark.executor.cores": "2"}
    with pytest.raises(TmaSparkError, match=r"can grow to 2 .*maxExecutors 1"):
        check_cluster(capped, 64, needed=4, tolerant=True)
    check_cluster({**DYNAMIC, "spark.dynamicAllocation.enabled": "False"}, 4, needed=4)
    # Spark ignores dynamic allocation in local mode (unless testing it), as it does here.
    check_cluster({**DYNAMIC, "spark.master": "local[4]"}, 4, needed=4)
    with pytest.raises(TmaSparkError, match="dynamicAllocation"):
        check_cluster({**DYNAMIC, "spark.master": "local[4]", "spark.dynamicAllocation.testing": "TRUE"}, 4, needed=4)
    with pytest.raises(TmaSparkError, match="dynamicAllocation"):
        check_cluster({**DYNAMIC, "spark.master": "local-cluster[2,1,1024]"}, 4, needed=2)


def test_speculation_is_refused_only_where_spark_would_copy_a_trainer():
    with pytest.raises(TmaSparkError, match=r"spark\.speculation=true with spark\.speculation\.task\.duration\."
                       r"threshold=30s: .*speculative copy.* lost\. Fix: set spark\.speculation=false"):
        check_cluster(SPECULATION, 4, needed=4, tolerant=True)
    check_cluster(SPECULATION, 4, needed=4)  # barrier stages are never speculated
    check_cluster({**SPECULATION, "spark.speculation.task.duration.threshold": "0"}, 4, needed=4, tolerant=True)
    without_threshold = {k: v for k, v in SPECULATION.items() if "threshold" not in k}
    check_cluster(without_threshold, 4, needed=4, tolerant=True)  # one-task jobs: no median to compare with
    check_cluster({**SPECULATION, "spark.master": "local[4]"}, 4, needed=4, tolerant=True)  # no speculation locally


def test_slots_are_counted_per_task_cpus():
    check_cluster({**YARN, "spark.task.cpus": "2"}, 8, needed=4)
    with pytest.raises(TmaSparkError, match=r"needs 5 task slots .* has 4 \(defaultParallelism 8 / spark.task.cpus 2"):
        check_cluster({**YARN, "spark.task.cpus": "2"}, 8, needed=5)


@pytest.mark.spark
def test_check_slots_reads_the_session_settings(spark):
    conf = spark_conf(spark)
    assert conf["spark.master"] == "local[2]" and "spark.app.name" in conf
    check_slots(spark, 2)
    check_slots(spark, 2, tolerant=True)
    with pytest.raises(TmaSparkError, match=r"needs 3 task slots .* has 2 .*local\[3\]"):
        check_slots(spark, 3)
