"""Node-to-part assignments. Each strategy returns ``(id, part)`` rows or a column expression.

* RandomTMA: ``part = pmod(xxhash64(id, seed), K)``, a column expression: every
  task decides a node's part (and whether an edge is intra-part) from the id
  alone, with no shuffle, no join and nothing collected.
* METIS: K-way min-cut partitioning with pymetis on the driver, for graphs that
  fit there (the PSGD-PA baseline); refused above ``max_edges``.
"""

from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..arrays import symmetric_csr
from ..errors import TmaSparkError

__all__ = ["random_part", "metis_assignment", "METIS_MAX_EDGES"]

log = logging.getLogger(__name__)

#: Largest edge count METIS is run on (the adjacency is built on the driver).
METIS_MAX_EDGES = 50_000_000


def random_part(id_col: Column, parts: int, seed: int) -> Column:
    """RandomTMA part of a node id: a seeded 64-bit hash modulo K (deterministic, balanced)."""
    return F.pmod(F.xxhash64(id_col, F.lit(int(seed))), F.lit(int(parts))).cast("int")


def metis_assignment(spark: SparkSession, edges: DataFrame, num_nodes: int, parts: int, seed: int,
                     max_edges: int = METIS_MAX_EDGES) -> DataFrame:
    """K-way METIS partition (pymetis) of the undirected graph as an ``(id, part)`` DataFrame."""
    num_edges = edges.count()
    if num_edges > max_edges:
        raise TmaSparkError(
            f"METIS needs the whole graph on the driver: this graph has {num_edges:,} edges, above the limit of "
            f"{max_edges:,}. Fix: use --strategy random or super, which scale with the cluster."
        )
    import pymetis

    log.info("collecting %d edges to the driver for METIS", num_edges)
    arrow = edges.where("src != dst").select("src", "dst").toArrow()
    xadj, adjncy = symmetric_csr(arrow.column("src").to_numpy(), arrow.column("dst").to_numpy(), num_nodes)
    del arrow
    result = pymetis.part_graph(parts, pymetis.CSRAdjacency(xadj, adjncy), options=pymetis.Options(seed=int(seed)))
    membership = result.vertex_part
    import pyarrow as pa

    table = pa.table({"id": pa.array(np.arange(num_nodes, dtype=np.int64)),
                      "part": pa.array(np.asarray(membership, dtype=np.int32))})
    return spark.createDataFrame(table)
