"""Exact full-graph inference as Spark jobs: message passing (``propagate``), layer-wise model inference
(``infer``) and FastRP structural features (``fastrp_features``)."""

from .job import InferConfig, infer

__all__ = ["InferConfig", "infer"]
