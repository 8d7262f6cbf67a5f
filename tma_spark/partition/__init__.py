"""Partitioning of a lake into K parts: RandomTMA, SuperTMA, METIS (PSGD-PA baseline), with diagnostics."""

from .job import PartitionConfig, partition
from .meta import PartsMeta, open_parts

__all__ = ["PartitionConfig", "partition", "PartsMeta", "open_parts"]
