"""Label propagation speed: the built-in Spark implementation against the old one and a numpy floor.

On a Spark-generated synthetic graph (``--edges``, default 10^7; nodes = edges / 10, as ``bench_infer.py``
makes it; ``tma_spark.ingest`` of ``SyntheticConfig``), in one run:

* ``new``: :func:`tma_spark.partition.supernodes.label_propagation` (built-in, ``lpa_iter`` = ``--lpa-iter``,
  tolerance 0), each iteration written to a scratch folder; the time of each iteration comes from the
  ``partition.lpa_iteration`` events (``tma_spark.events``), the adjacency set-up (build, partition and cache
  the undirected edges) is the rest of its wall time;
* ``old``: the previous implementation (copied below as :func:`old_builtin_lpa`: every iteration computed
  twice, by ``count()`` and by ``localCheckpoint()``, and the adjacency reshuffled each time), for
  ``--old-iterations`` iterations (default 1, its first; 0 skips it); its time includes building its
  adjacency, as its first iteration always did;
* ``numpy``: a single-process numpy label propagation of exactly the same algorithm (the floor reference):
  the lake's edges read with pyarrow, a symmetric CSR built with ``tma_spark.arrays.symmetric_csr``, each
  iteration vectorized (sort of (node, neighbour label) keys, counts, the most frequent label per mover with
  ties to the smallest); it runs in a child process, so its peak memory is its own.

The communities of ``new`` are compared with numpy's after the same number of iterations, and those of
``old`` with numpy's after its iterations (``same communities``). Ratios: new/old and new/numpy seconds per
iteration. Memory: peak RSS (VmHWM) of the driver and of the JVM, the sampled peak of the JVM's Python
workers, and numpy's child VmHWM. Stage times come from Spark's event log (written under the work folder):
for each ``new`` iteration, each stage's wall seconds, task time, shuffle write and spill. Generated data
(the lake, the scratch folder, the event log) is deleted at the end.

    .venv/bin/python benchmarks/bench_lpa.py [--edges 1e7] [--lpa-iter 10] [--old-iterations 1]

Results: ``benchmarks/results/lpa.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from common import RESULTS, WorkersWatch, find_jvm, machine_info, mb, run_worker, spark_events, worker_main, \
    write_results

log = logging.getLogger("bench_lpa")

# -- numpy: the same algorithm in one process ---------------------------------------------------------------

_M64 = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                           0x27D4EB2F165667C5)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(33))) * np.uint64(_P2)
    h = (h ^ (h >> np.uint64(29))) * np.uint64(_P3)
    return h ^ (h >> np.uint64(32))


def mover_parity(ids: np.ndarray) -> np.ndarray:
    """``pmod(xxhash64(id, 'lpa'), 2)`` exactly as Spark computes it, vectorized: Spark's XXH64 of the long
    (seed 42), then of the UTF-8 bytes of ``'lpa'`` seeded with that hash. A node moves in iteration ``it``
    when its parity is ``it % 2``."""
    with np.errstate(over="ignore"):
        v = np.asarray(ids, dtype=np.int64).astype(np.uint64)
        h = np.full(v.shape, (42 + _P5 + 8) & _M64, dtype=np.uint64)
        h ^= _rotl(v * np.uint64(_P2), 31) * np.uint64(_P1)
        h = _rotl(h, 27) * np.uint64(_P1) + np.uint64(_P4)
        h = _fmix(h) + np.uint64((_P5 + 3) & _M64)  # then the 3 bytes of 'lpa', seeded with the long's hash
        for byte in b"lpa":
            h ^= np.uint64(byte * _P5 & _M64)
            h = _rotl(h, 11) * np.uint64(_P1)
        return (_fmix(h) & np.uint64(1)).astype(np.int8)


def _update(labels: np.ndarray, key: np.ndarray, n: int) -> int:
    """Give each mover the most frequent label among its neighbours (ties: the smallest), from the sorted
    ``mover * n + neighbour label`` keys; return how many movers changed label."""
    first = np.empty(len(key), dtype=bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(key)))
    node, label = np.divmod(key[starts], n)  # sorted by node, then label
    node_start = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    most = np.maximum.reduceat(counts, node_start)
    owner = np.repeat(np.arange(len(node_start)), np.diff(np.append(node_start, len(node))))
    top = np.flatnonzero(counts == most[owner])  # the most frequent labels, smallest first per node
    pick = top[np.r_[True, owner[top][1:] != owner[top][:-1]]]
    movers, best = node[pick], label[pick]
    changed = int(np.count_nonzero(labels[movers] != best))
    labels[movers] = best
    return changed


def numpy_lpa(xadj: np.ndarray, adjncy: np.ndarray, max_iter: int, tolerance: float = 0.0, keep_first=None):
    """Label propagation of :func:`tma_spark.partition.supernodes._builtin_lpa` on a symmetric CSR: returns
    (labels, per-iteration ``{"seconds", "changed"}``); ``keep_first``: a list that receives the labels after
    the first iteration."""
    n = len(xadj) - 1
    labels = np.arange(n, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(xadj))
    parity = mover_parity(np.arange(n))[rows]  # of each edge's receiving node
    iterations = []
    for it in range(max_iter):
        t0 = time.perf_counter()
        into = parity == it % 2
        key = rows[into] * n + labels[adjncy[into]]  # (mover, neighbour's label); rows are sorted
        key.sort()
        changed = _update(labels, key, n) if len(key) else 0  # (no key: no node of this half has neighbours)
        iterations.append({"seconds": time.perf_counter() - t0, "changed": changed})
        if it == 0 and keep_first is not None:
            keep_first.append(labels.copy())
        if changed <= tolerance * n:
            break
    return labels, iterations


def numpy_worker(spec: dict) -> dict:
    """Child process: read the lake's edges with pyarrow, build the CSR, run :func:`numpy_lpa`; the labels
    (final and after iteration 1) go to .npy files beside the result."""
    from tma_spark.arrays import symmetric_csr
    from tma_spark.train.graphdata import read_table

    t0 = time.perf_counter()
    edges = read_table(f"{spec['lake']}/edges", "delta", ["src", "dst"])
    src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
    del edges
    t1 = time.perf_counter()
    xadj, adjncy = symmetric_csr(src, dst, spec["nodes"])
    del src, dst
    t2 = time.perf_counter()
    first: list = []
    labels, iterations = numpy_lpa(xadj, adjncy, spec["lpa_iter"], keep_first=first)
    np.save(spec["labels"], labels)
    np.save(spec["labels_first"], first[0])
    return {"read_s": t1 - t0, "csr_s": t2 - t1, "directed_edges": int(len(adjncy)), "iterations": iterations}


# -- the previous Spark implementation (the baseline) -------------------------------------------------------

def old_builtin_lpa(spark, nodes, edges, max_iter: int):
    """``_builtin_lpa`` as it was before issue 18 (tma_spark/partition/supernodes.py at commit 9b94352)."""
    from pyspark.sql import functions as F

    from tma_spark.graphops.propagate import undirected_edges

    adj = undirected_edges(edges).cache()
    labels = nodes.select("id", F.col("id").alias("community")).localCheckpoint()
    for it in range(max_iter):
        counts = (adj.join(labels.withColumnRenamed("id", "src"), "src")
                  .groupBy(F.col("dst").alias("id"), "community").count())
        movers = F.pmod(F.xxhash64("id", F.lit("lpa")), F.lit(2)) == F.lit(it % 2)
        best = counts.where(movers).groupBy("id").agg(F.max_by("community", F.struct(F.col("count"), -F.col("community")))
                                        .alias("new"))
        new = (labels.join(best, "id", "left")
               .select("id", F.coalesce("new", "community").alias("community"), (F.col("new").isNotNull() &
                       (F.col("new") != F.col("community"))).alias("changed")))
        changed = new.where("changed").count()
        labels = new.select("id", "community").localCheckpoint()
        log.info("old label propagation iteration %d/%d: %d nodes changed community", it + 1, max_iter, changed)
        if changed == 0:
            break
    adj.unpersist()
    return labels


# -- measurement --------------------------------------------------------------------------------------------

def wait_for_no_workers(jvm, timeout: float = 60.0) -> None:
    """Wait until the Python workers of the ingest's session have exited (they linger a few seconds after
    ``spark.stop()``), so that their memory is not counted as the label propagation's."""
    deadline = time.monotonic() + timeout
    while jvm is not None and time.monotonic() < deadline:
        try:
            if all(p.status() == psutil.STATUS_ZOMBIE for p in jvm.children(recursive=True)):
                return
        except psutil.Error:  # a process vanished meanwhile
            pass
        time.sleep(0.5)


def communities(df, num_nodes: int) -> np.ndarray:
    """The ``(id, community)`` DataFrame as an array indexed by id."""
    table = df.toArrow()
    out = np.full(num_nodes, -1, dtype=np.int64)
    out[table.column("id").to_numpy()] = table.column("community").to_numpy()
    return out


def run_new(spark, lake, scratch: str, lpa_iter: int) -> tuple:
    from tma_spark.events import Recorder
    from tma_spark.partition.supernodes import label_propagation

    with Recorder("partition.lpa_iteration") as rec, WorkersWatch(find_jvm()) as watch:
        epoch = time.time() - time.perf_counter()
        t0 = time.perf_counter()
        result = label_propagation(spark, lake.nodes(), lake.edges(), lpa_iter, "builtin", scratch=scratch,
                                   num_edges=lake.meta.num_edges)
        wall = time.perf_counter() - t0
    labels = communities(result, lake.meta.num_nodes)
    iterations = [{"seconds": e.fields["seconds"], "changed": e.fields["changed"],
                   "end_epoch": epoch + e.time} for e in rec.events]
    row = {"wall_s": wall, "setup_s": wall - sum(i["seconds"] for i in iterations), "start_epoch": epoch + t0,
           "partitions": rec.events[0].fields["partitions"] if rec.events else None, "iterations": iterations,
           "driver_peak_rss": watch.driver_peak, "jvm_peak_rss": watch.jvm_peak,
           "workers_peak_rss": watch.sampled_peak or None, "other_cpu_s": watch.other_cpu_s}
    return row, labels


def run_old(spark, lake, iterations: int) -> tuple:
    with WorkersWatch(find_jvm()) as watch:
        t0 = time.perf_counter()
        result = old_builtin_lpa(spark, lake.nodes(), lake.edges(), iterations)
        wall = time.perf_counter() - t0
    labels = communities(result, lake.meta.num_nodes)
    row = {"wall_s": wall, "iterations": iterations, "seconds_per_iteration": wall / iterations,
           "driver_peak_rss": watch.driver_peak, "jvm_peak_rss": watch.jvm_peak,
           "workers_peak_rss": watch.sampled_peak or None, "other_cpu_s": watch.other_cpu_s}
    return row, labels


def stage_profile(event_dir: str, start: float, row: dict) -> list:
    """Spark's event log: the stages that completed during each ``new`` iteration (by completion time), with
    their wall seconds, summed task seconds, shuffle written (records, bytes) and spill."""
    stages = []
    for event in spark_events(event_dir, "SparkListenerStageCompleted"):
        info = event["Stage Info"]
        acc = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}
        metric = lambda name: int(acc.get(f"internal.metrics.{name}", 0) or 0)  # noqa: E731
        stages.append({"stage": info["Stage ID"], "tasks": info["Number of Tasks"],
                       "end": info.get("Completion Time", 0) / 1000.0,
                       "wall_s": (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000.0,
                       "task_s": metric("executorRunTime") / 1000.0, "cpu_s": metric("executorCpuTime") / 1e9,
                       "shuffle_write_records": metric("shuffle.write.recordsWritten"),
                       "shuffle_write_bytes": metric("shuffle.write.bytesWritten"),
                       "spill_bytes": metric("diskBytesSpilled")})
    stages.sort(key=lambda s: s["end"])
    bounds = [start + row["setup_s"]] + [i["end_epoch"] for i in row["iterations"]]
    out = [{"phase": "setup", "stages": [s for s in stages if start <= s["end"] <= bounds[0]]}]
    for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]), 1):
        out.append({"phase": f"iteration {k}", "stages": [s for s in stages if lo < s["end"] <= hi]})
    for phase in out:
        for s in phase["stages"]:
            del s["end"]
    return out


def same(a: np.ndarray, b: np.ndarray) -> dict:
    differ = int(np.count_nonzero(a != b))
    return {"same": differ == 0, "nodes_differing": differ}


def _mean_seconds(iterations: list) -> float:
    return sum(i["seconds"] for i in iterations) / len(iterations)


def _same_cell(check: dict | None) -> str:
    if not check or check["same"] is None:
        return "not compared"
    return "yes" if check["same"] else f"NO ({check['nodes_differing']:,} nodes differ)"


def _peaks(row: dict) -> str:
    return f"{mb(row['driver_peak_rss'])} / {mb(row['jvm_peak_rss'])} / {mb(row['workers_peak_rss'])}"


def report(data: dict) -> str:
    """The results as markdown."""
    g, new, old, ref, r, m = data["graph"], data["new"], data["old"], data["numpy"], data["ratios"], data["machine"]
    its = new["iterations"]
    ref_its = ref["iterations"] if ref["status"] == "ok" else []
    lines = ["# Label propagation: the built-in Spark implementation, its predecessor and a numpy floor", "",
             f"Command: `{data['command']}`  ",
             f"Machine: {m['nproc']} cores, {m['total_ram_bytes'] / 2 ** 30:.0f} GiB, Spark {m['spark_master']} "
             f"(pyspark {m['pyspark']}), {m['date']}. Graph: synthetic, {g['nodes']:,} nodes, {g['edges']:,} lake "
             f"edges ({g['directed_edges']:,} directed edges without self-loops and duplicates), ingested in "
             f"{g['ingest_s']:.0f} s. One algorithm everywhere: semi-synchronous by the hash parity of the id, "
             "ties to the smallest label, at most `--lpa-iter` iterations or until no node changes.", "",
             "| implementation | iterations | s per iteration (mean) | first iteration s | set-up s | total s | "
             "peak MB (driver / JVM / workers) | same communities as numpy |",
             "|---|---:|---:|---:|---:|---:|---|---|",
             f"| new (Spark, {new['partitions']} partitions) | {len(its)} | {_mean_seconds(its):.1f} | "
             f"{its[0]['seconds']:.1f} | {new['setup_s']:.1f} | {new['wall_s']:.1f} | {_peaks(new)} | "
             f"{_same_cell(data['check'].get('new_vs_numpy'))} |"]
    if old:
        old_first = f"{old['wall_s']:.1f}" if old["iterations"] == 1 else "-"
        lines.append(f"| old (Spark), first {old['iterations']} iteration(s) only | {old['iterations']} | "
                     f"{old['seconds_per_iteration']:.1f} | {old_first} | "
                     f"(inside its first iteration) | {old['wall_s']:.1f} | {_peaks(old)} | "
                     f"{_same_cell(data['check'].get('old_vs_numpy'))} (after as many iterations) |")
    if ref_its:
        lines.append(f"| numpy, 1 process | {len(ref_its)} | {_mean_seconds(ref_its):.2f} | "
                     f"{ref_its[0]['seconds']:.2f} | {ref['read_s'] + ref['csr_s']:.1f} (read {ref['read_s']:.1f}, "
                     f"CSR {ref['csr_s']:.1f}) | {ref['wall_s']:.1f} | {mb(ref['peak_rss'])} (its process) | "
                     "reference |")
    else:
        lines.append(f"| numpy, 1 process | {ref['status']} ({ref.get('note', '')}) | - | - | - | - | - | - |")
    lines += ["", f"CPU seconds used by other processes meanwhile (a disturbed figure shows here): new "
              f"{new['other_cpu_s']:.0f}, old {old['other_cpu_s'] if old else 0:.0f}, numpy {ref['other_cpu_s']:.0f}.",
              "", "Ratios:", ""]
    if "new_over_old_first" in r:
        met = r["new_over_old_first"] <= 0.2 and _mean_seconds(its) < 40
        lines += [f"* new / old, first iteration: {r['new_over_old_first']:.3f} ({1 / r['new_over_old_first']:.1f}x "
                  f"faster); with the new set-up (adjacency built and cached) added to its first iteration, as the "
                  f"old first iteration includes building its adjacency: {r['new_with_setup_over_old_first']:.3f} "
                  f"({1 / r['new_with_setup_over_old_first']:.1f}x faster)",
                  f"* new mean iteration / old first iteration: {r['new_over_old_mean']:.3f}",
                  f"* target (issue 18): an iteration at 10^7 edges under 40 s and at least 5x faster: "
                  f"{'met' if met else 'NOT met'}"]
    if "new_over_numpy" in r:
        lines.append(f"* new / numpy, mean iteration: {r['new_over_numpy']:.1f}x (target: within 20x: "
                     f"{'met' if r['new_over_numpy'] <= 20 else 'NOT met'})")
    lines += ["", "Per iteration:", "", "| iteration | changed (new) | new s | numpy s | changed (numpy) |",
              "|---:|---:|---:|---:|---:|"]
    for k, it in enumerate(its):
        ref_cells = f"{ref_its[k]['seconds']:.2f} | {ref_its[k]['changed']:,}" if k < len(ref_its) else "- | -"
        lines.append(f"| {k + 1} | {it['changed']:,} | {it['seconds']:.1f} | {ref_cells} |")
    lines += ["", "Stages of the new implementation (Spark's event log): stage id, wall s, summed task s "
              "(CPU s), shuffle written (records / MB), spill:", "", "| phase | stages |", "|---|---|"]
    for phase in data["stages"]:
        cells = "; ".join(f"{s['stage']}: {s['wall_s']:.1f} s, {s['task_s']:.1f} ({s['cpu_s']:.1f}) task-s, "
                          f"{s['shuffle_write_records']:,} / {mb(s['shuffle_write_bytes'], 1)}"
                          + (f", spill {mb(s['spill_bytes'])} MB" if s["spill_bytes"] else "")
                          for s in phase["stages"] if s["wall_s"] >= 0.05)
        lines.append(f"| {phase['phase']} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if worker_main({"numpy": numpy_worker}):
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=float, default=1e7, help="lake edges (nodes = edges / 10)")
    ap.add_argument("--lpa-iter", type=int, default=10)
    ap.add_argument("--old-iterations", type=int, default=1, help="iterations of the old implementation (0: skip)")
    ap.add_argument("--numpy-timeout", type=float, default=1800.0)
    ap.add_argument("--out", default=str(RESULTS / "lpa.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from tma_spark.ingest import IngestConfig, ingest
    from tma_spark.ingest.synthetic import SyntheticConfig
    from tma_spark.lake import open_lake
    from tma_spark.session import get_spark

    work = Path(tempfile.mkdtemp(prefix="bench_lpa_"))
    events_dir = work / "eventlog"
    events_dir.mkdir()
    try:
        edges = int(args.edges)
        spark = get_spark(master="local[*]", app_name="bench_lpa", quiet=True)
        t0 = time.perf_counter()
        ingest(spark, IngestConfig(lake=str(work / "lake"), synthetic=SyntheticConfig(
            nodes=edges // 10, edges=edges, communities=10, feature_dim=8, seed=0)))
        ingest_s = time.perf_counter() - t0
        # A fresh session for the measurements: no Python workers or cached blocks left from the ingest.
        spark.stop()
        spark = get_spark(master="local[*]", app_name="bench_lpa", quiet=True,
                          conf={"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file://{events_dir}",
                                "spark.eventLog.compress": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        wait_for_no_workers(find_jvm())
        lake = open_lake(spark, str(work / "lake"))
        graph = {"nodes": lake.meta.num_nodes, "edges": lake.meta.num_edges, "feature_dim": 8, "ingest_s": ingest_s}
        log.info("lake: %s", graph)
        new, new_labels = run_new(spark, lake, str(work / "scratch"), args.lpa_iter)
        log.info("new: %s", {k: v for k, v in new.items() if k != "iterations"})
        shutil.rmtree(work / "scratch", ignore_errors=True)
        old = old_labels = None
        if args.old_iterations > 0:
            old, old_labels = run_old(spark, lake, args.old_iterations)
            log.info("old: %s", old)
        spec = {"lake": str(work / "lake"), "nodes": lake.meta.num_nodes, "lpa_iter": len(new["iterations"]),
                "labels": str(work / "numpy_labels.npy"), "labels_first": str(work / "numpy_first.npy")}
        ref = run_worker(__file__, "numpy", spec, work, timeout=args.numpy_timeout)
        log.info("numpy: %s", {k: v for k, v in ref.items() if k != "iterations"})
        check = {}
        if ref["status"] == "ok":
            graph["directed_edges"] = ref["directed_edges"]
            check["new_vs_numpy"] = same(new_labels, np.load(spec["labels"]))
            if old is not None and old["iterations"] == 1:
                check["old_vs_numpy"] = same(old_labels, np.load(spec["labels_first"]))
            elif old is not None:
                check["old_vs_numpy"] = {"same": None, "nodes_differing": None}
        machine = machine_info(spark)
        spark.stop()  # (flushes and closes the event log)
        stages = stage_profile(str(events_dir), new["start_epoch"], new)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    graph.setdefault("directed_edges", 0)
    its = new["iterations"]
    ratios = {}
    if old is not None:
        ratios["new_over_old_mean"] = _mean_seconds(its) / old["seconds_per_iteration"]
        if old["iterations"] == 1:  # (its time is its first iteration's, adjacency included)
            ratios.update(new_over_old_first=its[0]["seconds"] / old["wall_s"],
                          new_with_setup_over_old_first=(its[0]["seconds"] + new["setup_s"]) / old["wall_s"])
    if ref["status"] == "ok":
        ratios["new_over_numpy"] = _mean_seconds(its) / _mean_seconds(ref["iterations"])
    command = "python benchmarks/bench_lpa.py " + " ".join(sys.argv[1:])
    data = {"command": command, "args": vars(args), "machine": machine, "graph": graph, "new": new, "old": old,
            "numpy": ref, "check": check, "ratios": ratios, "stages": stages}
    text = report(data)
    print(text)
    write_results(args.out, data, text)


if __name__ == "__main__":
    main()
