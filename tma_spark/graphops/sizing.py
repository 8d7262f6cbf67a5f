"""How many partitions a shuffle of vectors gets, and how big an Arrow batch may be: sized from the data.

Spark's default (``spark.sql.shuffle.partitions``, 200 on a cluster) does not depend on the data: at 10^9
edges a message shuffle of 2e9 rows x 0.5 KB would put about 5 GB in each of 200 reducers. Here the count
is ``ceil(bytes shuffled / target)`` with a target of :data:`SHUFFLE_PARTITION_MB` per partition (one setting,
``--shuffle-partition-mb``), and the bytes are estimated before any job runs from what the caller knows: the
row count (the lake's edge or node count) and the row's width (the vector dimension).

Pure functions; no Spark.
"""

from __future__ import annotations

import math

__all__ = ["SHUFFLE_PARTITION_MB", "ARROW_BATCH_MB", "MESSAGE_BATCH_GB", "MB", "row_bytes", "shuffle_partitions",
           "shuffle_batches", "arrow_batch_conf"]

MB = 1 << 20

#: Default target size of one shuffle partition, in MB (``--shuffle-partition-mb``).
SHUFFLE_PARTITION_MB = 128

#: Default most shuffle GB one batch of a layer's messages writes (``--message-batch-gb``).
MESSAGE_BATCH_GB = 16.0

#: Default size of one Arrow batch handed to a Python worker, in MB (``--arrow-batch-mb``). A worker holds a few
#: copies of its batch at once (float64 views, the layer's inputs and outputs), so this bounds its data memory.
ARROW_BATCH_MB = 16

#: Bytes a shuffled row costs besides its fields (Spark's ``UnsafeRow``: 4-byte length prefix, null bitmap).
_ROW_BYTES = 12
#: Bytes per field slot (every field has an 8-byte slot) and per array header (element count + null bitmap).
_FIELD_BYTES = 8
_ARRAY_BYTES = 16


def row_bytes(floats: int, fields: int, arrays: int = 1) -> int:
    """Estimated bytes of one shuffled row with ``fields`` columns, ``arrays`` of which are ``array<float>``
    columns holding ``floats`` float32 values in all (ids, counts and scales are the other, 8-byte, fields)."""
    if floats < 0 or fields < 1 or not 0 <= arrays <= fields:
        raise ValueError(f"row_bytes: floats={floats}, fields={fields}, arrays={arrays} do not describe a row")
    return _ROW_BYTES + _FIELD_BYTES * fields + _ARRAY_BYTES * arrays + 4 * floats


def shuffle_batches(rows: int, bytes_per_row: int, batch_gb: float) -> int:
    """Batches to split a shuffle of ``rows`` rows of ``bytes_per_row`` bytes into so that each writes at most
    ``batch_gb`` GB of shuffle files: ``ceil(total / batch_gb)``, at least 1.

    >>> shuffle_batches(2 * 10**8, 300, 16)   # layer 1's messages at 10^8 edges and 64 features: 60 GB
    4
    """
    if batch_gb <= 0:
        raise ValueError(f"shuffle_batches: batch_gb={batch_gb} must be positive")
    return max(1, math.ceil(max(int(rows), 0) * max(int(bytes_per_row), 0) / (batch_gb * 1e9)))


def shuffle_partitions(rows: int, bytes_per_row: int, target_mb: float = SHUFFLE_PARTITION_MB,
                       min_partitions: int = 1) -> int:
    """Partitions for a shuffle of ``rows`` rows of ``bytes_per_row`` bytes: ``ceil(total / target_mb)``, and at
    least ``min_partitions`` (e.g. the cores, so that a small shuffle still uses every core) and 1.

    >>> shuffle_partitions(2 * 10**9, 560, 128)   # the message shuffle of a 10^9-edge graph at d = 128
    8345
    """
    if target_mb <= 0:
        raise ValueError(f"shuffle_partitions: target_mb={target_mb} must be positive")
    total = max(int(rows), 0) * max(int(bytes_per_row), 0)
    return max(1, int(min_partitions), math.ceil(total / (target_mb * MB)))


def arrow_batch_conf(batch_mb: float) -> dict:
    """Spark settings that cap every Arrow batch sent to a Python worker at ``batch_mb`` MB, whatever the width of
    its rows (``spark.sql.execution.arrow.maxBytesPerBatch``). ``maxRecordsPerBatch`` (10,000 rows by default)
    stays as the session has it and still caps batches of narrow rows: a batch ends at whichever limit comes
    first. At the default 10,000 rows a batch of 1,433 features is 57 MB, of 8,415 features 337 MB, before
    the float64 copies a worker makes; with this cap it is ``batch_mb`` MB at any width."""
    if not 0 < batch_mb < 2048:
        raise ValueError(f"arrow_batch_conf: batch_mb={batch_mb} must be in (0, 2048)")
    return {"spark.sql.execution.arrow.maxBytesPerBatch": str(int(batch_mb * MB))}
