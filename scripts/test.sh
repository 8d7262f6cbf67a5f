#!/usr/bin/env bash
# Run the test suite (after scripts/setup.sh). Extra arguments go to pytest.
# The Airflow DAG test needs its own virtual environment (.venv-airflow, Airflow's pins clash with ours);
# scripts/setup_airflow.sh makes it the first time (about a minute) and returns at once afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_airflow.sh
exec .venv/bin/python -m pytest tests "$@"
