"""Write benchmarks/results/bench_suite.md: one table over every dataset of the standard suite whose
results are in benchmarks/results (bench_<dataset>.json, copied there by benchmarks/run_suite.sh).

Run: ``python benchmarks/summarize_suite.py [RESULTS_DIR]``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tma_spark.bench.report import render_suite_markdown  # noqa: E402

#: The standard suite, in the order of the table.
SUITE = ("amazon_computers", "coauthor_cs", "ogbn_arxiv", "synthetic_1e7")

log = logging.getLogger("summarize_suite")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    results_dir = Path(argv[0] if argv else Path(__file__).resolve().parent / "results")
    results = {name: json.loads(p.read_text()) for name in SUITE if (p := results_dir / f"bench_{name}.json").exists()}
    if not results:
        log.error("no bench_<dataset>.json in %s: run benchmarks/run_suite.sh first", results_dir)
        return 2
    out = results_dir / "bench_suite.md"
    out.write_text(render_suite_markdown(results))
    log.info("wrote %s (%d datasets)", out, len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
