"""spark-submit entry point for ``tma-spark train`` (same arguments)."""
import sys

from tma_spark.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
