"""Training: K local GNN trainers as barrier-mode Spark tasks with time-based model averaging.

``train`` (the driver) is imported on first use, so that the trainer-side modules
(:mod:`.executor`, :mod:`.objectives`, :mod:`.models`) import without PySpark: a task's worker
needs only torch and pyarrow, and the trainer can be checked on a GPU machine that has no Spark.
"""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from .driver import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
