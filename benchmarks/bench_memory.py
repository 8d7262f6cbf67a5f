"""One ``tma-spark bench`` application, several seeds: does its memory grow from run to run?

Runs ``tma-spark bench`` once, through the real CLI, on a synthetic graph (default 10^6 nodes, 10^7 edges, 64
features): central and RandomTMA for ``--seeds`` seeds, all in one Spark application. After every run,
``bench`` records the resident memory of the driver process and of its child processes (in local mode the
Spark JVM and every Python worker), after the trainers dropped their parts (``train(release=True)``) and the
driver collected its garbage (``results.json``, ``runs[*].memory_after``). The first seed's figures are the
baseline; a later seed's growth over them is what this script reports, with the peak memory of the whole
application (sampled) and its wall time.

Run: ``python benchmarks/bench_memory.py --work DIR``. Results: ``benchmarks/results/bench_memory.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import Watch, run_cli, shell_command, tma_spark_cli, write_results  # noqa: E402

log = logging.getLogger("bench_memory")
GB = 1e9


def report(data: dict) -> str:
    runs = data["runs"]
    lines = ["# One bench application, several seeds: memory after each run", "",
             f"`tma-spark bench` on a synthetic graph of {data['nodes']:,} nodes, {data['edges']:,} edges and "
             f"{data['dim']} features, methods {data['methods']}, {data['seeds']} seeds, {data['budget']:g} s per "
             f"run, K = {data['parts']}, in one Spark application (`local[*]`, driver memory 4g) on "
             f"{data['cpus']} cores. Memory after each run, once its trainers dropped their parts and the "
             f"driver collected garbage; whole application wall time {data['wall_s']:.0f} s, peak of all its "
             f"processes together {data['peak_gb']:.1f} GB (`{data['command']}`).", "",
             "| run | method | seed | driver GB | child processes GB (JVM + Python workers) | largest child GB "
             "| test |", "|---:|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(runs, 1):
        m = r["memory_after"]
        lines.append(f"| {i} | {r['method']} | {r['seed']} | {m['driver_gb']:.2f} | {m['children_gb']:.2f} "
                     f"({m['children']}) | {m['largest_child_gb']:.2f} | {r['test']:.4f} |")
    lines += ["", f"Growth from the first seed's last run to the last seed's: driver {data['growth_driver_gb']:+.2f} "
              f"GB, child processes {data['growth_children_gb']:+.2f} GB."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench_memory")
    ap.add_argument("--nodes", type=float, default=1e6)
    ap.add_argument("--edges", type=float, default=1e7)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--methods", default="central,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_memory.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    lake, out = work / "lake", work / "bench"
    if not (lake / "_tma_lake.json").exists():
        run_cli("ingest", "--synthetic", "--nodes", str(int(args.nodes)), "--edges", str(int(args.edges)),
            "--feature-dim", str(args.dim), "--signal", "0.1", "--seed", "0", "--lake", str(lake), "--overwrite")
    bench = ["bench", "--lake", str(lake), "--out", str(out), "--methods", args.methods, "--seeds", str(args.seeds),
             "--budget", str(args.budget), "--parts", str(args.parts), "-T", "15", "--overwrite"]
    started = time.perf_counter()
    with Watch() as watch:  # the whole application: the CLI process and everything under it
        proc = tma_spark_cli(*bench)
        watch.sampled, watch.sampled_self = psutil.Process(proc.pid), True
        if proc.wait() != 0:
            raise SystemExit(f"tma-spark bench failed with exit status {proc.returncode}")
    wall = time.perf_counter() - started
    runs = json.loads((out / "results.json").read_text())["runs"]
    per_seed = [[r for r in runs if r["seed"] == s] for s in range(args.seeds)]
    first, last = per_seed[0][-1]["memory_after"], per_seed[-1][-1]["memory_after"]
    data = {"nodes": int(args.nodes), "edges": int(args.edges), "dim": args.dim, "methods": args.methods,
            "seeds": args.seeds, "budget": args.budget, "parts": args.parts, "cpus": os.cpu_count(), "wall_s": wall,
            "peak_gb": watch.sampled_peak / GB, "command": shell_command(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "growth_driver_gb": last["driver_gb"] - first["driver_gb"],
            "growth_children_gb": last["children_gb"] - first["children_gb"],
            "runs": [{k: r[k] for k in ("method", "seed", "test", "best_val", "rounds", "memory_after")} for r in runs]}
    write_results(args.out, data, report(data))
    print(report(data))


if __name__ == "__main__":
    main()
