#!/usr/bin/env bash
# Set up .venv-airflow: a SEPARATE virtual environment with Apache Airflow and its Spark
# provider, used only to load and check the example DAG examples/airflow/tma_spark_pipeline.py
# (tests/test_airflow_dag.py). It is not .venv because Airflow's dependencies clash with our
# pins (.venv: pyspark 4.2.0, pandas 2.3.3, numpy 2.4.6, pyarrow 26.0.1).
# Safe to re-run: returns at once when the pinned versions are already installed.
#
# Airflow's recommended install uses its constraints file, which is on GitHub
# (https://raw.githubusercontent.com/apache/airflow/constraints-<version>/constraints-3.11.txt);
# GitHub is not reachable everywhere we run (CI: PyPI only), so only the two packages are
# pinned and pip resolves the rest. Where the file is reachable, use it:
#   AIRFLOW_CONSTRAINTS=<url or path> bash scripts/setup_airflow.sh
#
# Resolved from PyPI with Python 3.11 and no constraints (2026-11): apache-airflow 3.3.2,
# apache-airflow-core 3.3.2, apache-airflow-task-sdk 1.3.2, apache-airflow-providers-apache-spark
# 6.3.4, providers common-compat 1.23.0 / common-io 1.11.0 / common-sql 2.4.0 / smtp 3.2.0 /
# standard 1.21.0, pyspark-client 4.2.0 (the provider's Spark dependency; spark-submit itself is
# not needed to load the DAG), pandas 3.1.1, numpy 2.4.6, pyarrow 26.0.1, SQLAlchemy 2.1.9,
# pydantic 2.14.4, fastapi 0.136.3, grpcio 1.85.3; 141 packages, ~660 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv-airflow
AIRFLOW_VERSION=3.3.2
SPARK_PROVIDER_VERSION=6.3.4
PIP_VERSION=26.3  # the venv's bundled pip (23.x on Python 3.11) is slow to resolve Airflow

ready() {  # exit 0 when both pinned distributions are installed in $VENV
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$AIRFLOW_VERSION" "$SPARK_PROVIDER_VERSION" 2>/dev/null <<'PYEOF'
import sys
from importlib.metadata import version
sys.exit(0 if (version("apache-airflow"), version("apache-airflow-providers-apache-spark"))
         == (sys.argv[1], sys.argv[2]) else 1)
PYEOF
}

if ! ready; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pip==$PIP_VERSION"
  constraints=()
  [ -z "${AIRFLOW_CONSTRAINTS:-}" ] || constraints=(--constraint "$AIRFLOW_CONSTRAINTS")
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check ${constraints[@]+"${constraints[@]}"} \
    "apache-airflow==$AIRFLOW_VERSION" \
    "apache-airflow-providers-apache-spark==$SPARK_PROVIDER_VERSION"
  ready || { echo "setup_airflow: installed, but apache-airflow $AIRFLOW_VERSION /" \
                  "provider $SPARK_PROVIDER_VERSION are not both in $VENV" >&2; exit 1; }
fi
echo "setup_airflow: ready ($VENV: apache-airflow $AIRFLOW_VERSION," \
     "apache-airflow-providers-apache-spark $SPARK_PROVIDER_VERSION)" >&2
