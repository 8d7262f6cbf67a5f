"""Partition quality on real graphs: edge retention, label TV and balance of RandomTMA, SuperTMA and METIS.

For each dataset: ingest it into a temporary lake, run ``tma_spark.partition.partition``
with each strategy (K parts, same seed) in one run, and write a markdown table
(``benchmarks/results/partition_quality.md``) and the raw statistics (``.json``).

    python benchmarks/partition_quality.py --datasets amazon_computers,ogbn_arxiv --parts 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from tma_spark.ingest import IngestConfig, ingest
from tma_spark.partition import PartitionConfig, partition
from tma_spark.session import get_spark

log = logging.getLogger("partition_quality")
RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="amazon_computers,ogbn_arxiv")
    ap.add_argument("--strategies", default="random,super,super:metis,metis",
                    help="comma-separated; super:metis = SuperTMA over pymetis clusters")
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(RESULTS / "partition_quality"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    spark = get_spark()
    work = Path(tempfile.mkdtemp(prefix="partition_quality_"))
    rows = []
    try:
        for name in args.datasets.split(","):
            lake = str(work / name)
            ingest(spark, IngestConfig(lake=lake, dataset=name, data_dir=args.data_dir))
            for spec in args.strategies.split(","):
                strategy, _, method = spec.partition(":")
                stats = partition(spark, PartitionConfig(lake=lake, out=str(work / f"{name}_{strategy}_{method}"),
                                                         strategy=strategy, parts=args.parts, seed=args.seed,
                                                         super_method=method or "lpa"))
                stats.pop("per_part")
                rows.append({"dataset": name, **stats, "strategy": spec if method else strategy})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python " + " ".join([sys.argv[0].split("/work/main/")[-1], *sys.argv[1:]])
    lines = [
        "# Partition quality: RandomTMA, SuperTMA, METIS",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.node()} ({platform.machine()}), run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"K = {args.parts}, seed {args.seed}. Edge retention = intra-part edges / all non-loop edges; label TV = mean "
        "total-variation distance between each part's training-label distribution and the global one; "
        "balance = largest part / mean part (nodes).",
        "",
        "| dataset | strategy | edge retention | label TV | node balance | super-nodes (cap) | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sn = f"{r['super_nodes']:,} ({r['super_node_cap']})" if "super_nodes" in r else "-"
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['edge_retention']:.3f} | {r['label_tv']:.3f} | "
                     f"{r['node_balance']:.3f} | {sn} | {r['seconds']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
