"""Shuffle partitions and Arrow batch caps sized from the data (pure functions, no Spark)."""

import pytest

from tma_spark.graphops.sizing import MB, SHUFFLE_PARTITION_MB, arrow_batch_conf, row_bytes, shuffle_partitions


def test_row_bytes_counts_the_floats_the_fields_and_the_array_headers():
    assert row_bytes(0, 1, 0) == 12 + 8
    msg = row_bytes(128, 3)  # (src, dst, vec[128])
    assert msg == 12 + 3 * 8 + 16 + 4 * 128
    assert row_bytes(256, 3) - msg == 4 * 128  # 4 bytes per float32, nothing per float otherwise
    with pytest.raises(ValueError):
        row_bytes(8, 1, 2)  # more array columns than columns


def test_partitions_are_the_shuffled_bytes_over_the_target_rounded_up():
    assert shuffle_partitions(1000, MB, 128) == 8  # 1000 MB / 128 MB = 7.8
    assert shuffle_partitions(1024, MB, 128) == 8
    assert shuffle_partitions(1025, MB, 128) == 9
    assert shuffle_partitions(1000, MB, 256) == 4  # a larger target, fewer partitions
    # The message shuffle of a 10^9-edge graph at d = 128: about 8,300 partitions of 128 MB, not 200 of 5 GB.
    assert shuffle_partitions(2 * 10**9, row_bytes(128, 3), SHUFFLE_PARTITION_MB) == 8405


def test_small_shuffles_still_use_every_core_and_never_get_zero_partitions():
    assert shuffle_partitions(10, 100, 128) == 1
    assert shuffle_partitions(0, 100, 128) == 1
    assert shuffle_partitions(10, 100, 128, min_partitions=16) == 16
    assert shuffle_partitions(10**9, 1000, 128, min_partitions=16) == 7451  # the data decides when it is larger
    with pytest.raises(ValueError, match="target_mb"):
        shuffle_partitions(10, 100, 0)


def test_arrow_batches_are_capped_in_bytes():
    assert arrow_batch_conf(16) == {"spark.sql.execution.arrow.maxBytesPerBatch": str(16 * MB)}
    for bad in (0, -1, 4096):
        with pytest.raises(ValueError, match="batch_mb"):
            arrow_batch_conf(bad)
