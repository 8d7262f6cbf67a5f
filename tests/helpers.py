"""Small builders of input tables for ingest tests."""

import os
from typing import List


def leftovers(path) -> List[str]:
    """Anything ingest may have left beside or at ``path`` (the lake or hidden staging folders)."""
    path = str(path).rstrip("/")
    parent, name = os.path.split(path)
    return [e for e in os.listdir(parent) if e == name or e.startswith(f".{name}.")]


def write_graph(spark, root, nodes_rows, edges_rows, nodes_schema, edges_schema, fmt="parquet"):
    """Write node and edge rows as tables under ``root``; return their paths."""
    nodes_path, edges_path = f"{root}/in_nodes", f"{root}/in_edges"
    spark.createDataFrame(nodes_rows, nodes_schema).write.format(fmt).mode("overwrite").save(nodes_path)
    spark.createDataFrame(edges_rows, edges_schema).write.format(fmt).mode("overwrite").save(edges_path)
    return nodes_path, edges_path


NODE_SCHEMA = "id long, features array<float>, label int, split string"
EDGE_SCHEMA = "src long, dst long"


def good_nodes(n=4):
    return [(i, [float(i), 1.0], i % 2, ["train", "val", "test", None][i % 4]) for i in range(n)]


def good_edges(n=4):
    return [(i, (i + 1) % n) for i in range(n)]
