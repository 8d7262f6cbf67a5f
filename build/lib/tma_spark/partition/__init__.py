"""Partitioning of a lake into K parts: RandomTMA, SuperTMA, METIS (PSGD-PA baseline), with diagnostics."""

from .job import PartitionConfig, partition

__all__ = ["PartitionConfig", "partition"]
