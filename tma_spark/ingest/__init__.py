"""Ingest: bring a graph into a lake from tables, a named dataset, an npz file or a synthetic generator.

Modules: :mod:`.config` (what to import, validated before Spark), :mod:`.datasets` (named graphs and npz
files), :mod:`.synthetic` (Spark-generated graphs), :mod:`.validate` (schema and value checks) and
:mod:`.job` (the ``tma-spark ingest`` job).
"""

from .config import INPUT_FORMATS, IngestConfig
from .job import ingest

__all__ = ["IngestConfig", "INPUT_FORMATS", "ingest"]
