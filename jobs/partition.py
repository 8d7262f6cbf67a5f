"""spark-submit entry point for ``tma-spark partition`` (same arguments)."""
import sys

from tma_spark.cli import main

if __name__ == "__main__":
    main(["partition", *sys.argv[1:]])
