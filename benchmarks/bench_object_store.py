"""The same training run with the lake on local disk and on a loopback S3 server: what object storage costs.

In one run (one process, one Spark session: this machine is noisy, so both arms share its state), on one
dataset (default Amazon Computers), for each arm:

* ``local``: ingest and partition (K RandomTMA parts) into a local temporary folder, train with the run
  folder there too;
* ``s3``: the same with lake, partitions and run folder on ``s3a://lake/bench/...``, served by moto's S3
  server on loopback (tests/s3server.py): Spark's s3a connector for the Spark stages, pyarrow for the trainers'
  part reads and the driver's run-folder writes.

Training is ``--mode tma`` with bench_train.py's default model and settings, T = 10 s, a 60 s budget, seed 0.
Figures per arm: ingest and partition seconds; each trainer's part load time (its first load, in the warm-up
stage, and every reload in a round: a trainer reloads when its task lands on a Python worker that holds
another part); mean and max round overhead (round wall time minus T); startup seconds; the train call's and the
training loop's wall time; rounds; test accuracy; peak RSS of the driver and the JVM. Before the arms, an
untimed warm-up run (cora, local) starts the JVM's code paths and the Python workers, so that neither arm pays
them alone. Results: ``benchmarks/results/object_store.{md,json}``.

    .venv/bin/python benchmarks/bench_object_store.py [--dataset amazon_computers] [--arms local,s3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from common import RESULTS, Watch, find_jvm, machine_info, mb, shell_command, write_results

REPO = Path(__file__).resolve().parents[1]
S3_ROOT = "s3a://lake/bench"
#: A load shorter than this is the worker's cached part (microseconds); any real read takes tens of ms.
RELOAD_SECONDS = 0.01
log = logging.getLogger("bench_object_store")


#: The run both arms make (issue 17): K parts, T, the training budget (s), and bench_train.py's model defaults.
SETTINGS = {"dataset": "amazon_computers", "parts": 4, "round_seconds": 10.0, "budget": 60.0, "model": "sage",
            "lr": 0.005, "seed": 0}


def parse_args() -> argparse.Namespace:
    """The command line: each of :data:`SETTINGS` may be changed (for a quick try), the arms and the warm-up."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in SETTINGS.items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    ap.add_argument("--data-dir", default=None, help="folder of the named datasets (default: ../shared/datasets)")
    ap.add_argument("--arms", default="local,s3", help="comma-separated, in the order they run: local, s3")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    return ap.parse_args()


def pipeline(spark, root: str, args, dataset: str, max_rounds: Optional[int] = None) -> dict:
    """Ingest ``dataset``, partition it and train under ``root`` (local folder or s3a:// URI); wall seconds of
    each stage, the summary (with each trainer's first load, in the warm-up stage) and the metrics rows (read back through tma_spark.fs)."""
    from tma_spark import fs
    from tma_spark.ingest import IngestConfig, ingest
    from tma_spark.partition import PartitionConfig, partition
    from tma_spark.train import TrainConfig, train

    lake, parts, run = fs.join(root, "lake"), fs.join(root, "parts"), fs.join(root, "run")
    t0 = time.perf_counter()
    ingest(spark, IngestConfig(lake=lake, dataset=dataset, data_dir=args.data_dir, split_seed=args.seed))
    t1 = time.perf_counter()
    pstats = partition(spark, PartitionConfig(lake=lake, out=parts, parts=args.parts, seed=args.seed))
    t2 = time.perf_counter()
    train(spark, TrainConfig(lake=lake, partitions=parts, out=run, mode="tma", model=args.model, lr=args.lr,
                             round_seconds=args.round_seconds, time_limit=args.budget, seed=args.seed,
                             max_rounds=max_rounds))
    t3 = time.perf_counter()
    rows = [json.loads(line) for line in fs.read_text(None, fs.join(run, "metrics.jsonl")).splitlines() if line]
    return {"ingest_seconds": t1 - t0, "partition_seconds": t2 - t1, "train_call_seconds": t3 - t2,
            "edge_retention": pstats["edge_retention"], "summary": json.loads(fs.read_text(None, fs.join(run, "summary.json"))), "rows": rows}


def figures(out: dict, T: float) -> dict:
    """One arm's figures from what :func:`pipeline` returned."""
    rows, summary = out["rows"], out["summary"]
    over = [r["overhead_seconds"] for r in rows]
    reloads = [{"round": r["round"], "part": p, "seconds": s} for r in rows
               for p, s in enumerate(r["load_seconds"]) if s is not None and s >= RELOAD_SECONDS]
    first = [s for s in summary["startup_load_seconds"] if s is not None]
    return {
        "ingest_seconds": out["ingest_seconds"], "partition_seconds": out["partition_seconds"],
        "startup_seconds": summary["startup_seconds"], "train_call_seconds": out["train_call_seconds"],
        "training_loop_seconds": summary["wall_seconds"],
        "outside_rounds_seconds": summary["wall_seconds"] - sum(r["round_wall_seconds"] for r in rows),
        "first_load_seconds": summary["startup_load_seconds"],
        "first_load_mean_seconds": statistics.mean(first) if first else None,
        "reloads": reloads, "reload_count": len(reloads),
        "reload_mean_seconds": statistics.mean(r["seconds"] for r in reloads) if reloads else None,
        "overhead_mean_seconds": statistics.mean(over) if over else None,
        "overhead_max_seconds": max(over) if over else None,
        "overhead_mean_fraction_of_T": statistics.mean(over) / T if over else None,
        "overhead_max_fraction_of_T": max(over) / T if over else None,
        "rounds": summary["rounds"], "test_acc": summary["test"], "best_val_acc": summary["best_val"],
        "total_steps": summary["total_steps"], "edge_retention": out["edge_retention"],
        "rounds_detail": [{k: r[k] for k in ("round", "wall_seconds", "round_wall_seconds", "overhead_seconds",
                                             "stage_seconds", "driver_seconds", "load_seconds", "steps")}
                          for r in rows],
    }


def run_arm(spark, arm: str, args, jvm) -> dict:
    """Run the pipeline for ``arm`` under a fresh root, with its memory watched; delete its data afterwards."""
    from tma_spark import fs

    root = S3_ROOT if arm == "s3" else tempfile.mkdtemp(prefix="bench_object_store_")
    log.info("arm %s: root %s", arm, root)
    try:
        with Watch(jvm) as watch:
            out = pipeline(spark, root, args, args.dataset)
    finally:
        fs.delete(None, root)
    return {**figures(out, args.round_seconds), "root": root, "driver_peak_rss": watch.driver_peak,
            "jvm_peak_rss": watch.jvm_peak, "workers_peak_rss": watch.sampled_peak or None}


def warm_up(spark, args) -> None:
    """An untimed short run (cora, local, one round) so that the JVM's code paths and the Python workers
    (torch imported) are started before either arm, not charged to the first."""
    from tma_spark import fs

    root = tempfile.mkdtemp(prefix="bench_object_store_warmup_")
    log.info("warm-up run (cora, one round; not timed)")
    try:
        pipeline(spark, root, argparse.Namespace(**{**vars(args), "round_seconds": 1.0, "budget": 5.0}), "cora",
                 max_rounds=1)
    finally:
        fs.delete(None, root)


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(a, b) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def report(results: dict, args, machine: dict, command: str) -> str:
    """The markdown report: settings, the figures of each arm as rows, and s3/local for each."""
    arms = list(results)
    T = args.round_seconds
    table = [("ingest (s)", "ingest_seconds", ".1f"), ("partition (s)", "partition_seconds", ".1f"),
             ("train call, whole (s)", "train_call_seconds", ".1f"),
             ("startup: warm-up stage (s)", "startup_seconds", ".1f"),
             ("training loop (s)", "training_loop_seconds", ".1f"),
             ("driver time outside rounds (s)", "outside_rounds_seconds", ".2f")]
    rows = [(label, [results[a][key] for a in arms], fmt) for label, key, fmt in table]
    rows += [(f"first part load, trainer {p} (s)", [results[a]["first_load_seconds"][p] for a in arms], ".3f")
             for p in range(args.parts)]
    rows += [("part reloads in rounds (count)", [results[a]["reload_count"] for a in arms], "d"),
             ("part reload, mean (s)", [results[a]["reload_mean_seconds"] for a in arms], ".3f"),
             ("round overhead, mean (s)", [results[a]["overhead_mean_seconds"] for a in arms], ".3f"),
             ("round overhead, mean (% of T)", [_pct(results[a]["overhead_mean_fraction_of_T"]) for a in arms], ".2f"),
             ("round overhead, max (s)", [results[a]["overhead_max_seconds"] for a in arms], ".3f"),
             ("round overhead, max (% of T)", [_pct(results[a]["overhead_max_fraction_of_T"]) for a in arms], ".2f"),
             ("rounds", [results[a]["rounds"] for a in arms], "d"),
             ("total steps", [results[a]["total_steps"] for a in arms], ",d"),
             ("test acc (best val round)", [results[a]["test_acc"] for a in arms], ".4f"),
             ("driver peak RSS (MB)", [_mb(results[a]["driver_peak_rss"]) for a in arms], ",.0f"),
             ("JVM peak RSS (MB)", [_mb(results[a]["jvm_peak_rss"]) for a in arms], ",.0f"),
             ("Python workers peak RSS, summed (MB)", [_mb(results[a]["workers_peak_rss"]) for a in arms], ",.0f")]
    ratio = "local" in arms and "s3" in arms
    s3, local = (arms.index("s3"), arms.index("local")) if ratio else (0, 0)
    head = "| figure | " + " | ".join(arms) + (" | s3 / local |" if ratio else " |")
    lines = [f"# Training with the lake on local disk and on a loopback S3 server ({args.dataset})", "",
             f"Command: `{command}`  ",
             f"Machine: {machine['nproc']} cores, {mb(machine['total_ram_bytes'])} MB RAM, {machine['platform']}, "
             f"Python {machine['python']}, PySpark {machine['pyspark']}, Java {machine['java']}, master "
             f"{machine['spark_master']}; {machine['date']}.  ",
             f"Settings: K = {args.parts} RandomTMA parts (edge retention "
             f"{results[arms[0]]['edge_retention']:.3f}), --mode tma, model {args.model}, hidden 256, lr {args.lr}, "
             f"T = {T:g} s, training budget {args.budget:g} s, seed {args.seed}. Arms ran in the order "
             f"{', '.join(arms)} in one Spark session"
             + ("" if args.no_warmup else ", after an untimed warm-up run (cora) that started the JVM's code paths "
                                          "and the Python workers") + ".", "",
             "The S3 server is moto's (`moto_server`, tests/s3server.py) on loopback: network latency is near "
             "zero and bandwidth is memory speed, so the s3 arm measures the client path (Spark's s3a connector, "
             "pyarrow's S3 client, request signing, HTTP, one PUT per file, copy-based commits), not S3's "
             "latency or bandwidth. A trainer's first load happens in the warm-up stage (part of startup); a "
             f"reload (load of {RELOAD_SECONDS:g} s or more in a round) happens when its task lands on a Python "
             "worker that holds another part; it comes out of the trainer's round (it trains for T minus the load), "
             "so reloads cost steps rather than round overhead. Round overhead = round wall time minus the round's seconds; "
             "\"driver time outside rounds\" (checkpoint writes, the last evaluation) = training loop minus the "
             "rounds' wall time.", "", head, "|---|" + "---:|" * (len(arms) + ratio)]
    for label, values, fmt in rows:
        cells = [_cell(v, fmt) for v in values]
        lines.append(f"| {label} | " + " | ".join(cells) + (f" | {_ratio(values[s3], values[local])} |" if ratio
                                                             else " |"))
    if ratio:
        lines += ["", _reload_note(results)]
    return "\n".join(lines) + "\n"


def _pct(fraction):
    return None if fraction is None else 100 * fraction


def _mb(n):
    return None if n is None else n / (1 << 20)


def _reload_note(results: dict) -> str:
    """Which parts reloaded in which rounds, per arm (they differ by chance: Spark places tasks on workers)."""
    parts = []
    for arm, r in results.items():
        where = ", ".join(f"r{x['round']}p{x['part']} {x['seconds']:.2f} s" for x in r["reloads"]) or "none"
        parts.append(f"{arm}: {where}")
    return "Reloads (round, part, seconds): " + "; ".join(parts) + "."


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TMA_SPARK_MASTER", f"local[{max(args.parts, os.cpu_count() or 1)}]")
    sys.path.insert(0, str(REPO / "tests"))
    from s3server import start_s3_server

    from tma_spark.session import get_spark

    arms = args.arms.split(",")
    unknown = sorted(set(arms) - {"local", "s3"})
    if unknown:
        raise SystemExit(f"--arms {args.arms}: unknown arm(s) {unknown}. Fix: use local and/or s3.")
    server = start_s3_server(buckets=("lake",))
    try:
        log.info("S3 server on %s", server.endpoint)
        spark = get_spark(conf=server.spark_conf(), object_store=True, app_name="bench_object_store", quiet=True)
        jvm = find_jvm()
        machine = machine_info(spark)
        if not args.no_warmup:
            warm_up(spark, args)
        results = {arm: run_arm(spark, arm, args, jvm) for arm in arms}
        spark.stop()
    finally:
        server.stop()
    command = shell_command()
    text = report(results, args, machine, command)
    print(text)
    write_results(RESULTS / "object_store.json", {"args": vars(args), "command": command, "machine": machine,
                                                 "s3_server": "moto_server on 127.0.0.1", "results": results},
                  text)


if __name__ == "__main__":
    main()
