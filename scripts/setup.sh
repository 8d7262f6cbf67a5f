#!/usr/bin/env bash
# Set up tma_spark on a fresh machine: a virtual environment in .venv with the pinned
# Python packages, the package itself (editable), and the Delta and s3a connector jars in the local jar cache.
# Needs: Python >= 3.10, Java 17+, Maven (for the jars). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if ! command -v java >/dev/null 2>&1; then
  echo "setup: Java is not installed. Fix: install a JDK 17 or newer (Spark 4 needs it)." >&2; exit 1
fi
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [ -n "$java_major" ] && [ "$java_major" -lt 17 ]; then
  echo "setup: Java $java_major found; Spark 4 needs Java 17 or newer." >&2; exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q -r requirements.txt
.venv/bin/pip install -q --no-deps -e .
.venv/bin/tma-spark jars --fetch -q >/dev/null
.venv/bin/tma-spark jars --fetch --s3 -q >/dev/null  # Spark's s3a connector (~690 MB once): s3a:// lakes, tests
echo "setup: ready (.venv/bin/tma-spark)" >&2
