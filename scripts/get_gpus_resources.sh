#!/usr/bin/env bash
# GPU discovery script for Spark (spark.executor.resource.gpu.discoveryScript /
# spark.worker.resource.gpu.discoveryScript): prints the executor's GPU addresses as Spark expects,
# e.g. {"name": "gpu", "addresses": ["0","1"]}. Same output as Spark's examples/.../getGpusResources.sh.
set -euo pipefail
addrs=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/","/g')
echo "{\"name\": \"gpu\", \"addresses\": [\"$addrs\"]}"
