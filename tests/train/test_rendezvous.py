"""Trainers of one executor tell their Python workers apart through files (no Spark: threads stand in for the
round's tasks, which Spark starts together on one machine)."""

import threading

from tma_spark.train.placement import assign_parts
from tma_spark.train.rendezvous import worker_slots


def _meet(addresses, pids, folder, wait=5.0):
    out = [None] * len(addresses)

    def task(i):
        out[i] = worker_slots(addresses, i, str(folder), pid=pids[i], wait=wait)

    threads = [threading.Thread(target=task, args=(i,)) for i in range(len(addresses))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_tasks_sharing_an_executor_learn_every_task_worker_and_keep_their_parts(tmp_path):
    addresses = ["host:1"] * 4
    seen = _meet(addresses, [40, 41, 42, 43], tmp_path / "r1")
    assert all(s == ["host:1/40", "host:1/41", "host:1/42", "host:1/43"] for s in seen)
    # next round the executor hands the tasks to its workers in another order: each worker keeps its part
    held = {"host:1/40": 2, "host:1/41": 0, "host:1/42": 3, "host:1/43": 1}
    slots = _meet(addresses, [43, 42, 41, 40], tmp_path / "r2")[0]
    assert assign_parts(slots, held, 4) == [1, 3, 0, 2]


def test_tasks_on_their_own_executors_need_no_files(tmp_path):
    assert worker_slots(["a:1", "b:1"], 0, str(tmp_path / "x"), wait=0.01) == ["a:1", "b:1"]
    assert not (tmp_path / "x").exists()


def test_a_task_that_never_comes_leaves_the_plain_addresses(tmp_path):
    assert worker_slots(["h:1"] * 3, 0, str(tmp_path), pid=7, wait=0.05) == ["h:1"] * 3


def test_only_local_masters_without_task_retries_meet_through_files():
    from tma_spark.train.rendezvous import meets_locally

    assert meets_locally("local") and meets_locally("local[4]") and meets_locally("local[*]")
    assert not meets_locally("local[4,2]") and not meets_locally("local-cluster[4,1,1024]")
    assert not meets_locally("spark://h:7077") and not meets_locally("yarn")
