"""spark-submit entry point for ``tma-spark infer`` (same arguments)."""
import sys

from tma_spark.cli import main

if __name__ == "__main__":
    main(["infer", *sys.argv[1:]])
