#!/usr/bin/env bash
# Package tma_spark for a cluster: dist/tma_spark-<version>-py3-none-any.whl (pip install on the nodes,
# Databricks cluster library) and dist/tma_spark.zip, the same archive under a name spark-submit
# --py-files puts on the executors' Python path (Spark adds .zip/.egg/.jar files there, not .whl).
# The dependencies (requirements.txt) must be installed on the nodes or shipped as a packed environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
mkdir -p dist
rm -f dist/tma_spark-*.whl dist/tma_spark.zip
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w dist .
cp dist/tma_spark-*-py3-none-any.whl dist/tma_spark.zip
ls dist/tma_spark-*-py3-none-any.whl dist/tma_spark.zip
