"""Install tma_spark: `pip install -r requirements.txt && pip install -e .` (scripts/setup.sh does both)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#") and not ln.startswith("pytest")]


setup(
    name="tma_spark",
    version="0.1.0",
    description="Randomized-partition GNN training with time-based model aggregation on Apache Spark",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tma_spark", "tma_spark.*"]),
    package_data={"tma_spark": ["data/*.npz", "data/*.md"]},
    install_requires=_requirements(),
    extras_require={"test": ["pytest==9.2.0"]},
    entry_points={"console_scripts": ["tma-spark=tma_spark.cli:main"]},
)
