"""Exact full-graph inference as Spark jobs: message passing (``propagate``), layer-wise model inference
(``infer``) and FastRP structural features (``fastrp_features``).

``infer`` and ``InferConfig`` are imported lazily: Spark's Python workers import this package to run the
``propagate`` and ``fastrp`` UDFs, and should not pay for importing torch and PyG.
"""

__all__ = ["InferConfig", "infer"]


def __getattr__(name):
    if name in __all__:
        from . import job

        return getattr(job, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
