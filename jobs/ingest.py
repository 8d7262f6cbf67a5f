"""spark-submit entry point for ``tma-spark ingest`` (same arguments)."""
import sys

from tma_spark.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
