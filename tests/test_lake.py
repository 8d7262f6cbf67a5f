"""The lake's metadata: its format version is written on ingest and checked on open."""

import json

import pytest

from tma_spark.errors import TmaSparkError
from tma_spark.lake import LAKE_FORMAT_VERSION, META_FILE, open_lake

pytestmark = pytest.mark.spark


def _lake_with_meta(tmp_path, meta: dict) -> str:
    """A folder that passes open_lake's checks (tables are only checked to exist) with metadata ``meta``."""
    lake = tmp_path / "lake"
    for table in ("nodes", "edges", "id_map"):
        (lake / table).mkdir(parents=True, exist_ok=True)
    (lake / META_FILE).write_text(json.dumps(meta))
    return str(lake)


def test_lake_format_version_is_written_and_checked_on_open(spark, cora_lake, tmp_path):
    written = json.loads(open(f"{cora_lake}/{META_FILE}").read())
    assert written["format_version"] == LAKE_FORMAT_VERSION == 1
    assert open_lake(spark, cora_lake).meta.format_version == 1

    older = {k: v for k, v in written.items() if k != "format_version"}  # written before the field existed
    assert open_lake(spark, _lake_with_meta(tmp_path, older)).meta.num_nodes == written["num_nodes"]

    path = _lake_with_meta(tmp_path, {**written, "format_version": 2, "tma_spark_version": "9.0.0"})
    with pytest.raises(TmaSparkError) as info:
        open_lake(spark, path)
    message = str(info.value)
    assert META_FILE in message and "format version 2" in message and "9.0.0" in message
    assert "Fix: upgrade tma_spark" in message
    path = _lake_with_meta(tmp_path, {**written, "format_version": "one"})
    with pytest.raises(TmaSparkError, match="format_version 'one' is not a lake format version"):
        open_lake(spark, path)
