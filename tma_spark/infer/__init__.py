"""Exact full-graph inference as Spark jobs: layer-wise model inference (``infer``) and its config
(``InferConfig``).

``infer`` is imported lazily: Spark's Python workers import this package to run the inference UDFs
(:mod:`.layers`) and the command line imports ``InferConfig``; neither should pay for importing the job
module (torch and PyG).
"""

from .config import InferConfig

__all__ = ["InferConfig", "infer"]


def __getattr__(name):
    if name == "infer":
        from .job import infer

        return infer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
