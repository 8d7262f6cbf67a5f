"""Install tma_spark: `pip install -r requirements.txt && pip install -e .` (scripts/setup.sh does both)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(*prefixes: str, exclude: bool = True) -> list:
    """Pinned lines of requirements.txt (comments dropped), without (or only) those starting with ``prefixes``."""
    lines = [ln.split("#")[0].strip() for ln in (HERE / "requirements.txt").read_text().splitlines()]
    return [ln for ln in lines if ln and ln.startswith(prefixes) != exclude]


setup(
    name="tma_spark",
    version="0.1.0",
    description="Randomized-partition GNN training with time-based model aggregation on Apache Spark",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tma_spark", "tma_spark.*"]),
    package_data={"tma_spark": ["data/*.npz", "data/*.md"]},
    install_requires=_requirements("pytest", "mlflow"),
    extras_require={"test": _requirements("pytest", exclude=False), "mlflow": _requirements("mlflow", exclude=False)},
    entry_points={"console_scripts": ["tma-spark=tma_spark.cli:main"]},
)
