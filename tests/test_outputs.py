"""What --overwrite may replace (pure: judged from a folder listing; the CLI cases are in test_bad_input.py)."""

import pytest

from tma_spark.outputs import KINDS, refusal


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_folder_with_its_marker_or_an_empty_one_may_be_replaced(kind):
    for marker in KINDS[kind].markers:
        assert refusal("/out", kind, [marker, "anything-else"]) is None
    assert refusal("/out", kind, []) is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_anything_else_is_refused_with_the_path_and_what_was_expected(kind):
    message = refusal("/data", kind, ["precious.csv", "photos"])
    assert message.startswith("--overwrite refused: /data is not a ")
    assert all(marker in message for marker in KINDS[kind].markers)
    assert KINDS[kind].command in message and "Fix:" in message


def test_a_lake_is_not_a_partitions_folder_and_a_file_is_not_a_folder():
    assert "is not a partitions folder" in refusal("/lake", "partitions", ["_tma_lake.json", "nodes", "edges"])
    assert "is a file, not a run folder" in refusal("/notes.txt", "run", None)
