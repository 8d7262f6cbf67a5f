"""What ``tma-spark ingest`` imports (:class:`IngestConfig`, validated before any Spark job starts) and the
command's flags (:class:`IngestOptions`), which map onto it.

The flags are not IngestConfig's fields one to one: ``--nodes``/``--edges`` are table paths, or counts with
``--synthetic``; ``--seed`` seeds both the synthetic graph and the split; ``--feature-dim`` is the synthetic
graph's width or the random features' width. IngestOptions declares each flag once
(:func:`~tma_spark.settings.setting`) and :meth:`IngestOptions.to_config` is the explicit mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import ConfigError
from ..lake import LAKE_FORMATS
from ..settings import check_choices, count, default_of, fractions, setting
from .datasets import DATASETS, DEFAULT_SPLIT
from .synthetic import SyntheticConfig

__all__ = ["IngestConfig", "IngestOptions", "INPUT_FORMATS"]

INPUT_FORMATS = ("delta", "parquet", "csv", "table")


@dataclass
class IngestConfig:
    """What ``tma-spark ingest`` imports and where it writes the lake.

    Exactly one source: ``nodes`` + ``edges`` tables, a named ``dataset``, an
    ``npz`` file, or ``synthetic``.
    """

    lake: str
    nodes: Optional[str] = None
    edges: Optional[str] = None
    input_format: str = "delta"
    dataset: Optional[str] = None
    npz: Optional[str] = None
    synthetic: Optional[SyntheticConfig] = None
    data_dir: Optional[str] = None
    lake_format: str = "delta"
    overwrite: bool = False
    num_classes: Optional[int] = None
    split_seed: int = 0
    #: train/val/test fractions of the seeded node split; None: a named dataset's own split (ogbn-arxiv's
    #: official one), else :data:`~tma_spark.ingest.datasets.DEFAULT_SPLIT`
    split_fractions: Optional[Tuple[float, float, float]] = None
    edge_split_fractions: Tuple[float, float, float] = (0.9, 0.05, 0.05)  # when the edges have no split
    feature_dim: int = 128  # random features for datasets that have none (ogbn-arxiv)
    directed: bool = False  # for table inputs: are edges directed?
    structural_features: Optional[str] = None  # "fastrp": replace the features by FastRP (feature_dim wide)

    def source_kind(self) -> str:
        kinds = [k for k, v in (("tables", self.nodes or self.edges), ("dataset", self.dataset),
                                ("npz", self.npz), ("synthetic", self.synthetic)) if v]
        if len(kinds) != 1:
            raise ConfigError(
                "ingest needs exactly one source: --nodes PATH --edges PATH, --dataset NAME, --npz PATH or "
                f"--synthetic (got {', '.join(kinds) or 'none'})."
            )
        return kinds[0]

    def validate(self) -> "IngestConfig":
        if not self.lake:
            raise ConfigError("--lake is required: the folder to write the lake to.")
        kind = self.source_kind()
        if kind == "tables" and not (self.nodes and self.edges):
            raise ConfigError("table import needs both --nodes PATH and --edges PATH.")
        if self.input_format not in INPUT_FORMATS:
            raise ConfigError(f"--format {self.input_format!r} is not one of {', '.join(INPUT_FORMATS)}.")
        if self.lake_format not in LAKE_FORMATS:
            raise ConfigError(f"--lake-format {self.lake_format!r} is not one of {', '.join(LAKE_FORMATS)}.")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"--num-classes {self.num_classes} must be at least 1.")
        for flag, fr in (("--split", self.split_fractions), ("--edge-split", self.edge_split_fractions)):
            if fr is not None and (len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6):
                raise ConfigError(f"{flag} {','.join(map(str, fr))} must be three non-negative fractions summing to 1.")
        if self.feature_dim < 1:
            raise ConfigError(f"--feature-dim {self.feature_dim} must be at least 1.")
        if self.structural_features not in (None, "fastrp"):
            raise ConfigError(f"--features {self.structural_features!r} is not one of: input (default), fastrp.")
        if self.structural_features and kind == "synthetic":
            raise ConfigError("--features fastrp does not apply to --synthetic graphs (they are generated with "
                              "features). Fix: ingest without --features.")
        if self.synthetic is not None:
            self.synthetic.validate()
        return self


_SYNTHETIC_DIM = default_of(SyntheticConfig, "feature_dim")
_RANDOM_DIM = default_of(IngestConfig, "feature_dim")


@dataclass
class IngestOptions:
    """The flags of ``tma-spark ingest`` (and the keys of a config file's ``ingest`` section), as typed."""

    lake: str = setting(help="output lake folder")
    nodes: Optional[str] = setting(None, help="node table path or catalog name; with --synthetic: the number of "
                                   "nodes")
    edges: Optional[str] = setting(None, help="edge table path or catalog name; with --synthetic: the number of "
                                   "edges")
    input_format: str = setting(default_of(IngestConfig, "input_format"), flag="--format", choices=INPUT_FORMATS,
                                help="format of --nodes/--edges (table = catalog table names)")
    dataset: Optional[str] = setting(None, choices=sorted(DATASETS), help="a named real graph (cora is bundled)")
    data_dir: Optional[str] = setting(None, help="folder holding the named datasets (default: $TMA_SPARK_DATA_DIR "
                                      "or ../shared/datasets)")
    npz: Optional[str] = setting(None, help="a graph file in the npz format (see README)")
    synthetic: bool = setting(False, help="generate a synthetic graph with Spark")
    communities: int = setting(default_of(SyntheticConfig, "communities"),
                               help="synthetic: communities = classes (default %(default)s)")
    homophily: float = setting(default_of(SyntheticConfig, "homophily"),
                               help="synthetic: P(edge inside a community) (default %(default)s)")
    signal: float = setting(default_of(SyntheticConfig, "signal"), help="synthetic: class-centroid scale in the "
                            "features, noise is N(0, 1) (default %(default)s: features alone separate the classes; "
                            "0.1: the graph is needed)")
    feature_dim: Optional[int] = setting(None, help=f"synthetic: feature dimension (default {_SYNTHETIC_DIM}); "
                                         f"datasets without features: random dim ({_RANDOM_DIM})")
    seed: int = setting(default_of(IngestConfig, "split_seed"),
                        help="seed of the synthetic graph, random split and features")
    split: Optional[Tuple[float, float, float]] = setting(
        None, parse=fractions, help="train,val,test fractions of the seeded node split (default: a named dataset's "
        f"own split, ogbn-arxiv's official one; else {','.join(map(str, DEFAULT_SPLIT))}); also the split given "
        "to labelled table nodes when no node has one")
    edge_split: Tuple[float, float, float] = setting(
        default_of(IngestConfig, "edge_split_fractions"), parse=fractions, help="train,val,test fractions of the "
        "seeded edge split (link prediction), used when the edges have no split column")
    features: str = setting("input", help="input (default: the input's features; random for datasets without) | "
                            "fastrp (FastRP structural features of --feature-dim, computed by Spark from the "
                            "training edges)")
    num_classes: Optional[int] = setting(None, help="number of classes C (labels must be 0..C-1; default max+1)")
    directed: bool = setting(False, help="table input: edges are directed")
    lake_format: str = setting(default_of(IngestConfig, "lake_format"), choices=LAKE_FORMATS,
                               help="table format of the lake")
    overwrite: bool = setting(False, help="replace an existing lake (atomically)")

    def to_config(self) -> IngestConfig:
        """The validated IngestConfig these flags describe."""
        check_choices(self)
        synth, nodes, edges = None, self.nodes, self.edges
        if self.synthetic:
            if nodes is None or edges is None:
                raise ConfigError("--synthetic needs --nodes N and --edges M (counts).")
            synth = SyntheticConfig(nodes=count(nodes, "--nodes"), edges=count(edges, "--edges"),
                                    communities=self.communities, homophily=self.homophily,
                                    feature_dim=self.feature_dim or _SYNTHETIC_DIM, seed=self.seed, signal=self.signal,
                                    split=tuple(self.split or DEFAULT_SPLIT))
            nodes = edges = None
        return IngestConfig(
            lake=self.lake, nodes=nodes, edges=edges, input_format=self.input_format, dataset=self.dataset,
            npz=self.npz, synthetic=synth, data_dir=self.data_dir, lake_format=self.lake_format,
            overwrite=self.overwrite, num_classes=self.num_classes, split_seed=self.seed,
            split_fractions=tuple(self.split) if self.split is not None else None,
            edge_split_fractions=tuple(self.edge_split),
            feature_dim=self.feature_dim or _RANDOM_DIM, directed=self.directed,
            structural_features=None if self.features == "input" else self.features,
        ).validate()
