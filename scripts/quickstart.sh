#!/usr/bin/env bash
# Set everything up, then run the main job end to end on the bundled Cora graph:
# ingest it into a local Delta lake (./demo_lake) and summarize it, split it into K = 4 RandomTMA parts
# (./demo_parts, with stats.json and stats.png), train K = 4 GraphSAGE trainers averaged every 5 s for
# 30 s (./demo_run), and apply the best model to every node with Spark (./demo_predictions, exact
# test accuracy in demo_run/eval.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/tma-spark ingest --dataset cora --lake demo_lake --overwrite
.venv/bin/tma-spark info --lake demo_lake
.venv/bin/tma-spark partition --lake demo_lake --strategy random --parts 4 --seed 0 --out demo_parts --overwrite
.venv/bin/tma-spark train --lake demo_lake --partitions demo_parts --round-seconds 5 --time-limit 30 --hidden 64 \
    --out demo_run --overwrite
.venv/bin/tma-spark infer --lake demo_lake --run demo_run --out demo_predictions --overwrite
