#!/usr/bin/env bash
# Set everything up, then run the main job end to end on the bundled Cora graph, as configured in
# examples/quickstart.yaml: ingest it into a local Delta lake (./demo_lake), split it into K = 4 RandomTMA
# parts (./demo_parts, with stats.json and stats.png), train K = 4 GraphSAGE trainers averaged every 5 s
# for 30 s (./demo_run, with curves.png), and apply the best model to every node with Spark
# (./demo_predictions; exact test accuracy in demo_run/eval.json). Re-runnable: --overwrite replaces the
# previous outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tma-spark run --config examples/quickstart.yaml --overwrite "$@"
