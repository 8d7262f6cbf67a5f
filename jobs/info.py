"""spark-submit entry point for ``tma-spark info`` (same arguments)."""
import sys

from tma_spark.cli import main

if __name__ == "__main__":
    main(["info", *sys.argv[1:]])
