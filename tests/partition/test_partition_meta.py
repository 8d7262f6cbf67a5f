"""open_parts: the one reader of a partitions folder's metadata (no Spark: the session-free path)."""

import json
import os

import pytest

from tma_spark.errors import TmaSparkError
from tma_spark.partition.meta import PARTS_META, PartsMeta, open_parts, parts_meta_json


def _write(folder, text):
    folder.mkdir(exist_ok=True)
    (folder / PARTS_META).write_text(text)
    return str(folder)


def test_reads_what_the_partition_job_writes(tmp_path):
    config = {"strategy": "random", "parts": 3, "format": "delta", "seed": 7}
    path = _write(tmp_path / "P", parts_meta_json(config, "/lake", "2026-01-01T00:00:00+00:00", 10, 20))
    meta = open_parts(None, path)
    assert isinstance(meta, PartsMeta)
    assert (meta.parts, meta.strategy, meta.format, meta.lake) == (3, "random", "delta", "/lake")
    assert (meta.num_nodes, meta.num_edges, meta.config["seed"]) == (10, 20, 7)
    assert meta.path == path and meta.version > 0


def test_a_rewritten_folder_has_a_new_version(tmp_path):
    text = parts_meta_json({"strategy": "random", "parts": 2, "format": "delta"}, "/lake", "t", 1, 1)
    path = _write(tmp_path / "P", text)
    first = open_parts(None, path).version
    os.utime(tmp_path / "P" / PARTS_META, (first + 5, first + 5))
    assert open_parts(None, path).version == pytest.approx(first + 5)


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not tma_spark partitions metadata"),
    (json.dumps({"lake": "/l"}), "is not tma_spark partitions metadata"),
    (json.dumps({"config": {"parts": 2}, "lake": "/l"}), "lacks strategy, format"),
    (json.dumps({"config": {"parts": "two", "strategy": "random", "format": "delta"}, "lake": "/l"}),
     "not a whole number"),
    (json.dumps({"config": {"parts": 0, "strategy": "random", "format": "delta"}, "lake": "/l"}),
     "K must be at least 1"),
])
def test_corrupted_or_foreign_metadata_is_a_clear_error(tmp_path, text, fragment):
    path = _write(tmp_path / "P", text)
    with pytest.raises(TmaSparkError, match=fragment) as err:
        open_parts(None, path)
    message = str(err.value)
    assert PARTS_META in message and "Fix:" in message


def test_missing_metadata_says_it_is_not_a_partitions_folder(tmp_path):
    with pytest.raises(TmaSparkError, match="is not a partitions folder"):
        open_parts(None, str(tmp_path))
