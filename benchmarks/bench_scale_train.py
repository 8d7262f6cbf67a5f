"""The whole pipeline at 10^8 edges on this machine, through the real CLI with default settings.

On the synthetic graph of ``tma-spark ingest --synthetic`` (default 10^7 nodes, 10^8 edges, 10 communities,
homophily 0.8, 64 features, ``--signal 0.1``), one stage after the other, each a ``tma-spark`` command as a
new user would type it (no memory flags):

1. ``ingest`` the graph into a Delta lake;
2. ``partition`` it with RandomTMA into K = ``--parts`` parts;
3. ``train`` TMA: K trainers, neighbour-sampled, rounds of T = ``--round-seconds``, ``--budget`` seconds,
   evaluation as the defaults choose it (sampled above ``--eval-max-gb``);
4. ``train --mode central``: the baseline, measured in the same run: one trainer on the whole graph with the
   same model, sampler, round length, budget and evaluation sample;
5. ``infer``: exact inference of TMA's best model on every node (exact validation and test accuracy in
   ``RUN/eval.json``). The parts are deleted first: the message shuffle at 10^8 edges needs the disk.

Per stage: wall seconds and the peak memory of the driver's Python process, the driver's JVM (Spark's local
mode: the one JVM) and the largest of the JVM's Python workers, sampled every 0.2 s over the command's
process tree (the Python and JVM figures are their kernel peak, VmHWM). Per training: part loads per
trainer, round overhead (round wall time minus T), per-trainer part load time and peak, validation
accuracy over time, time to 98% of central's best validation accuracy, and the test accuracy at the best
validation round.

    python benchmarks/bench_scale_train.py --work /work/scale_train        # about 90 minutes at 10^8 edges

Each stage's figures are written as soon as it ends (``--stages`` runs some again and keeps the others);
results: ``benchmarks/results/scale_train.{md,json}`` (``--out``). The work folder is deleted at the end
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, dir_size, peak_rss, shell_command, tma_spark_cli, write_results  # noqa: E402

log = logging.getLogger("bench_scale_train")
GB = 1 << 30
STAGES = ("ingest", "partition", "tma", "central", "infer")
#: The share of central's best validation accuracy whose first reach is timed for both trainings.
TARGET_SHARE = 0.98


class TreeWatch:
    """Peak memory of one ``tma-spark`` command while it runs: its own Python process and the Spark JVM it
    starts (their VmHWM, read every ``period`` seconds while they live), and the JVM's Python workers (RSS,
    the largest single one and the largest sum)."""

    def __init__(self, root: psutil.Process, period: float = 0.2):
        self.root, self.period = root, period
        self.driver = self.jvm = self.largest_worker = self.workers_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.driver = max(self.driver, peak_rss(self.root.pid) or 0)
                children = self.root.children(recursive=True)
            except psutil.Error:
                continue
            total = 0
            for p in children:
                try:
                    name = p.name()
                    if name == "java":
                        self.jvm = max(self.jvm, peak_rss(p.pid) or 0)
                    elif name.startswith("python"):  # the JVM's Python workers (daemon and its forks)
                        rss = p.memory_info().rss
                        total += rss
                        self.largest_worker = max(self.largest_worker, rss)
                except psutil.Error:
                    continue
            self.workers_sum = max(self.workers_sum, total)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"driver_python_peak_rss": self.driver or None, "driver_jvm_peak_rss": self.jvm or None,
                "largest_worker_rss": self.largest_worker or None, "workers_peak_rss": self.workers_sum or None}


def stage(*args: str) -> dict:
    """Run ``tma-spark ARGS`` to the end and return its wall seconds and peak memory; a failure (exit status,
    out-of-memory kill) is recorded, not raised, so that the figures of the stages before it are kept."""
    t0 = time.perf_counter()
    proc = tma_spark_cli(*args)
    watch = TreeWatch(psutil.Process(proc.pid))
    rc = proc.wait()
    fig = {"command": "tma-spark " + " ".join(map(str, args)), "seconds": time.perf_counter() - t0,
           "returncode": rc, **watch.stop(), "loadavg_1m_after": os.getloadavg()[0]}
    if rc != 0:
        fig["note"] = f"exit status {rc}" + (" (killed by signal 9: out of memory?)" if rc == -9 else "")
    log.info("%s: %.0f s, exit %s, driver Python %.2f GB, driver JVM %.2f GB, largest worker %.2f GB", args[0],
             fig["seconds"], rc, *((fig[k] or 0) / GB for k in ("driver_python_peak_rss", "driver_jvm_peak_rss",
                                                                 "largest_worker_rss")))
    return fig


def first_reach(rows: list, target: float):
    """Training seconds (``wall_seconds``) of the first round whose validation score reaches ``target``."""
    return next((r["wall_seconds"] for r in rows if r.get("val") is not None and r["val"] >= target), None)


def training_figures(run: Path, round_seconds: float) -> dict:
    """What a training run folder says: the summary, validation over time, part loads and round overhead."""
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    full = [r for r in rows if abs(r["round_seconds"] - round_seconds) < 1e-6]
    over = [r["overhead_seconds"] for r in full[1:]] or [r["overhead_seconds"] for r in full]
    loads = [s for r in rows for s in r["load_seconds"] if s]
    return {
        "summary": summary,
        "curve": [{k: r.get(k) for k in ("round", "wall_seconds", "val", "test", "overhead_seconds")} for r in rows],
        "part_loads": summary["part_loads"],
        "overhead_median_s": statistics.median(over) if over else None,
        "overhead_mean_s": statistics.mean(over) if over else None,
        "optimizer_state_misses": sum(r.get("optimizer_state_misses", 0) for r in rows),
        "overhead_fraction_of_T": statistics.median(over) / round_seconds if over else None,
        "steps_per_s": summary["total_steps"] / max(sum(r["round_seconds"] for r in rows), 1e-9),
        "part_load_seconds": summary.get("startup_load_seconds") or loads,
        "trainer_peak_rss_mb": max((p for r in rows for p in r["peak_rss_mb"] if p), default=None),
    }


def run_stage(name: str, args, work: Path) -> dict:
    lake, parts, pred = work / "lake", work / "parts", work / "pred"
    train_args = ["--lake", lake, "--task", "node", "--model", "sage", "--sampler", "neighbor", "--round-seconds",
                  args.round_seconds, "--time-limit", args.budget, "--seed", args.seed, "--overwrite"]
    if name == "ingest":
        fig = stage("ingest", "--synthetic", "--nodes", f"{args.nodes:g}", "--edges", f"{args.edges:g}",
                    "--communities", "10", "--homophily", "0.8", "--feature-dim", args.dim, "--signal", "0.1",
                    "--seed", args.seed, "--lake", lake, "--overwrite")
        fig["lake_bytes"] = dir_size(lake)
    elif name == "partition":
        fig = stage("partition", "--lake", lake, "--strategy", "random", "--parts", args.parts, "--seed", args.seed,
                    "--out", parts, "--overwrite")
        fig["parts_bytes"] = dir_size(parts)
        meta = parts / "_tma_parts.json"
        if meta.exists():
            fig["parts_meta"] = {k: v for k, v in json.loads(meta.read_text()).items() if k != "per_part"}
    elif name == "tma":
        fig = stage("train", *train_args, "--partitions", parts, "--out", work / "run_tma")
    elif name == "central":
        fig = stage("train", "--mode", "central", *train_args, "--out", work / "run_central")
    else:
        shutil.rmtree(parts, ignore_errors=True)  # no longer needed; the message shuffle needs the disk
        log.info("free disk before inference: %.1f GB", shutil.disk_usage(str(work)).free / GB)
        fig = stage("infer", "--lake", lake, "--run", work / "run_tma", "--out", pred, "--overwrite")
        scores = work / "run_tma" / "eval.json"
        if scores.exists():
            fig["exact"] = {k: v for k, v in json.loads(scores.read_text()).items()
                            if k in ("metric", "val", "test", "counts", "nodes", "seconds", "checkpoint")}
        shutil.rmtree(pred, ignore_errors=True)
    if name in ("tma", "central") and fig["returncode"] == 0:
        fig.update(training_figures(work / f"run_{name}", args.round_seconds))
    return fig


def compare(stages: dict) -> dict:
    """Time to 98% of central's best validation accuracy, for both trainings, and the test gap."""
    tma, central = stages.get("tma"), stages.get("central")
    if not (tma and central and "summary" in tma and "summary" in central):
        return {}
    target = TARGET_SHARE * central["summary"]["best_val"]
    return {"target_val": target, "tma_seconds_to_target": first_reach(tma["curve"], target),
            "central_seconds_to_target": first_reach(central["curve"], target),
            "test_gap_points": 100 * (central["summary"]["test"] - tma["summary"]["test"])}


def gb(x) -> str:
    return "-" if x is None else f"{x / GB:.2f}"


def report(data: dict) -> str:
    a, st = data["args"], data["stages"]
    lines = [f"# The pipeline at {a['edges']:.0e} edges on one machine", "",
             f"Synthetic graph: {a['nodes']:.0e} nodes, {a['edges']:.0e} edges, {a['dim']} features, signal 0.1, "
             f"homophily 0.8, 10 communities; RandomTMA K = {a['parts']}; SAGE, hidden 256, neighbour-sampled "
             f"(25,10), T = {a['round_seconds']:g} s, {a['budget']:g} s of training per method; every stage a "
             f"`tma-spark` command with default settings. Machine: {data['machine']}.", "",
             "| stage | seconds | driver Python peak GB | driver JVM peak GB | largest worker GB | all workers GB "
             "| exit |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name in STAGES:
        f = st.get(name)
        if f:
            lines.append(f"| {name} | {f['seconds']:,.0f} | {gb(f['driver_python_peak_rss'])} | "
                         f"{gb(f['driver_jvm_peak_rss'])} | {gb(f['largest_worker_rss'])} | "
                         f"{gb(f['workers_peak_rss'])} | {f['returncode']}{' ' + f['note'] if f.get('note') else ''} |")
    lines += ["", "| training | eval | rounds | steps/s | best val | test (at best val) | time to best s | "
              "part loads per trainer | part load s | trainer peak GB | median round overhead s (of T) "
              "| Adam state restarts |",
              "|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for name in ("tma", "central"):
        f = st.get(name) or {}
        s = f.get("summary")
        if s:
            frac = f["overhead_fraction_of_T"]
            lines.append(f"| {name} | {s['eval']} | {s['rounds']} | {f['steps_per_s']:.2f} | {s['best_val']:.4f} | "
                         f"{s['test']:.4f} | {s['time_to_best_seconds']:.0f} | {s['part_loads']} | "
                         f"{', '.join(f'{x:.0f}' for x in f['part_load_seconds'] or [])} | "
                         f"{(f['trainer_peak_rss_mb'] or 0) / 1024:.2f} | "
                         f"{f['overhead_median_s']:.2f} ({100 * frac:.1f}%) | "
                         f"{f.get('optimizer_state_misses', '-')} |")
    cmp_ = data.get("compare") or {}
    if cmp_:
        fmt = lambda s: "not reached" if s is None else f"{s:.0f} s"  # noqa: E731
        lines += ["", f"Time to {100 * TARGET_SHARE:.0f}% of central's best validation accuracy "
                      f"({cmp_['target_val']:.4f}): TMA {fmt(cmp_['tma_seconds_to_target'])}, central "
                      f"{fmt(cmp_['central_seconds_to_target'])}. TMA's test accuracy is "
                      f"{cmp_['test_gap_points']:.2f} points below central's (target: at most 0.5)."]
    infer = st.get("infer") or {}
    if infer.get("exact"):
        lines += ["", f"Exact inference of TMA's best model on all {a['nodes']:.0e} nodes: "
                      f"{json.dumps(infer['exact'])}."]
    for name in ("tma", "central"):
        f = st.get(name) or {}
        if f.get("curve"):
            lines += ["", f"{name} validation over time (s: val): " + ", ".join(
                f"{r['wall_seconds']:.0f}: {r['val']:.4f}" for r in f["curve"] if r["val"] is not None)]
    lines += [f"\nNote: {n}" for n in data.get("notes", [])]
    lines += ["", f"Command: `{data['command']}` ({data['date']})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench_scale_train", help="lake, parts and runs (default %(default)s)")
    ap.add_argument("--nodes", type=float, default=1e7)
    ap.add_argument("--edges", type=float, default=1e8)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--round-seconds", type=float, default=30.0)
    ap.add_argument("--budget", type=float, default=1200.0, help="training seconds per method")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in pipeline order")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--note", action="append", default=[], help="a line for the report (how the run went)")
    ap.add_argument("--out", default=str(RESULTS / "scale_train.json"))
    args = ap.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    data = json.loads(out.read_text()) if out.exists() else {"stages": {}}
    data["notes"] = data.get("notes", []) + args.note
    data.update(args={k: v for k, v in vars(args).items() if k not in ("work", "out", "stages", "keep", "note")},
                command=shell_command(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                machine=f"{os.cpu_count()} cores, {psutil.virtual_memory().total / GB:.0f} GiB RAM")
    try:
        for name in args.stages.split(","):
            data["stages"][name] = run_stage(name, args, work)
            data["compare"] = compare(data["stages"])
            write_results(out, data, report(data))  # after each stage: a later failure loses nothing
            if data["stages"][name]["returncode"] != 0:
                log.error("stage %s failed; stopping", name)
                break
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(report(data))


if __name__ == "__main__":
    main()
