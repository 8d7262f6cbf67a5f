"""Every bad-input case of ingest: a clear error naming table, column and problem, and nothing written."""

import os

import pytest

from helpers import EDGE_SCHEMA, NODE_SCHEMA, good_edges, good_nodes, leftovers, write_graph
from tma_spark.ingest import IngestConfig
from tma_spark.errors import InputValidationError, TmaSparkError
from tma_spark.ingest import ingest

pytestmark = pytest.mark.spark


def _ingest_expect_error(spark, tmp_path, nodes, edges, nschema=NODE_SCHEMA, eschema=EDGE_SCHEMA, fmt="parquet",
                         err=InputValidationError, **cfg):
    npath, epath = write_graph(spark, tmp_path, nodes, edges, nschema, eschema, fmt=fmt)
    lake = tmp_path / "lake"
    with pytest.raises(err) as info:
        ingest(spark, IngestConfig(lake=str(lake), nodes=npath, edges=epath, input_format=fmt, **cfg))
    assert leftovers(lake) == [], "a failed ingest must leave no lake and no staging folder"
    return str(info.value)


CASES = [
    # (id, nodes, edges, node schema, edge schema, expected fragments, extra config)
    ("missing_column", [(0, 0)], good_edges(1), "id long, label int", EDGE_SCHEMA,
     ["'nodes'", "column 'features' is missing"], {}),
    ("missing_edge_column", good_nodes(), [(0,)], NODE_SCHEMA, "src long",
     ["'edges'", "column 'dst' is missing"], {}),
    ("wrong_id_type", [(0.5, [1.0], 0, None)], [(0.5, 0.5)], "id double, features array<float>, label int, split string",
     "src double, dst double", ["column 'id' has type double"], {}),
    ("wrong_label_type", [(0, [1.0], "cat", None)], [(0, 0)], "id long, features array<float>, label string, split string",
     EDGE_SCHEMA, ["column 'label' has type string"], {}),
    ("wrong_features_type", [(0, 3, 0, None)], [(0, 0)], "id long, features int, label int, split string",
     EDGE_SCHEMA, ["column 'features' has type int"], {}),
    ("edge_id_type_mismatch", good_nodes(), [("a", "b")], NODE_SCHEMA, "src string, dst string",
     ["column 'src' has type string but node ids are bigint"], {}),
    ("null_ids", good_nodes() + [(None, [0.0, 0.0], 0, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["column 'id' has 1 null values"], {}),
    ("duplicate_ids", good_nodes() + [(2, [0.0, 0.0], 0, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["column 'id' has 1 duplicate values", "e.g. 2"], {}),
    ("dangling_edges", good_nodes(), good_edges() + [(0, 99), (98, 1)], NODE_SCHEMA, EDGE_SCHEMA,
     ["'edges'", "refer to 2 node ids that are not in the nodes table"], {}),
    ("null_edge_endpoint", good_nodes(), good_edges() + [(0, None)], NODE_SCHEMA, EDGE_SCHEMA,
     ["null endpoint"], {}),
    ("unequal_features", good_nodes() + [(9, [1.0, 2.0, 3.0], 0, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["unequal length (from 2 to 3)"], {}),
    ("nan_features", good_nodes() + [(9, [float("nan"), 1.0], 0, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["NaN, infinite", "node 9"], {}),
    ("inf_features", good_nodes() + [(9, [float("inf"), 1.0], 0, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["NaN, infinite", "in 1 rows"], {}),
    ("negative_label", good_nodes() + [(9, [1.0, 1.0], -1, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["column 'label' has negative values"], {}),
    ("label_over_num_classes", good_nodes() + [(9, [1.0, 1.0], 5, None)], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["outside 0..1 (max 5)", "--num-classes 2"], {"num_classes": 2}),
    ("empty_nodes", [], good_edges(1), NODE_SCHEMA, EDGE_SCHEMA, ["'nodes'", "the table is empty"], {}),
    ("empty_edges", good_nodes(), [], NODE_SCHEMA, EDGE_SCHEMA, ["'edges'", "the table is empty"], {}),
    ("unknown_node_split", good_nodes() + [(9, [1.0, 1.0], 0, "training")], good_edges(), NODE_SCHEMA, EDGE_SCHEMA,
     ["column 'split' has 1 rows with unknown values ['training']", "train, val, test"], {}),
    ("unknown_edge_split", good_nodes(), [(0, 1, "valid")], NODE_SCHEMA, "src long, dst long, split string",
     ["'edges'", "unknown values ['valid']"], {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_written(spark, tmp_path, case):
    _, nodes, edges, nschema, eschema, fragments, extra = case
    message = _ingest_expect_error(spark, tmp_path, nodes, edges, nschema, eschema, **extra)
    assert "nothing was written" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Fix" in message or "allowed" in message or "must" in message


def test_all_problems_of_a_table_are_reported_together(spark, tmp_path):
    nodes = good_nodes() + [(1, [float("nan"), 1.0], -3, "x")]
    message = _ingest_expect_error(spark, tmp_path, nodes, good_edges())
    for fragment in ("duplicate", "NaN", "negative", "unknown values"):
        assert fragment in message


def test_csv_non_numeric_feature_is_reported(spark, tmp_path):
    (tmp_path / "n").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "n" / "nodes.csv").write_text("id,features,label\n0,1;2,0\n1,3;abc,1\n")
    (tmp_path / "e" / "edges.csv").write_text("src,dst\n0,1\n")
    lake = tmp_path / "lake"
    with pytest.raises(InputValidationError, match="non-numeric"):
        ingest(spark, IngestConfig(lake=str(lake), nodes=str(tmp_path / "n"), edges=str(tmp_path / "e"),
                                   input_format="csv"))
    assert leftovers(lake) == []


def test_non_finite_check_flags_nan_infinities_and_null_elements(spark):
    """The check is built from code-generated array functions; it says what the per-element lambda said."""
    from pyspark.sql import functions as F
    from tma_spark.ingest.validate import _non_finite

    nan, inf = float("nan"), float("inf")
    rows = [(0, [1.0, 2.0]), (1, [1.0, None]), (2, [nan, 1.0]), (3, [inf]), (4, [-inf, 0.0]), (5, []), (6, None),
            (7, [None, nan]), (8, [0.0, -0.0, 3.4e38])]
    df = spark.createDataFrame(rows, "id long, features array<float>")
    lam = F.exists("features", lambda x: F.isnan(x) | (F.abs(x) == inf) | x.isNull())
    got = {r["id"]: (r["new"], r["lam"]) for r in df.select("id", _non_finite(F.col("features")).alias("new"),
                                                            lam.alias("lam")).collect()}
    assert all(new == old for new, old in got.values()), got
    assert [i for i, (new, _) in sorted(got.items()) if new] == [1, 2, 3, 4, 7] and got[6][0] is None


def test_missing_input_path_names_the_table(spark, tmp_path):
    lake = tmp_path / "lake"
    with pytest.raises(TmaSparkError, match="Input table 'nodes' at .* does not exist"):
        ingest(spark, IngestConfig(lake=str(lake), nodes=str(tmp_path / "nope"), edges=str(tmp_path / "nope2"),
                                   input_format="parquet"))
    assert leftovers(lake) == []


def test_existing_lake_is_refused_without_overwrite(spark, tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "keep.txt").write_text("mine")
    npath, epath = write_graph(spark, tmp_path, good_nodes(), good_edges(), NODE_SCHEMA, EDGE_SCHEMA)
    with pytest.raises(TmaSparkError, match="already exists. Fix: .*--overwrite"):
        ingest(spark, IngestConfig(lake=str(lake), nodes=npath, edges=epath, input_format="parquet"))
    assert os.listdir(lake) == ["keep.txt"]


def test_failed_overwrite_keeps_previous_lake(spark, tmp_path):
    lake = tmp_path / "lake"
    npath, epath = write_graph(spark, tmp_path, good_nodes(), good_edges(), NODE_SCHEMA, EDGE_SCHEMA)
    ingest(spark, IngestConfig(lake=str(lake), nodes=npath, edges=epath, input_format="parquet"))
    before = sorted(os.listdir(lake))
    bad_n, bad_e = write_graph(spark, tmp_path / "bad", good_nodes(), good_edges() + [(0, 42)], NODE_SCHEMA, EDGE_SCHEMA)
    with pytest.raises(InputValidationError):
        ingest(spark, IngestConfig(lake=str(lake), nodes=bad_n, edges=bad_e, input_format="parquet", overwrite=True))
    assert sorted(os.listdir(lake)) == before
    assert leftovers(lake) == ["lake"]
    assert spark.read.format("delta").load(f"{lake}/edges").count() == 4


@pytest.mark.parametrize("field,flag", [("split_fractions", "--split"), ("edge_split_fractions", "--edge-split")])
def test_split_fractions_must_sum_to_one(field, flag, tmp_path):
    from tma_spark.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{flag} 0.5,0.5,0.5 must be three non-negative fractions summing to 1"):
        IngestConfig(lake=str(tmp_path / "l"), dataset="cora", **{field: (0.5, 0.5, 0.5)}).validate()
