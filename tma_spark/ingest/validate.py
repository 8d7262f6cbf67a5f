"""Validation and normalization of user graph tables before anything is written.

Input tables arrive in many shapes (Delta, Parquet, CSV; integer or string
ids; features as arrays, Spark ML vectors or delimited strings). This module
brings them to the lake schema and checks them with a few Spark aggregations
(no collection of data to the driver beyond counts and a handful of examples).
Every problem found in a table is reported together, each naming the table,
the column, the problem and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..errors import InputValidationError
from ..lake import SPLITS

__all__ = ["NodeCheck", "normalize_nodes", "normalize_edges", "check_nodes", "check_edges", "id_kind"]

log = logging.getLogger(__name__)

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType)
_EXAMPLES = 3


def _fail(table: str, problems: List[str]) -> None:
    if problems:
        raise InputValidationError(
            f"Input table '{table}' is invalid; nothing was written:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _require_columns(df: DataFrame, table: str, required: List[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        _fail(table, [
            f"column '{c}' is missing (columns present: {', '.join(df.columns) or 'none'}). "
            f"Fix: rename or add the column '{c}'." for c in missing
        ])


def id_kind(dtype: T.DataType) -> Optional[str]:
    """'int' for integral id columns, 'str' for string ids, None for anything else."""
    if isinstance(dtype, _INTEGRAL):
        return "int"
    if isinstance(dtype, T.StringType):
        return "str"
    return None


def _features_to_array(df: DataFrame, table: str) -> Column:
    """Return an ``array<float>`` expression for the features column of any accepted type."""
    dtype = df.schema["features"].dataType
    col = F.col("features")
    if isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, _NUMERIC):
        return col.cast(T.ArrayType(T.FloatType()))
    if dtype.typeName() == "vector" or type(dtype).__name__ == "VectorUDT":
        from pyspark.ml.functions import vector_to_array

        return vector_to_array(col, "float32")
    if isinstance(dtype, T.StringType):
        # CSV cannot hold arrays: numbers separated by ';', ',' or whitespace; try_cast keeps bad tokens as null.
        tokens = F.split(F.trim(col), r"[;,\s]+")
        return F.when(F.trim(col) == "", F.array().cast("array<float>")).otherwise(
            F.transform(tokens, lambda t: t.try_cast(T.FloatType()))
        )
    _fail(table, [
        f"column 'features' has type {dtype.simpleString()}; expected array<float>, array<double>, "
        "a Spark ML vector, or (CSV) a string of numbers separated by ';'. Fix: convert the column."
    ])
    raise AssertionError("unreachable")


def normalize_nodes(df: DataFrame, table: str = "nodes") -> DataFrame:
    """Select and cast the node columns to (id, features array<float>, label int, split string).

    The id keeps its input type (integral or string) until dense ids are assigned.
    """
    _require_columns(df, table, ["id", "features"])
    problems = []
    if id_kind(df.schema["id"].dataType) is None:
        problems.append(
            f"column 'id' has type {df.schema['id'].dataType.simpleString()}; expected an integer or string type. "
            "Fix: cast the ids to long or string."
        )
    if "label" in df.columns and not isinstance(df.schema["label"].dataType, _INTEGRAL):
        problems.append(
            f"column 'label' has type {df.schema['label'].dataType.simpleString()}; expected an integer class index "
            "0..C-1. Fix: map class names to integers before ingest."
        )
    if "split" in df.columns and not isinstance(df.schema["split"].dataType, T.StringType):
        problems.append(
            f"column 'split' has type {df.schema['split'].dataType.simpleString()}; expected string "
            f"({'|'.join(SPLITS)}). Fix: cast or recode the column."
        )
    _fail(table, problems)
    idc = F.col("id") if id_kind(df.schema["id"].dataType) == "str" else F.col("id").cast("long")
    label = F.col("label").cast("int") if "label" in df.columns else F.lit(None).cast("int")
    split = F.col("split") if "split" in df.columns else F.lit(None).cast("string")
    return df.select(idc.alias("id"), _features_to_array(df, table).alias("features"),
                     label.alias("label"), split.alias("split"))


def normalize_edges(df: DataFrame, node_id_type: T.DataType, table: str = "edges") -> DataFrame:
    """Select and cast the edge columns to (src, dst [, split]) in the node id type."""
    _require_columns(df, table, ["src", "dst"])
    want = id_kind(node_id_type)
    problems = []
    for c in ("src", "dst"):
        got = id_kind(df.schema[c].dataType)
        if got != want:
            problems.append(
                f"column '{c}' has type {df.schema[c].dataType.simpleString()} but node ids are "
                f"{node_id_type.simpleString()}. Fix: use the same id type in both tables."
            )
    if "split" in df.columns and not isinstance(df.schema["split"].dataType, T.StringType):
        problems.append(f"column 'split' has type {df.schema['split'].dataType.simpleString()}; expected string.")
    _fail(table, problems)
    cast = (lambda c: F.col(c)) if want == "str" else (lambda c: F.col(c).cast("long"))
    cols = [cast("src").alias("src"), cast("dst").alias("dst")]
    if "split" in df.columns:
        cols.append(F.col("split"))
    return df.select(*cols)


@dataclass
class NodeCheck:
    """Facts about a valid node table, found while checking it."""

    num_nodes: int
    feature_dim: int
    num_classes: int
    dense_ids: bool
    labelled: int = 0  # nodes with a label
    with_split: int = 0  # nodes with a split (train, val or test)

    @property
    def needs_default_split(self) -> bool:
        """Nodes are labelled but none has a split: training would have no targets and validation no
        scores, so ingest gives the labelled nodes a seeded split (README, ``tma-spark ingest``). A table
        where some nodes have a split keeps it as it is: labelled nodes without one are left out."""
        return self.labelled > 0 and self.with_split == 0


def _bad_split(col: Column) -> Column:
    return col.isNotNull() & ~col.isin(*SPLITS)


def _non_finite(features: Column) -> Column:
    """Whether an array holds a NaN, an infinity or a null element (null for a null array).

    Built from code-generated array functions: ``array_contains(a, NaN)`` is true for a NaN and null (not
    false) when an element is null; ``array_max``/``array_min`` find the infinities. A lambda
    (``F.exists``) is interpreted per element: 6x slower over thousands of features per node.
    """
    nan_or_null = F.coalesce(F.array_contains(features, F.lit(float("nan")).cast("float")), F.lit(True))
    inf = F.coalesce(F.array_max(features) == float("inf"), F.lit(False))
    minus_inf = F.coalesce(F.array_min(features) == float("-inf"), F.lit(False))
    return F.when(features.isNotNull(), nan_or_null | inf | minus_inf)


def check_nodes(nodes: DataFrame, table: str = "nodes", num_classes: Optional[int] = None) -> NodeCheck:
    """Check a normalized node table in one aggregation pass (plus one each for examples of duplicate ids and
    unknown splits, when there are any); its expressions are all code-generated, as the pass reads every
    feature."""
    non_finite = _non_finite(F.col("features"))
    row = nodes.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("id").isNull().cast("long")).alias("null_ids"),
        F.sum(F.col("features").isNull().cast("long")).alias("null_features"),
        F.min(F.size("features")).alias("min_dim"),
        F.max(F.size("features")).alias("max_dim"),
        F.sum(non_finite.cast("long")).alias("non_finite"),
        F.min_by("id", non_finite.cast("int") * -1).alias("non_finite_example"),
        F.min("label").alias("min_label"),
        F.max("label").alias("max_label"),
        F.count("label").alias("labelled"),
        F.count("split").alias("with_split"),
        F.sum(_bad_split(F.col("split")).cast("long")).alias("bad_split"),
        F.min("id").alias("min_id"),
        F.max("id").alias("max_id"),
        F.countDistinct("id").alias("distinct_ids"),
    ).first()
    n = row["n"]
    if n == 0:
        _fail(table, ["the table is empty (0 rows). Fix: check the path and that the table holds the graph's nodes."])
    problems = []
    if row["null_ids"]:
        problems.append(f"column 'id' has {row['null_ids']} null values. Fix: every node needs an id.")
    duplicates = n - row["null_ids"] - row["distinct_ids"]
    if duplicates:
        dupes = nodes.groupBy("id").count().where("count > 1").limit(_EXAMPLES).collect()
        problems.append(
            f"column 'id' has {duplicates} duplicate values "
            f"(e.g. {', '.join(repr(r['id']) for r in dupes)}). Fix: node ids must be unique; deduplicate the table."
        )
    if row["null_features"]:
        problems.append(f"column 'features' has {row['null_features']} null values. Fix: give every node a feature vector.")
    if row["min_dim"] is not None and row["min_dim"] != row["max_dim"]:
        problems.append(
            f"column 'features' has vectors of unequal length (from {row['min_dim']} to {row['max_dim']}). "
            "Fix: every node's feature vector must have the same dimension."
        )
    if row["non_finite"]:
        problems.append(
            f"column 'features' has NaN, infinite or non-numeric values in {row['non_finite']} rows "
            f"(e.g. node {row['non_finite_example']!r}). Fix: impute or drop those values before ingest."
        )
    if row["min_dim"] == 0 and row["max_dim"] == 0:
        problems.append("column 'features' holds empty vectors. Fix: provide at least one feature per node.")
    if row["labelled"]:
        if row["min_label"] < 0:
            problems.append(f"column 'label' has negative values (min {row['min_label']}); labels must be 0..C-1.")
        if num_classes is not None and row["max_label"] >= num_classes:
            problems.append(
                f"column 'label' has values outside 0..{num_classes - 1} (max {row['max_label']}) for "
                f"--num-classes {num_classes}. Fix: recode the labels or raise --num-classes."
            )
    if row["bad_split"]:
        # (a separate query: collect_set in the pass above would make all of it an uncompiled object aggregate)
        bad = nodes.where(_bad_split(F.col("split"))).select("split").distinct().orderBy("split").limit(_EXAMPLES)
        problems.append(
            f"column 'split' has {row['bad_split']} rows with unknown values "
            f"{[r['split'] for r in bad.collect()]}; allowed: {', '.join(SPLITS)} or null. Fix: recode them."
        )
    _fail(table, problems)
    classes = num_classes if num_classes is not None else ((row["max_label"] + 1) if row["labelled"] else 0)
    dense = (id_kind(nodes.schema["id"].dataType) == "int" and row["min_id"] == 0 and row["max_id"] == n - 1)
    return NodeCheck(num_nodes=n, feature_dim=row["min_dim"], num_classes=classes,
                     dense_ids=dense, labelled=row["labelled"], with_split=row["with_split"])


def check_edges(edges: DataFrame, nodes: DataFrame, table: str = "edges") -> int:
    """Check a normalized edge table against the node ids; return the edge count."""
    row = edges.agg(
        F.count(F.lit(1)).alias("m"),
        F.sum((F.col("src").isNull() | F.col("dst").isNull()).cast("long")).alias("null_ends"),
        *([F.sum(_bad_split(F.col("split")).cast("long")).alias("bad_split"),
           F.collect_set(F.when(_bad_split(F.col("split")), F.col("split"))).alias("bad_split_values")]
          if "split" in edges.columns else []),
    ).first()
    if row["m"] == 0:
        _fail(table, ["the table is empty (0 rows). Fix: check the path and that the table holds the graph's edges."])
    problems = []
    if row["null_ends"]:
        problems.append(f"columns 'src'/'dst' have {row['null_ends']} rows with a null endpoint. Fix: drop or repair them.")
    if "split" in edges.columns and row["bad_split"]:
        problems.append(
            f"column 'split' has {row['bad_split']} rows with unknown values "
            f"{sorted(row['bad_split_values'])[:_EXAMPLES]}; allowed: {', '.join(SPLITS)} or null."
        )
    ids = nodes.select(F.col("id").alias("_nid"))
    ends = edges.select(F.explode(F.array("src", "dst")).alias("_end")).where(F.col("_end").isNotNull())
    dangling = ends.join(ids, ends["_end"] == ids["_nid"], "left_anti")
    missing = dangling.agg(F.count(F.lit(1)).alias("k"), F.countDistinct("_end").alias("d")).first()
    if missing["k"]:
        examples = [r["_end"] for r in dangling.select("_end").distinct().limit(_EXAMPLES).collect()]
        problems.append(
            f"columns 'src'/'dst' refer to {missing['d']} node ids that are not in the nodes table "
            f"({missing['k']} edge endpoints, e.g. {', '.join(repr(e) for e in examples)}). "
            "Fix: add those nodes or drop the edges."
        )
    _fail(table, problems)
    return row["m"]
