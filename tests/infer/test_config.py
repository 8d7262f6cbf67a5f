"""InferConfig's sizing settings: declared once, validated before any Spark job (no Spark)."""

import pytest

from tma_spark.errors import ConfigError
from tma_spark.graphops.sizing import ARROW_BATCH_MB, SHUFFLE_PARTITION_MB
from tma_spark.infer import InferConfig


def test_sizing_settings_default_to_the_shared_declarations():
    cfg = InferConfig(lake="L", run="R", out="P").validate()
    assert (cfg.shuffle_partition_mb, cfg.arrow_batch_mb) == (SHUFFLE_PARTITION_MB, ARROW_BATCH_MB)


@pytest.mark.parametrize("field, value, flag", [("shuffle_partition_mb", 0, "--shuffle-partition-mb"),
                                                ("arrow_batch_mb", 0, "--arrow-batch-mb"),
                                                ("arrow_batch_mb", 4096, "--arrow-batch-mb"),
                                                ("message_batch_gb", 0, "--message-batch-gb")])
def test_bad_sizes_are_refused_with_the_flag(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        InferConfig(lake="L", run="R", out="P", **{field: value}).validate()
