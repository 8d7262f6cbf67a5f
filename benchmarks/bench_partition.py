"""Speed of the RandomTMA partition job against METIS and a one-core pyarrow script, in edges per second.

For each size M (edges; N = M / --avg-degree nodes, feature dim --feature-dim,
K = --parts) a synthetic Delta lake is written under /tmp with
``tma_spark.ingest.ingest`` (timed, for information), then, on that same lake
and in the same run:

* ``randomtma``        the real job, ``tma_spark.partition.partition`` with
                       ``PartitionConfig(strategy="random", full_stats="off")``:
                       part = pmod(xxhash64(id, seed), K), intra-part edges
                       kept, assignment + nodes + edges written as Delta
                       (partitioned by part), per-part statistics, stats.png.
                       Its wall time is split into phases by the job's
                       ``partition.phase`` events (``tma_spark.events``: setup,
                       assignment, nodes, edges, stats, commit).
* ``randomtma+stats``  the same job with ``full_stats="on"`` (duplicates,
                       isolated nodes and degree quantiles: a shuffle of every
                       edge), only for M <= --full-stats-max-edges.
* ``pyarrow-1core``    a plain single-process script (pyarrow limited to one
                       thread): stream the lake's edges parquet files, part of
                       src and dst with a vectorized splitmix64 hash modulo K in
                       numpy, keep intra-part non-loop edges, write them as
                       parquet partitioned by part (hive layout).
* ``metis``            pymetis K-way METIS: read the edges into numpy with
                       pyarrow, build the symmetric CSR without self-loops or
                       duplicates with ``tma_spark.arrays.symmetric_csr`` (the
                       function ``strategies.metis_assignment`` uses), run
                       ``pymetis.part_graph(K, CSRAdjacency(xadj, adjncy))``.

``pyarrow-1core`` and ``metis`` run in a child process (this script with a
hidden ``--_worker`` flag) so that their peak memory is their own and an
out-of-memory kill or a crash is recorded ("failed", with the exit code) instead
of ending the benchmark; METIS has a timeout (--metis-timeout, recorded as
"timeout"). The lake's edge files are the Delta table's live files (deltalake's
``DeltaTable.file_uris()``), so exactly the table's current files are read.

``edges/s`` is lake edges M / wall seconds for every method. Memory: the
Spark jobs report the peak RSS (VmHWM, reset before the job through
/proc/PID/clear_refs) of the driver Python process and of the Spark JVM, and
the peak, sampled every 50 ms, of the summed RSS of the JVM's Python workers
(an upper bound: forked workers share pages); the child processes report
their own VmHWM. ``other CPU s`` is the CPU time used during a measurement by
processes outside this benchmark (a disturbed figure shows there). Each Spark
job first runs once on a tiny lake so that JVM, Delta and Python worker
start-up are not charged to the first size. Temporary folders under /tmp are
deleted afterwards.

Results: a markdown table on stdout, JSON (figures + machine info) at --out,
and a markdown copy next to it (same name, ``.md``) with the command used.

    .venv/bin/python benchmarks/bench_partition.py [--sizes 1e6,1e7,5e7] [--parts 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import common
from common import (MB, RESULTS, Watch, dir_size, mb, median_run, run_worker, shell_command, start_spark, worker_main,
                    write_results)

log = logging.getLogger("bench_partition")
TARGET_EDGES_PER_S = 2_000_000
PHASES = ("setup", "assignment", "nodes", "edges", "stats", "commit")


# ---------------------------------------------------------------- child processes (common.run_worker)

def worker_metis(spec: dict) -> dict:
    """Read edges with pyarrow, build the symmetric CSR, run pymetis; figures as a dict."""
    import numpy as np
    import pyarrow.dataset as pds
    import pymetis

    from tma_spark.arrays import symmetric_csr  # numpy only: the child's memory stays its own

    n, k = spec["nodes"], spec["parts"]
    c0 = time.process_time()
    t0 = time.perf_counter()
    table = pds.dataset(spec["files"], format="parquet").to_table(columns=["src", "dst"])
    src = table.column("src").to_numpy()
    dst = table.column("dst").to_numpy()
    del table
    t1 = time.perf_counter()
    log.info("metis: read %d edges in %.1f s", len(src), t1 - t0)
    read_edges = len(src)
    xadj, adjncy = symmetric_csr(src, dst, n)
    del src, dst
    t2 = time.perf_counter()
    log.info("metis: CSR of %d nodes, %d adjacency entries in %.1f s", n, len(adjncy), t2 - t1)
    result = pymetis.part_graph(k, pymetis.CSRAdjacency(xadj, adjncy), options=pymetis.Options(seed=int(spec["seed"])))
    t3 = time.perf_counter()
    membership = np.asarray(result.vertex_part)
    sizes = np.bincount(membership, minlength=k)
    log.info("metis: %d parts in %.1f s, edge cut %d", k, t3 - t2, result.edge_cuts)
    undirected = len(adjncy) // 2
    return {"read_s": t1 - t0, "build_s": t2 - t1, "metis_s": t3 - t2, "cpu_s": time.process_time() - c0,
            "edges_read": read_edges,
            "adjacency_entries": int(len(adjncy)), "edge_cut": int(result.edge_cuts),
            "retention_unique_undirected": round(1 - result.edge_cuts / undirected, 6) if undirected else 0.0,
            "node_balance_max_over_mean": round(float(sizes.max() / sizes.mean()), 6)}


def worker_reference(spec: dict) -> dict:
    """One thread, pyarrow + numpy: stream edges, hash-partition, keep intra-part edges, write parquet by part."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tma_spark.arrays import splitmix64

    pa.set_cpu_count(1)  # and use_threads=False below: everything on this one thread
    k, seed = spec["parts"], spec["seed"]
    schema = pa.schema([("src", pa.int64()), ("dst", pa.int64())])
    out = Path(spec["out"])
    writers: dict[int, pq.ParquetWriter] = {}
    read = kept = loops = 0
    compute_s = 0.0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    try:
        for path in spec["files"]:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1 << 20, columns=["src", "dst"],
                                                           use_threads=False):
                c0 = time.perf_counter()
                src = batch.column(0).to_numpy()
                dst = batch.column(1).to_numpy()
                ps = splitmix64(src, seed) % np.uint64(k)
                same = src == dst
                loops += int(same.sum())
                keep = (ps == splitmix64(dst, seed) % np.uint64(k)) & ~same
                src, dst, ps = src[keep], dst[keep], ps[keep]
                order = np.argsort(ps, kind="stable")
                src, dst, ps = src[order], dst[order], ps[order]
                bounds = np.searchsorted(ps, np.arange(k + 1, dtype=np.uint64))
                compute_s += time.perf_counter() - c0
                read += len(batch)
                kept += len(src)
                for p in range(k):
                    lo, hi = bounds[p], bounds[p + 1]
                    if hi == lo:
                        continue
                    if p not in writers:
                        (out / f"part={p}").mkdir(parents=True, exist_ok=True)
                        writers[p] = pq.ParquetWriter(out / f"part={p}" / "part-0.parquet", schema)
                    writers[p].write_table(pa.table({"src": src[lo:hi], "dst": dst[lo:hi]}, schema=schema))
    finally:
        for w in writers.values():
            w.close()
    seconds = time.perf_counter() - t0
    log.info("pyarrow-1core: %d edges read, %d kept in %.1f s", read, kept, seconds)
    return {"inner_s": seconds, "compute_s": compute_s, "cpu_s": time.process_time() - cpu0,
            "edges_read": read, "edges_kept": kept,
            "self_loops_dropped": loops,
            "edge_retention": round(kept / (read - loops), 6) if read > loops else 0.0, "output_bytes": dir_size(out)}


# ---------------------------------------------------------------- Spark jobs

def _phases(marks: list, t_end: float) -> dict:
    """Seconds per phase, from the job's ``partition.phase`` events: each lasts until the next (or the end)."""
    times = [e.time for e in marks] + [t_end]
    return {e.fields["phase"]: times[i + 1] - times[i] for i, e in enumerate(marks)}


def run_partition(spark, lake: Path, out: Path, parts: int, seed: int, full_stats: str, jvm) -> dict:
    from tma_spark.events import Recorder
    from tma_spark.partition import PartitionConfig, partition

    shutil.rmtree(out, ignore_errors=True)
    with Recorder("partition.phase") as phases, Watch(jvm) as mem:
        t0 = time.perf_counter()
        stats = partition(spark, PartitionConfig(lake=str(lake), out=str(out), strategy="random", parts=parts,
                                                 seed=seed, full_stats=full_stats, overwrite=True))
        t1 = time.perf_counter()
    size = dir_size(out) if out.exists() else None
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": t1 - t0, "phases": _phases(phases.events, t1), "output_bytes": size,
            "edges_kept": stats["edges_kept"], "edge_retention": stats["edge_retention"],
            "node_balance": stats["node_balance"], "self_loops_dropped": stats["self_loops_dropped"],
            "duplicate_edges": stats.get("duplicate_edges"), "driver_peak_rss": mem.driver_peak,
            "jvm_peak_rss": mem.jvm_peak, "workers_peak_rss": mem.sampled_peak or None,
            "driver_cpu_s": mem.driver_cpu_s, "jvm_cpu_s": mem.jvm_cpu_s, "workers_cpu_s": mem.workers_cpu_s,
            "cpu_s": mem.driver_cpu_s + mem.jvm_cpu_s + mem.workers_cpu_s,
            "other_cpu_s": mem.other_cpu_s, "loadavg_1m_before": mem.loadavg}


def make_lake(spark, path: Path, edges: int, nodes: int, feature_dim: int, seed: int) -> float:
    from tma_spark.ingest import IngestConfig, ingest
    from tma_spark.ingest.synthetic import SyntheticConfig

    t0 = time.perf_counter()
    ingest(spark, IngestConfig(lake=str(path), synthetic=SyntheticConfig(nodes=nodes, edges=edges,
                                                                          feature_dim=feature_dim, seed=seed),
                               overwrite=True))
    return time.perf_counter() - t0


# ---------------------------------------------------------------- report

def _breakdown(r: dict) -> str:
    if r["status"] != "ok":
        return r.get("note", "")
    if r["method"].startswith("randomtma"):
        ph = r.get("phases") or {}
        return " + ".join(f"{k} {ph[k]:.1f}" for k in PHASES if k in ph)
    if r["method"] == "metis":
        return f"read {r['read_s']:.1f} + CSR {r['build_s']:.1f} + METIS {r['metis_s']:.1f}"
    return f"hash+filter+group {r['compute_s']:.1f}, read+write {r['inner_s'] - r['compute_s']:.1f}"


def _cpu(r: dict) -> str:
    if r.get("cpu_s") is None:
        return "-"
    if "jvm_cpu_s" in r:
        return f"{r['cpu_s']:.1f} ({r['jvm_cpu_s']:.1f}, {r['workers_cpu_s']:.1f})"
    return f"{r['cpu_s']:.1f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| edges | nodes | method | status | seconds | edges/s | breakdown (s) | retention "
             "| driver / process peak RSS MB | JVM peak RSS MB | workers peak RSS MB | CPU s: ours (JVM, workers) "
             "| other CPU s |",
             "|---:|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ok = r["status"] == "ok"
        sec = f"{r['seconds']:.1f}" if ok else (f">{r['seconds']:.0f}" if r["status"] == "timeout" else "-")
        eps = f"{r['edges_per_s']:,.0f}" if ok else "-"
        ret = r.get("edge_retention", r.get("retention_unique_undirected"))
        lines.append(
            f"| {r['edges']:,} | {r['nodes']:,} | {r['method']} | {r['status']} | {sec} | {eps} | {_breakdown(r)} "
            f"| {'-' if ret is None else f'{ret:.3f}'} | {mb(r.get('driver_peak_rss', r.get('peak_rss')))} "
            f"| {mb(r.get('jvm_peak_rss'))} | {mb(r.get('workers_peak_rss'))} | {_cpu(r)} "
            f"| {r.get('other_cpu_s', 0):.1f} |")
    return "\n".join(lines)


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def summarize(rows: list[dict], sizes: list[int]) -> tuple[dict, str]:
    """Target check at 5e7 and the METIS / RandomTMA time ratio per size."""
    by = {(r["edges"], r["method"]): r for r in rows}
    gap, lines = [], ["| edges | RandomTMA s | METIS total s (read + CSR + METIS) | METIS / RandomTMA "
                      "| pyarrow-1core s | RandomTMA edges/s / pyarrow-1core edges/s |",
                      "|---:|---:|---:|---:|---:|---:|"]
    for m in sizes:
        rt, me, ref = by.get((m, "randomtma")), by.get((m, "metis")), by.get((m, "pyarrow-1core"))
        rt_s = rt["seconds"] if rt and rt["status"] == "ok" else None
        me_s = me["seconds"] if me and me["status"] == "ok" else None
        ref_s = ref["seconds"] if ref and ref["status"] == "ok" else None
        ratio = me_s / rt_s if me_s and rt_s else None
        g = {"edges": m, "randomtma_s": rt_s, "metis_s": me_s, "metis_status": me["status"] if me else "not run",
             "metis_over_randomtma": ratio, "reference_s": ref_s,
             "randomtma_speed_over_reference": ref_s / rt_s if ref_s and rt_s else None}
        gap.append(g)
        me_txt = f"{me_s:.1f}" if me_s else (f"{g['metis_status']} (>{me['seconds']:.0f})"
                                             if me and me["status"] == "timeout" else g["metis_status"])
        lines.append(f"| {m:,} | {'-' if rt_s is None else f'{rt_s:.1f}'} | {me_txt} "
                     f"| {_x(ratio)} | {'-' if ref_s is None else f'{ref_s:.1f}'} "
                     f"| {_x(g['randomtma_speed_over_reference'])} |")
    big = by.get((50_000_000, "randomtma"))
    if big is None or big["status"] != "ok":
        target = {"edges": 50_000_000, "met": None, "edges_per_s": None,
                  "text": "Target of 2,000,000 edges/s at 5e7 edges: not measured in this run (5e7 not in --sizes)."}
    else:
        eps = big["edges_per_s"]
        met = eps >= TARGET_EDGES_PER_S
        target = {"edges": 50_000_000, "met": met, "edges_per_s": eps,
                  "text": (f"Target of {TARGET_EDGES_PER_S:,} edges/s at 5e7 edges: RandomTMA partitioned "
                           f"{eps:,.0f} edges/s ({big['seconds']:.1f} s), {eps / TARGET_EDGES_PER_S:.0%} of the "
                           f"target: {'MET' if met else 'NOT met'}.")}
    ratios = [(g["edges"], g["metis_over_randomtma"]) for g in gap if g["metis_over_randomtma"]]
    if len(ratios) >= 2:
        trend = "rises" if ratios[-1][1] > ratios[0][1] else "falls"
        gap_text = ("METIS total time / RandomTMA time: " + ", ".join(f"{r:.2f}x at {m:,.0f} edges" for m, r in ratios)
                    + f": the ratio {trend} with size ({ratios[0][1]:.2f}x to {ratios[-1][1]:.2f}x; above 1x METIS "
                    f"is the slower).")
    elif ratios:
        gap_text = f"METIS total time / RandomTMA time: {ratios[0][1]:.2f}x at {ratios[0][0]:,} edges."
    else:
        gap_text = "METIS total time / RandomTMA time: no size where both finished."
    unfinished = [f"{g['edges']:,} ({g['metis_status']})" for g in gap if g["metis_status"] not in ("ok",)]
    if unfinished:
        gap_text += " METIS did not finish at: " + ", ".join(unfinished) + "."
    return {"target": target, "gap": gap, "gap_text": gap_text}, "\n".join(lines)


def machine_info(spark) -> dict:
    """:func:`common.machine_info` plus the CPU model, library versions and Spark memory settings."""
    import numpy
    import pyarrow
    import pymetis

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   cpu)
    return {**common.machine_info(spark), "cpu": cpu, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
            "pymetis": getattr(pymetis, "version", "?"),
            "driver_memory": spark.sparkContext.getConf().get("spark.driver.memory", "?"),
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions")}


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e6,1e7,5e7", help="comma-separated edge counts (default: 1e6,1e7,5e7)")
    ap.add_argument("--avg-degree", type=float, default=10.0, help="edges per node: nodes = edges / this (default: 10)")
    ap.add_argument("--feature-dim", type=int, default=8, help="node feature dimension (default: 8)")
    ap.add_argument("--parts", type=int, default=4, help="K (default: 4)")
    ap.add_argument("--seed", type=int, default=0, help="graph and partition seed (default: 0)")
    ap.add_argument("--full-stats-max-edges", type=float, default=1e7,
                    help="also run the job with full_stats='on' up to this many edges (default: 1e7)")
    ap.add_argument("--metis-max-edges", type=float, default=None,
                    help="run METIS up to this many edges (default: every size)")
    ap.add_argument("--metis-timeout", type=float, default=900, help="seconds before METIS is killed (default: 900)")
    ap.add_argument("--reference-timeout", type=float, default=1800,
                    help="seconds before the pyarrow reference is killed (default: 1800)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs of each RandomTMA job; the table shows the median (default: 1)")
    ap.add_argument("--out", default=str(RESULTS / "partition_speed.json"), help="JSON results file; a .md copy goes beside it")
    ap.add_argument("--master", default="local[*]", help="Spark master (default: local[*])")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if worker_main({"metis": worker_metis, "reference": worker_reference}, argv):
        return
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    command = shell_command()
    spark, jvm = start_spark(args.master, "bench_partition")
    workdir = Path(tempfile.mkdtemp(prefix="bench_partition_", dir="/tmp"))
    rows, lakes = [], []
    k, seed = args.parts, args.seed
    try:
        log.info("warm-up: ingest and partition (full_stats off and on) of a tiny lake")
        make_lake(spark, workdir / "lake_warmup", 10_000, 1_000, args.feature_dim, seed)
        for fs_mode in ("off", "on"):
            run_partition(spark, workdir / "lake_warmup", workdir / "parts", k, seed, fs_mode, jvm)
        shutil.rmtree(workdir / "lake_warmup", ignore_errors=True)

        for m in sizes:
            n = max(int(m / args.avg_degree), 20)
            lake = workdir / f"lake_{m}"
            log.info("=== %d edges, %d nodes: writing the lake", m, n)
            ingest_s = make_lake(spark, lake, m, n, args.feature_dim, seed)
            from deltalake import DeltaTable  # torch-free: keeps the driver RSS honest

            files = DeltaTable(str(lake / "edges")).file_uris()  # local lake: plain paths
            lakes.append({"edges": m, "nodes": n, "ingest_s": ingest_s, "edge_files": len(files),
                          "edges_bytes": dir_size(lake / "edges"), "nodes_bytes": dir_size(lake / "nodes")})
            log.info("lake written in %.1f s: edges %.1f MB in %d files, nodes %.1f MB", ingest_s,
                     lakes[-1]["edges_bytes"] / MB, len(files), lakes[-1]["nodes_bytes"] / MB)

            modes = [("randomtma", "off")] + ([("randomtma+stats", "on")] if m <= args.full_stats_max_edges else [])
            for method, fs_mode in modes:
                runs = []
                for i in range(args.repeats):
                    log.info("%s: %d edges, run %d/%d", method, m, i + 1, args.repeats)
                    runs.append(run_partition(spark, lake, workdir / "parts", k, seed, fs_mode, jvm))
                    log.info("%s: %.1f s, %.0f edges/s, phases %s", method, runs[-1]["seconds"],
                             m / runs[-1]["seconds"],
                             {p: round(s, 1) for p, s in runs[-1]["phases"].items()})
                row = median_run(runs)
                rows.append({**row, "edges": m, "nodes": n, "method": method, "status": "ok", "full_stats": fs_mode,
                             "edges_per_s": m / row["seconds"]})

            spec = {"files": files, "nodes": n, "parts": k, "seed": seed}
            log.info("pyarrow-1core: %d edges", m)
            ref = run_worker(__file__, "reference", dict(spec, out=str(workdir / "ref_out")), workdir,
                             args.reference_timeout)
            shutil.rmtree(workdir / "ref_out", ignore_errors=True)
            ref_s = ref["inner_s"] if ref["status"] == "ok" else ref["wall_s"]  # without interpreter start-up
            rows.append({"edges": m, "nodes": n, "method": "pyarrow-1core", **ref, "seconds": ref_s,
                         "edges_per_s": m / ref_s if ref["status"] == "ok" else None})

            if args.metis_max_edges is None or m <= args.metis_max_edges:
                log.info("metis: %d edges, %d nodes, K=%d (timeout %.0f s)", m, n, k, args.metis_timeout)
                met = run_worker(__file__, "metis", spec, workdir, args.metis_timeout)
                total = met["read_s"] + met["build_s"] + met["metis_s"] if met["status"] == "ok" else met["wall_s"]
                rows.append({"edges": m, "nodes": n, "method": "metis", **met, "seconds": total,
                             "edges_per_s": m / total if met["status"] == "ok" else None})
                log.info("metis: %s, %.1f s", met["status"], total)
            shutil.rmtree(lake, ignore_errors=True)
        info = machine_info(spark)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        spark.stop()

    table = markdown_table(rows)
    summary, gap_table = summarize(rows, sizes)
    print(table)
    print()
    print(gap_table)
    print()
    print(summary["target"]["text"])
    print(summary["gap_text"])
    ram = info["total_ram_bytes"] / (1 << 30)
    lake_lines = "\n".join(f"| {x['edges']:,} | {x['nodes']:,} | {x['ingest_s']:.1f} | {x['edges_bytes'] / MB:,.1f} "
                           f"({x['edge_files']} files) | {x['nodes_bytes'] / MB:,.1f} |" for x in lakes)
    data = {"command": command, "machine": info, "args": vars(args), "lakes": lakes, "results": rows,
            "summary": summary}
    write_results(args.out, data, (
        f"# Partition speed: RandomTMA vs METIS vs a one-core pyarrow script\n\n"
        f"Command:\n\n```\n{command}\n```\n\n"
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {ram:.1f} GiB RAM, {info['platform']}; "
        f"Python {info['python']}, PySpark {info['pyspark']}, Java {info['java']}, pyarrow {info['pyarrow']}, "
        f"numpy {info['numpy']}, pymetis {info['pymetis']}; master {info['spark_master']} "
        f"(default parallelism {info['default_parallelism']}, driver memory {info['driver_memory']}, "
        f"shuffle partitions {info['shuffle_partitions']}); {info['date']}.\n\n"
        f"Synthetic lakes (Delta; nodes = edges / {args.avg_degree:g}, feature dim {args.feature_dim}), "
        f"K = {k}, seed {seed}, {args.repeats} run(s) per RandomTMA job (median seconds, max peak RSS).\n\n"
        f"**{summary['target']['text']}**\n\n**{summary['gap_text']}**\n\n"
        f"## Results\n\n{table}\n\n"
        f"* `randomtma`: `partition(spark, PartitionConfig(lake, out, strategy='random', parts={k}, "
        f"full_stats='off'))`; breakdown from the job's `partition.phase` events: setup (open lake, plan) + "
        f"assignment (write id, part) + nodes (write nodes with part) + edges (read, hash, filter, write "
        f"intra-part edges) + stats (per-part counts from the written tables) + commit (stats.json, "
        f"_tma_parts.json, stats.png, rename).\n"
        f"* `randomtma+stats`: the same with `full_stats='on'` (a shuffle of every edge for duplicates, "
        f"isolated nodes and degree quantiles).\n"
        f"* `pyarrow-1core`: one process, pyarrow limited to one thread: stream the edge parquet files, "
        f"splitmix64(id) mod K in numpy, keep intra-part non-loop edges, write parquet partitioned by part; "
        f"seconds from the first read to the last file closed (the child's start-up excluded).\n"
        f"* `metis`: child process: read edges with pyarrow, symmetric deduplicated CSR in numpy, "
        f"`pymetis.part_graph(K, CSRAdjacency(xadj, adjncy))`; seconds = read + CSR + METIS (the child's start-up "
        f"excluded); timeout {args.metis_timeout:.0f} s.\n"
        f"* edges/s = lake edges / seconds. Retention: intra-part share of non-loop edges (RandomTMA, from the "
        f"job's stats), of unique undirected edges (METIS, 1 - edge cut / edges). Peak RSS: VmHWM of the driver "
        f"Python process (Spark rows) or of the child process (pyarrow-1core, metis); JVM: VmHWM of the Spark "
        f"JVM; workers: peak summed RSS of the JVM's Python workers, sampled every 50 ms. Other CPU s: CPU "
        f"seconds used by processes outside the benchmark during the measurement (0 = undisturbed). CPU s, ours: "
        f"driver + JVM + the JVM's Python workers for the Spark rows (JVM and workers in brackets), the child "
        f"process's own CPU time for pyarrow-1core and metis; with {info['nproc']} cores, CPU s / seconds is the "
        f"number of cores kept busy. The RandomTMA job runs no Python code on the executors (hash and filter "
        f"are JVM expressions), so the workers RSS is that of the idle Python workers left by the lake's "
        f"ingest (the generator runs in them).\n\n"
        f"## METIS gap and reference speed\n\n{gap_table}\n\n"
        f"## Lakes\n\n| edges | nodes | ingest s | edges MB | nodes MB |\n|---:|---:|---:|---:|---:|\n{lake_lines}\n"))


if __name__ == "__main__":
    main()
