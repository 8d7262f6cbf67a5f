"""Partitioning of a lake into K parts: RandomTMA, SuperTMA, METIS (PSGD-PA baseline), with diagnostics."""

from .config import PartitionConfig
from .job import partition
from .meta import PartsMeta, open_parts

__all__ = ["PartitionConfig", "partition", "PartsMeta", "open_parts"]
