"""Ingest: bring a graph into a lake (tables, named datasets, npz files, synthetic).

All sources go through the same steps: normalize to the lake schema, validate
(nothing is written when validation fails), give the labelled nodes a seeded
split when they have labels and no node has a split (else nothing would be
trained or scored), assign dense ids when the input
ids are not already 0..N-1 (keeping ``id_map``), then write the lake
atomically with :func:`tma_spark.lake.write_lake`. Graphs held in memory (npz
files, named datasets) are first written in bounded chunks as Parquet beside
the lake (:mod:`.staging`), so every step is a Spark job over files.
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Tuple

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .. import commits, errors, fs
from ..claims import claiming
from . import datasets, staging, synthetic
from .config import IngestConfig
from ..errors import TmaSparkError
from ..lake import Lake, LakeMeta, check_output_path, write_lake
from .validate import check_edges, check_nodes, normalize_edges, normalize_nodes

__all__ = ["ingest", "read_input_table", "load_graph_arrays", "assign_dense_ids",
           "edge_split_column", "node_split_column"]

log = logging.getLogger(__name__)


def read_input_table(spark: SparkSession, path: str, fmt: str, table: str) -> DataFrame:
    """Read a user table by path (delta, parquet, csv) or catalog name (``table``)."""
    try:
        if fmt == "table":
            return spark.table(path)
        if not fs.exists(spark, path):
            raise TmaSparkError(f"Input table '{table}' at {path} does not exist. Fix: check the --{table} path.")
        reader = spark.read.format(fmt)
        if fmt == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        return reader.load(fs.qualify(path))
    except AnalysisException as exc:
        raise TmaSparkError(
            f"Input table '{table}' at {path} could not be read as {fmt}: {str(exc).splitlines()[0]}. "
            "Fix: check the path and --format."
        ) from exc


def assign_dense_ids(nodes: DataFrame, edges: DataFrame) -> Tuple[DataFrame, DataFrame, DataFrame]:
    """Map arbitrary ids to 0..N-1 (in sorted order of the original id) without collecting.

    Returns (nodes, edges, id_map) with ``id_map(orig_id, id)``.
    """
    ranked = nodes.select(F.col("id").alias("orig_id")).orderBy("orig_id").rdd.zipWithIndex()
    orig_type = nodes.schema["id"].dataType
    id_map = ranked.map(lambda r: (r[0][0], r[1])).toDF(
        T.StructType([T.StructField("orig_id", orig_type, False), T.StructField("id", T.LongType(), False)])
    )
    id_map = id_map.cache()
    nodes = (nodes.withColumnRenamed("id", "orig_id").join(id_map, "orig_id")
             .select("id", "features", "label", "split"))
    src_map = id_map.select(F.col("orig_id").alias("src"), F.col("id").alias("_s"))
    dst_map = id_map.select(F.col("orig_id").alias("dst"), F.col("id").alias("_d"))
    rest = [c for c in edges.columns if c not in ("src", "dst")]
    edges = (edges.join(src_map, "src").join(dst_map, "dst")
             .select(F.col("_s").alias("src"), F.col("_d").alias("dst"), *rest))
    return nodes, edges, id_map


def _hashed_split(keys, seed: int, fractions) -> Column:
    """train, val or test for each row: ``u = xxhash64(keys, seed) mod 10^6 / 10^6`` falls into one of the
    cumulative ``fractions`` (each row decides alone: no shuffle, and about, not exactly, those shares)."""
    u = F.pmod(F.xxhash64(*keys, F.lit(int(seed))), F.lit(1_000_000)) / F.lit(1_000_000.0)
    train, val = float(fractions[0]), float(fractions[0]) + float(fractions[1])
    return F.when(u < train, "train").when(u < val, "val").otherwise("test")


def edge_split_column(seed: int, fractions, directed: bool) -> Column:
    """A seeded train/val/test split of edges for link prediction, as a column expression (no shuffle).

    Each edge draws ``u = xxhash64(pair, seed) mod 10^6 / 10^6`` and falls into train, val or test by the
    cumulative ``fractions``. For undirected graphs the pair is ordered (least, greatest) so that both
    directions of an edge, if present, land in the same split.
    """
    a, b = (F.col("src"), F.col("dst")) if directed else (F.least("src", "dst"), F.greatest("src", "dst"))
    return _hashed_split([a, b], seed, fractions)


def node_split_column(seed: int, fractions) -> Column:
    """A seeded train/val/test split of the labelled nodes (null for unlabelled ones), as a column expression:
    each node draws ``u = xxhash64(id, seed) mod 10^6 / 10^6`` (its input id: the split does not depend on the
    other nodes) and falls into train, val or test by the cumulative ``fractions``."""
    return F.when(F.col("label").isNotNull(), _hashed_split([F.col("id")], seed, fractions))


def load_graph_arrays(cfg: IngestConfig) -> datasets.GraphArrays:
    """The in-memory graph of a ``--dataset`` or ``--npz`` source, with its node split: ``--split`` fractions
    (seeded by ``--seed``) when given, else the dataset's own split (:func:`datasets.load_dataset`)."""
    if cfg.source_kind() == "dataset":
        return datasets.load_dataset(cfg.dataset, cfg.data_dir, cfg.split_seed, cfg.feature_dim,
                                     split_fractions=cfg.split_fractions)
    return datasets.load_npz(cfg.npz, split_seed=cfg.split_seed, split_fractions=cfg.split_fractions)


def _from_arrays(spark: SparkSession, cfg: IngestConfig, scratch: str):
    """A ``--dataset`` or ``--npz`` graph, written in bounded chunks as Parquet under ``scratch``
    (:mod:`.staging`) and read back by Spark: the driver's JVM never holds the whole graph."""
    graph = load_graph_arrays(cfg)
    log.info("loaded %s: %d nodes, %d edges, %d features", graph.name, graph.num_nodes, len(graph.src),
             graph.feature_dim)
    errors.note_size(staging.dense_size(graph.num_nodes, graph.feature_dim))  # named if memory runs out
    nodes, edges = staging.read_staged(spark, staging.stage_graph(graph, scratch))
    return nodes, edges, graph.source, graph.directed


def _with_default_split(nodes: DataFrame, check, cfg: IngestConfig, source: dict) -> Tuple[DataFrame, dict]:
    """``nodes`` (and ``source``) with a seeded split of the labelled nodes when they have labels and no node
    has a split (:attr:`NodeCheck.needs_default_split`); unchanged otherwise."""
    if not check.needs_default_split:
        return nodes, source
    fractions = tuple(cfg.split_fractions or datasets.DEFAULT_SPLIT)
    log.warning("nodes have labels but no split: giving the %d labelled nodes a seeded %s train/val/test split "
                "(--split, --seed %d). Fix, to choose it yourself: give the nodes a 'split' column", check.labelled,
                "/".join(f"{f:g}" for f in fractions), cfg.split_seed)
    source = {**source, "node_split": {"seed": cfg.split_seed, "fractions": list(fractions), "nodes": "labelled"}}
    return nodes.withColumn("split", node_split_column(cfg.split_seed, fractions)), source


def _from_tables(spark: SparkSession, cfg: IngestConfig):
    raw_nodes = read_input_table(spark, cfg.nodes, cfg.input_format, "nodes")
    raw_edges = read_input_table(spark, cfg.edges, cfg.input_format, "edges")
    nodes = normalize_nodes(raw_nodes)
    edges = normalize_edges(raw_edges, nodes.schema["id"].dataType)
    source = {"kind": "tables", "nodes": cfg.nodes, "edges": cfg.edges, "format": cfg.input_format}
    return nodes, edges, source, cfg.directed


def _with_fastrp(nodes: DataFrame, edges: DataFrame, cfg: IngestConfig, scratch: str) -> DataFrame:
    """``nodes`` with FastRP structural features in place of ``features``.

    Computed from the training edges only (split train or null), so that the validation and test edges of
    link prediction do not leak into the features. FastRP keeps its state as Parquet in ``scratch/fastrp``
    (reliable storage, unlike ``localCheckpoint``) and the returned frame reads the last state from there, so
    ``scratch`` (the caller's) is deleted after the lake is written, not before.
    """
    from ..graphops.fastrp import fastrp_features

    log.info("computing %d-dimensional FastRP structural features from the training edges", cfg.feature_dim)
    train_edges = edges.where(F.col("split").isNull() | (F.col("split") == "train"))
    feats = fastrp_features(nodes.select("id"), train_edges.select("src", "dst"), f"{scratch}/fastrp",
                            dim=cfg.feature_dim, seed=cfg.split_seed)
    return nodes.drop("features").join(feats, "id").select("id", "features", "label", "split")


def _remove_scratch(spark: SparkSession, scratch: str) -> None:
    """Delete the job's scratch folder through Spark's filesystem, else pyarrow's (after an out-of-memory
    error the JVM may be gone); a failure is logged, not raised: it must not hide the job's own error."""
    failure = None
    for session in (spark, None):
        try:
            fs.delete(session, scratch)
            return
        except Exception as exc:  # noqa: BLE001 -- cleanup only
            failure = exc
    log.warning("could not delete the scratch folder %s (%s). Fix: delete it by hand.", scratch, failure)


@claiming("lake", "tma-spark ingest")  # one writer per lake
def ingest(spark: SparkSession, cfg: IngestConfig) -> Lake:
    """Import the configured source into ``cfg.lake`` and return the opened lake."""
    started = time.time()
    lake_path = check_output_path(spark, cfg.lake, cfg.overwrite)
    kind = cfg.source_kind()
    if kind == "synthetic":
        nodes, edges = synthetic.generate(spark, cfg.synthetic)
        edges = edges.withColumn("split", edge_split_column(cfg.split_seed, cfg.edge_split_fractions, False))
        s = cfg.synthetic
        meta = LakeMeta(format=cfg.lake_format, num_nodes=s.nodes, num_edges=s.edges, feature_dim=s.feature_dim,
                        num_classes=s.communities, has_id_map=False, has_edge_split=True, directed=False,
                        source={"kind": "synthetic", **s.__dict__})
        log.info("generating a synthetic graph of %d nodes and %d edges", s.nodes, s.edges)
        lake = write_lake(spark, lake_path, nodes, edges, None, meta, overwrite=cfg.overwrite)
        log.info("wrote lake %s in %.1f s", lake_path, time.time() - started)
        return lake

    scratch = commits.staging_sibling(lake_path, "ingest")  # staged npz/dataset tables, FastRP state
    cached = None  # the cached input nodes (tables), unpersisted at the end
    try:
        if kind == "tables":
            nodes, edges, source, directed = _from_tables(spark, cfg)
            cached = nodes = nodes.cache()  # (nodes is replaced below; the cached frame is the one to unpersist)
        else:
            nodes, edges, source, directed = _from_arrays(spark, cfg, scratch)
        log.info("validating nodes")
        node_check = check_nodes(nodes, "nodes", cfg.num_classes)
        log.info("validating edges")
        num_edges = check_edges(edges, nodes, "edges")
        nodes, source = _with_default_split(nodes, node_check, cfg, source)
        id_map: Optional[DataFrame] = None
        if not node_check.dense_ids:
            log.info("input ids are not dense 0..N-1: assigning dense ids and writing id_map")
            nodes, edges, id_map = assign_dense_ids(nodes, edges)
        if "split" not in edges.columns:
            source = {**source, "edge_split": {"seed": cfg.split_seed, "fractions": list(cfg.edge_split_fractions)}}
            log.info("edges have no split: adding a seeded %s edge split for link prediction",
                     "/".join(f"{f:g}" for f in cfg.edge_split_fractions))
            edges = edges.withColumn("split", edge_split_column(cfg.split_seed, cfg.edge_split_fractions, directed))
        feature_dim = node_check.feature_dim
        if cfg.structural_features == "fastrp":
            nodes = _with_fastrp(nodes, edges, cfg, scratch)
            feature_dim = cfg.feature_dim
            source = {**source, "features": {"kind": "fastrp", "dim": cfg.feature_dim, "seed": cfg.split_seed}}
        meta = LakeMeta(
            format=cfg.lake_format, num_nodes=node_check.num_nodes, num_edges=num_edges,
            feature_dim=feature_dim, num_classes=node_check.num_classes, has_id_map=id_map is not None,
            has_edge_split=True, directed=directed, source=source,
        )
        lake = write_lake(spark, lake_path, nodes, edges, id_map, meta, overwrite=cfg.overwrite)
    finally:
        _remove_scratch(spark, scratch)  # first: it never raises
        if cached is not None:
            cached.unpersist()
    log.info("wrote lake %s (%d nodes, %d edges) in %.1f s", lake_path, meta.num_nodes, meta.num_edges,
             time.time() - started)
    return lake
