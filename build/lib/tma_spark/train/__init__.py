"""Training: K local GNN trainers as barrier-mode Spark tasks with time-based model averaging."""

from .config import TrainConfig
from .driver import train

__all__ = ["TrainConfig", "train"]
