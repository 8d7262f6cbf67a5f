"""Benchmark of TMA against the baselines (``tma-spark bench``); :mod:`.report` holds the pure maths."""

from .job import METHODS, BenchConfig, bench

__all__ = ["BenchConfig", "bench", "METHODS"]
