"""tma_spark: GNN training on Spark with randomized partitions and time-based model aggregation.

Implements "Simplifying Distributed Neural Network Training on Massive Graphs:
Randomized Partitions Improve Model Aggregation" (Zhu et al., 2023,
https://arxiv.org/abs/2305.09887) on Apache Spark, Delta Lake and PyTorch Geometric.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
