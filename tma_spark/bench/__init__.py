"""Benchmark of TMA against the baselines (``tma-spark bench``); :mod:`.report` holds the pure maths."""

from .config import METHODS, BenchConfig
from .job import bench

__all__ = ["BenchConfig", "bench", "METHODS"]
