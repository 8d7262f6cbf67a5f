"""Typed, validated configuration for each job, checked before any Spark job starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import ConfigError
from ..lake import LAKE_FORMATS
from .synthetic import SyntheticConfig

__all__ = ["IngestConfig", "INPUT_FORMATS"]

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
    split_fractions: Tuple[float, float, float] = (0.6, 0.2, 0.2)
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
            if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
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
