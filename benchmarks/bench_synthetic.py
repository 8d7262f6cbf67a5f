"""Throughput of the Spark-native synthetic graph generator (tma_spark.ingest.synthetic), in edges per second.

For each size M (edges; N = M / --avg-degree nodes, D = --feature-dim features)
three jobs run in the same Spark session, each timed by wall clock:

* ``ingest``   ``tma_spark.ingest.ingest`` with a ``SyntheticConfig``: the user
               path; generates nodes *and* edges and writes the whole Delta lake
               (staging folder, nodes, edges, metadata, rename) under /tmp.
* ``parquet``  ``generate(...)`` edges only, ``edges.write.parquet`` under /tmp.
* ``noop``     ``generate(...)`` edges only, written to Spark's ``noop`` sink:
               generation cost alone (Python workers + Arrow transfer), no I/O.

``edges/s`` is M / wall seconds for every job (so for ``ingest`` it also pays
for the N node rows with their features). Memory, per job: peak RSS of the
driver Python process and of the Spark JVM (its ``VmHWM``, reset before the
job through /proc/PID/clear_refs), and the peak, sampled every 50 ms, of the
summed RSS of the Python workers under the JVM (an upper bound: forked workers
share pages). Each job first runs once on a tiny graph so that JVM, Delta and
Python worker start-up are not charged to the first size. Temporary folders
under /tmp are deleted afterwards.

Results: a markdown table on stdout, JSON (figures + machine info) at --out,
and a markdown copy next to it (same name, ``.md``) with the command used.

    .venv/bin/python benchmarks/bench_synthetic.py [--sizes 1e6,1e7] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from common import (RESULTS, Watch, dir_size, machine_info, mb, median_run, shell_command, start_spark,
                    write_results)
from tma_spark.ingest import IngestConfig, ingest
from tma_spark.ingest.synthetic import SyntheticConfig, generate

log = logging.getLogger("bench_synthetic")
JOBS = ("ingest", "parquet", "noop")


# ---------------------------------------------------------------- jobs

def run_job(spark, job: str, cfg: SyntheticConfig, workdir: Path, jvm) -> dict:
    """Run one timed job in a fresh folder under ``workdir``; return its figures."""
    out = workdir / job
    shutil.rmtree(out, ignore_errors=True)
    with Watch(jvm) as mem:
        t0 = time.perf_counter()
        if job == "ingest":
            ingest(spark, IngestConfig(lake=str(out), synthetic=cfg, overwrite=True))
        else:
            _, edges = generate(spark, cfg)
            if job == "parquet":
                edges.write.parquet(str(out))
            else:
                edges.write.format("noop").mode("overwrite").save()
        seconds = time.perf_counter() - t0
    size = dir_size(out) if out.exists() else None
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "edges_per_s": cfg.edges / seconds, "output_bytes": size,
            "driver_peak_rss": mem.driver_peak, "jvm_peak_rss": mem.jvm_peak,
            "workers_peak_rss": mem.sampled_peak or None}


# ---------------------------------------------------------------- report

def markdown_table(rows: list[dict]) -> str:
    head = ("| edges | nodes | job | seconds | edges/s | output MB | driver peak RSS MB | JVM peak RSS MB "
            "| workers peak RSS MB |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['edges']:,} | {r['nodes']:,} | {r['job']} | {r['seconds']:.1f} | {r['edges_per_s']:,.0f} "
                     f"| {mb(r['output_bytes'], 1)} | {mb(r['driver_peak_rss'], 1)} | {mb(r['jvm_peak_rss'], 1)} "
                     f"| {mb(r['workers_peak_rss'], 1)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e6,1e7", help="comma-separated edge counts (default: 1e6,1e7)")
    ap.add_argument("--avg-degree", type=float, default=10.0, help="edges per node: nodes = edges / this (default: 10)")
    ap.add_argument("--feature-dim", type=int, default=64, help="node feature dimension (default: 64)")
    ap.add_argument("--out", default=str(RESULTS / "synthetic.json"), help="JSON results file; a .md copy goes beside it")
    ap.add_argument("--master", default="local[*]", help="Spark master (default: local[*])")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each job; the table shows the median (default: 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    command = shell_command()
    spark, jvm = start_spark(args.master, "bench_synthetic")
    workdir = Path(tempfile.mkdtemp(prefix="bench_synthetic_", dir="/tmp"))
    rows = []
    try:
        log.info("warm-up: each job once on a tiny graph (JVM, Delta and Python worker start-up)")
        for job in JOBS:
            run_job(spark, job, SyntheticConfig(nodes=1_000, edges=10_000, feature_dim=args.feature_dim), workdir, jvm)
        for m in sizes:
            cfg = SyntheticConfig(nodes=max(int(m / args.avg_degree), 20), edges=m, feature_dim=args.feature_dim)
            for job in JOBS:
                runs = []
                for i in range(args.repeats):
                    log.info("%s: %d edges, %d nodes, run %d/%d", job, cfg.edges, cfg.nodes, i + 1, args.repeats)
                    runs.append(run_job(spark, job, cfg, workdir, jvm))
                    log.info("%s: %.1f s, %.0f edges/s", job, runs[-1]["seconds"], runs[-1]["edges_per_s"])
                row = median_run(runs)
                rows.append({"edges": cfg.edges, "nodes": cfg.nodes, "feature_dim": cfg.feature_dim, "job": job,
                             **row, "edges_per_s": cfg.edges / row["seconds"]})
        info = machine_info(spark)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        spark.stop()

    table = markdown_table(rows)
    print(table)
    ram = info["total_ram_bytes"] / (1 << 30)
    write_results(args.out, {"command": command, "machine": info, "args": vars(args), "results": rows}, (
        f"# Synthetic generator throughput\n\n"
        f"Command:\n\n```\n{command}\n```\n\n"
        f"Machine: {info['nproc']} CPUs, {ram:.1f} GiB RAM, {info['platform']}; Python {info['python']}, "
        f"PySpark {info['pyspark']}, Java {info['java']}; master {info['spark_master']} "
        f"(default parallelism {info['default_parallelism']}); {info['date']}.\n\n"
        f"Nodes = edges / {args.avg_degree:g}, feature dim {args.feature_dim}, {args.repeats} run(s) per job "
        f"(median seconds, max peak RSS). `ingest` = generate + write the whole Delta lake (nodes and edges) "
        f"with `tma_spark.ingest.ingest`; `parquet` = edges only to Parquet; `noop` = edges only to the noop "
        f"sink (generation alone). edges/s = edges / wall seconds. Workers RSS = summed RSS of the JVM's "
        f"Python workers, sampled every 50 ms.\n\n{table}\n"))


if __name__ == "__main__":
    main()
