#!/usr/bin/env bash
# Set everything up, then run the main job end to end on the bundled Cora graph:
# ingest it into a local Delta lake (./demo_lake) and print its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tma-spark ingest --dataset cora --lake demo_lake --overwrite
.venv/bin/tma-spark info --lake demo_lake
