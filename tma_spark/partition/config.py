"""Typed configuration of the partition job, validated before any Spark job starts.

Each field is declared once with :func:`~tma_spark.settings.setting`: its default, help, flag and choices make
the ``tma-spark partition`` flags and the keys of a config file's ``partition`` section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError
from ..lake import LAKE_FORMATS
from ..settings import check_choices, setting
from .strategies import METIS_MAX_EDGES
from .supernodes import LPA_IMPLEMENTATIONS, SUPER_METHODS

__all__ = ["PartitionConfig", "STRATEGIES", "FULL_STATS"]

STRATEGIES = ("random", "super", "metis")
FULL_STATS = ("auto", "on", "off")


@dataclass
class PartitionConfig:
    """What ``tma-spark partition`` does: assign the nodes of ``lake`` to ``parts`` parts with ``strategy``
    and write them, their intra-part edges and statistics to ``out``."""

    lake: str = setting(help="the lake to partition")
    out: str = setting(help="output partitions folder (PARTS)")
    strategy: str = setting("random", choices=STRATEGIES,
                            help="random (RandomTMA), super (SuperTMA) or metis (PSGD-PA baseline)")
    parts: int = setting(4, short="-k", help="number of parts K (default %(default)s)")
    seed: int = setting(0, help="seed of the assignment")
    overwrite: bool = setting(False, help="replace an existing PARTS folder (atomically)")
    format: str = setting("delta", choices=LAKE_FORMATS, help="table format of the parts")
    #: the most edges the METIS strategies accept (a safety limit, not a flag)
    metis_max_edges: int = METIS_MAX_EDGES
    full_stats: str = setting("auto", choices=FULL_STATS,
                              help="auto|on|off: also count duplicate edges, isolated nodes and per-part degree "
                              "quantiles (shuffles every edge; auto = up to 2e7 edges)")
    super_nodes: Optional[int] = setting(None, short="-m", help="super: about M super-nodes (default: N/200, >= 32K)")
    super_method: str = setting("lpa", choices=SUPER_METHODS,
                                help="super: lpa (label propagation) or metis (pymetis clusters)")
    lpa_iter: int = setting(10, help="super: label propagation iterations (default %(default)s)")
    lpa: str = setting("auto", choices=LPA_IMPLEMENTATIONS, help="super: auto|graphframes|builtin label propagation")
    lpa_tolerance: float = setting(0.0, help="super: stop label propagation early once at most this fraction of "
                                   "the nodes changed community in an iteration (default %(default)s: only on "
                                   "convergence or after --lpa-iter; e.g. 0.001 saves iterations at the cost of "
                                   "communities that differ slightly; built-in implementation only)")

    def validate(self) -> "PartitionConfig":
        check_choices(self)
        if self.parts < 1:
            raise ConfigError(f"--parts {self.parts}: K must be at least 1.")
        if not self.out:
            raise ConfigError("--out is required: the folder to write the partitions to.")
        if self.super_nodes is not None and self.super_nodes < 1:
            raise ConfigError(f"--super-nodes {self.super_nodes} must be at least 1.")
        if self.lpa_iter < 1:
            raise ConfigError(f"--lpa-iter {self.lpa_iter} must be at least 1.")
        if not 0.0 <= self.lpa_tolerance < 1.0:
            raise ConfigError(f"--lpa-tolerance {self.lpa_tolerance} must be at least 0 and below 1 (a fraction of "
                              "the nodes; 0 stops only on convergence).")
        return self
