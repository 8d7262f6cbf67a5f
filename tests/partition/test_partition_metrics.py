"""Pure partition maths (no Spark)."""

import pytest

from tma_spark.partition.metrics import (balanced_assignment, idle_parts, label_tv, node_balance, part_targets,
                                         total_variation)


def test_total_variation():
    assert total_variation([1, 1], [2, 2]) == 0.0
    assert total_variation([1, 0], [0, 1]) == 1.0
    assert total_variation([3, 1], [1, 1]) == pytest.approx(0.25)
    assert total_variation([0, 0], [1, 1]) == 0.0


def test_label_tv_uniform_and_skewed_parts():
    assert label_tv([{0: 5, 1: 5}, {0: 5, 1: 5}], 2) == 0.0
    # each part holds one class: each part's TV to the 50/50 global distribution is 0.5
    assert label_tv([{0: 10}, {1: 10}], 2) == pytest.approx(0.5)
    # parts without training labels are ignored
    assert label_tv([{0: 10}, {1: 10}, {}], 2) == pytest.approx(0.5)


def test_node_balance():
    assert node_balance([10, 10, 10]) == 1.0
    assert node_balance([5, 15]) == 1.5


def test_balanced_assignment_is_balanced_seeded_and_random():
    sizes = {i: 1 + (i * 37) % 200 for i in range(2000)}
    a = balanced_assignment(sizes, 4, seed=1)
    assert a == balanced_assignment(sizes, 4, seed=1)
    b = balanced_assignment(sizes, 4, seed=2)
    assert sum(a[i] != b[i] for i in sizes) > 1000  # another seed groups super-nodes differently
    loads = [sum(s for i, s in sizes.items() if a[i] == p) for p in range(4)]
    assert node_balance(loads) < 1.01
    with pytest.raises(ValueError):
        balanced_assignment(sizes, 0, seed=0)


def _part(p, nodes, hist, train_edges=None):
    d = {"part": p, "nodes": nodes, "edges": 0, "train": sum(hist.values()), "val": 0, "test": 0,
         "label_hist": hist}
    return d if train_edges is None else {**d, "train_edges": train_edges}


def test_idle_parts_name_empty_parts_and_parts_without_training_targets():
    parts = [_part(0, 5, {"0": 2, "1": 1}, 4), _part(1, 0, {}, 0), _part(2, 3, {}, 2), _part(3, 2, {"1": 1}, 0)]
    assert idle_parts(parts) == {"empty_parts": [1], "parts_without_train_nodes": [2],
                                 "parts_without_train_edges": [3]}
    assert [part_targets(d, "node") for d in parts] == [3, 0, 0, 1]
    assert [part_targets(d, "link") for d in parts] == [4, 0, 2, 0]
    # statistics written before train_edges was counted cannot tell (None), and report no such parts
    old = [_part(0, 5, {"0": 2})]
    assert part_targets(old[0], "link") is None and idle_parts(old)["parts_without_train_edges"] == []
