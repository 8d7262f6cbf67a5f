"""``tma-spark bench``: every method on the same lake, model, hyper-parameters, budget and cores, in one run.

Methods: ``central`` (one trainer, whole graph), ``ddp`` (K synchronous data-parallel trainers on the
whole graph, gradients averaged every step through Spark's barrier allGather), ``psgd-pa`` (METIS parts, periodic averaging), ``llcg``
(psgd-pa plus server correction), ``random`` (RandomTMA) and ``super`` (SuperTMA); each trains for the same
``budget`` seconds with the same T, K, model and seed, once per seed, inside one Spark application, one
after the other (so they do not compete for cores). Central runs first for each seed: the target is
``target_fraction`` of the best validation metric it reaches with that seed.

Output in ``BENCH``: ``results.json`` (settings, machine, every run with its validation curve, the table,
the speed-ups), ``report.md`` and ``curves.png``; the runs' own folders are under ``BENCH/runs`` and the
partitions under ``BENCH/parts``. ``BENCH`` may be a local path or a store URI (``s3a://`` ...): every file
operation goes through :mod:`tma_spark.fs`.

``--resume`` keeps the seeds an earlier invocation with the same settings completed (``results.json``, or
``results.partial.json`` after a crash) and runs only the missing ones. ``benchmarks/run_suite.sh`` uses it to
run each seed in a fresh Spark application: memory that one application accumulates across runs (the driver's
full-graph evaluation, Python workers holding their last part) then goes back to the OS between seeds.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
from dataclasses import asdict, replace

from pyspark.sql import SparkSession

from .. import commits, fs
from ..claims import claiming
from ..errors import TmaSparkError
from ..outputs import BENCH_MARKER, check_replaceable
from .config import METHODS, PLAN, BenchConfig, previous_runs
from .report import aggregate, curves_figure, render_markdown, speedups, time_to_target

__all__ = ["BenchConfig", "bench", "METHODS"]

log = logging.getLogger(__name__)


def _machine() -> str:
    import psutil

    return (f"{platform.platform()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}")


def _parts(spark: SparkSession, cfg: BenchConfig, strategy: str, seed: int) -> str:
    from ..partition import PartitionConfig, partition

    label = f"super-{cfg.super_method}" if strategy == "super" else strategy
    path = fs.join(cfg.out, "parts", f"{label}-s{seed}")
    if not fs.exists(None, path):
        log.info("bench: partitioning (%s, K = %d, seed %d)", label, cfg.parts, seed)
        partition(spark, PartitionConfig(lake=cfg.lake, out=path, strategy=strategy, parts=cfg.parts, seed=seed,
                                         super_method=cfg.super_method))
    return path


def _one_run(spark: SparkSession, cfg: BenchConfig, method: str, seed: int) -> dict:
    from ..train import train

    strategy = PLAN[method][1]
    parts = _parts(spark, cfg, strategy, seed) if strategy else None
    out = fs.join(cfg.out, "runs", f"{method}-s{seed}")
    log.info("bench: %s, seed %d, %.0f s", method, seed, cfg.budget)
    summary = train(spark, cfg.train_config(method, parts, out, seed), release=True)  # the next run starts clean
    rows = [json.loads(line) for line in fs.read_text(None, fs.join(out, "metrics.jsonl")).splitlines()]
    memory = _memory_after_run()
    log.info("bench: after %s seed %d: driver %.2f GB, its child processes %.2f GB (largest %.2f GB)", method, seed,
             memory["driver_gb"], memory["children_gb"], memory["largest_child_gb"])
    return {"method": method, "seed": seed, "test": summary["test"], "best_val": summary["best_val"],
            "total_steps": summary["total_steps"], "rounds": summary["rounds"],
            "startup_seconds": summary["startup_seconds"], "wall_seconds": summary["wall_seconds"],
            "metric": summary["metric"], "curve": [(r["wall_seconds"], r["val"]) for r in rows],
            "memory_after": memory}


def _memory_after_run() -> dict:
    """Resident memory once a run is over (GB): this driver process, after a garbage collection and a heap
    trim, and its child processes (in local mode the Spark JVM and the Python workers it forked, so
    ``bench`` can show that one application's memory does not grow from run to run; on a cluster, the
    executors are not children and only the driver's figure means anything)."""
    import gc

    import psutil

    from ..train.executor import trim_heap

    gc.collect()
    trim_heap()
    me = psutil.Process()
    sizes = []
    for child in me.children(recursive=True):
        try:
            sizes.append(child.memory_info().rss)
        except psutil.Error:  # exited meanwhile
            pass
    return {"driver_gb": round(me.memory_info().rss / 1e9, 3), "children_gb": round(sum(sizes) / 1e9, 3),
            "largest_child_gb": round(max(sizes, default=0) / 1e9, 3), "children": len(sizes)}


@claiming("out", "tma-spark bench", local=True)  # one writer per benchmark folder
def bench(spark: SparkSession, cfg: BenchConfig, command: str = "") -> dict:
    """Run every method for every seed; write results.json, report.md and curves.png; return the results."""
    cfg.out = fs.qualify(cfg.out)
    kept = previous_runs(cfg) if cfg.resume else []
    final, work = cfg.out, cfg.out
    if fs.exists(None, cfg.out) and not cfg.resume:
        if not cfg.overwrite:
            raise TmaSparkError(f"Benchmark folder {cfg.out} already exists. Fix: pass --resume to add the seeds it "
                                "lacks, --overwrite to start again, or choose another --out.")
        check_replaceable(None, cfg.out, "benchmark")
        work = _staging_dir(cfg.out)  # the previous benchmark stays in place until the new one is complete
    from ..lake import open_lake

    lake = open_lake(spark, cfg.lake)
    fs.makedirs(work)
    fs.write_json(fs.join(work, BENCH_MARKER), {"settings": cfg.settings()})
    try:
        results = _run_all(spark, replace(cfg, out=work), lake, kept, {"command": command, "out": final})
        if work != final:
            commits.replace_dir(spark, work, final)
    except BaseException:
        if work != final:
            _remove(work)  # the previous benchmark was never touched
        raise
    log.info("bench: wrote %s/report.md, results.json and curves.png", final)
    return results


def _staging_dir(out: str) -> str:
    """Where ``--overwrite`` runs until the new benchmark is complete (a hidden sibling of ``out``); a
    leftover of a killed earlier attempt is cleared."""
    parent, name = out.rstrip("/").rsplit("/", 1)
    staged = fs.join(parent, f".{name}.next")
    _remove(staged)
    return staged


def _remove(path: str) -> None:
    """Delete folder ``path`` when it exists; a failure is logged, never raised (it is only a leftover, and
    this may run while another error is on its way up)."""
    try:
        fs.delete(None, path)
    except Exception as exc:  # noqa: BLE001 -- cleanup must not hide the error being handled
        log.warning("bench: could not delete %s (%s: %s); delete it yourself", path, type(exc).__name__, exc)


def _run_all(spark: SparkSession, cfg: BenchConfig, lake, kept: list, about: dict) -> dict:
    """Every missing seed of every method in ``cfg.out``, then results.json, report.md and curves.png;
    ``about`` (the command and the final folder) goes into the results' ``meta``."""
    order = ["central"] + [m for m in cfg.methods if m != "central"]
    runs = sorted(kept, key=lambda r: (r["seed"], order.index(r["method"])))
    done = {r["seed"] for r in runs}
    if done:
        log.info("bench: --resume keeps seed(s) %s from %s", ", ".join(map(str, sorted(done))), cfg.out)
    for seed in (s for s in range(cfg.seeds) if s not in done):
        for method in order:  # an interrupted earlier attempt at this seed
            _remove(fs.join(cfg.out, "runs", f"{method}-s{seed}"))
        seed_runs = [_one_run(spark, cfg, method, seed) for method in order]
        target = cfg.target_fraction * seed_runs[0]["best_val"]
        for run in seed_runs:
            run["target"] = target
            run["time_to_target"] = time_to_target(run["curve"], target)
        runs += seed_runs
        # progress survives a crash; --resume picks it up
        fs.write_json(fs.join(cfg.out, "results.partial.json"), {"settings": cfg.settings(), "runs": runs})
    rows = aggregate(runs)
    ups = speedups(rows)
    metric = runs[0]["metric"]
    dataset = lake.meta.source.get("dataset") or lake.path.rstrip("/").rsplit("/", 1)[-1]
    meta = {**asdict(cfg), **about, "dataset": dataset, "metric": metric, "machine": _machine(),
            "nodes": lake.meta.num_nodes, "edges": lake.meta.num_edges}
    results = {"meta": meta, "settings": cfg.settings(), "rows": rows, "speedups": ups, "runs": runs}
    fs.write_json(fs.join(cfg.out, "results.json"), results)
    fs.delete(None, fs.join(cfg.out, "results.partial.json"))
    fs.write_text(None, fs.join(cfg.out, "report.md"), render_markdown(rows, ups, meta))
    png = io.BytesIO()  # matplotlib writes local files or file objects; the folder may be on a store
    curves_figure(runs, metric, f"{meta['dataset']}: K = {cfg.parts}, T = {cfg.round_seconds} s").savefig(
        png, format="png", dpi=110)
    fs.write_bytes(None, fs.join(cfg.out, "curves.png"), png.getvalue())
    return results
