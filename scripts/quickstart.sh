#!/usr/bin/env bash
# Set everything up, then run the main job end to end on the bundled Cora graph:
# ingest it into a local Delta lake (./demo_lake), print its summary, and split it into
# K = 4 RandomTMA parts (./demo_parts, with stats.json and stats.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tma-spark ingest --dataset cora --lake demo_lake --overwrite
.venv/bin/tma-spark info --lake demo_lake
.venv/bin/tma-spark partition --lake demo_lake --strategy random --parts 4 --seed 0 --out demo_parts --overwrite
