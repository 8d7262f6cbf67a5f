"""Parts follow the executors that hold them (pure assignment logic; the cluster test is in test_train.py)."""

import itertools

import pytest

from tma_spark.train.placement import assign_parts, holders

A, B, C, D = "10.0.0.1:40001", "10.0.0.1:40002", "10.0.0.2:40001", "10.0.0.3:40001"


def test_without_a_record_task_i_trains_part_i():
    assert assign_parts([A, B, C], {}, 3) == [0, 1, 2]


def test_a_part_follows_its_executor_whatever_the_task_order():
    held = {A: 0, B: 1, C: 2, D: 3}
    for order in itertools.permutations([A, B, C, D]):
        parts = assign_parts(list(order), held, 4)
        assert [held[a] for a in order] == parts


def test_a_lost_executor_gives_its_part_to_the_new_one_and_the_others_stay():
    new = "10.0.0.9:40001"
    assert assign_parts([C, new, A], {A: 0, B: 1, C: 2}, 3) == [2, 1, 0]


def test_tasks_sharing_an_executor_keep_their_index():
    # local mode: one executor runs every task, so its address tells no worker apart
    assert assign_parts([A, A, A], {A: 2}, 3) == [0, 1, 2]
    assert assign_parts([A, A, C], {A: 0, C: 0}, 3) == [2, 1, 0]  # C keeps part 0; task 1 its own; task 0 the rest


def test_conflicting_or_stale_claims_still_give_a_permutation():
    for held in ({A: 1, B: 1}, {A: 7, B: -1}, {A: 2, B: 2, C: 2}):
        parts = assign_parts([A, B, C], held, 3)
        assert sorted(parts) == [0, 1, 2]
    assert assign_parts([A, B, C], {A: 1, B: 1}, 3) == [1, 0, 2]  # the first claim wins
    with pytest.raises(ValueError, match="2 task addresses for 3 parts"):
        assign_parts([A, B], {}, 3)


def test_holders_leave_out_unknown_and_shared_executors():
    assert holders([(A, 0), (B, 1), (None, 2)]) == {A: 0, B: 1}
    assert holders([(A, 0), (A, 1), (C, 2)]) == {C: 2}
