"""Part loads and round overhead at T = 30 s: trainers on four executors against four trainers in one executor.

``tma-spark train`` through the real CLI on the bundled Cora graph in K = 4 RandomTMA parts, ``--rounds``
rounds of ``T`` seconds each, on two masters, once per optimizer state setting (``--optimizer-states``) and
weights transport (``--transports``: ``files``, the default on local masters, against ``spark``, measured in the
same run; ``tma_spark/train/exchange.py``):

* ``local-cluster[4,1,1024]``: four executor JVMs with one core each, so one trainer per executor, and parts
  follow the executors that hold them (``tma_spark/train/placement.py``);
* ``local[4]`` (the reference): one executor runs the four trainers; its Python workers tell each other apart
  by process id each round (``tma_spark/train/rendezvous.py``), and parts follow the workers.

Per run: how many times each part was read from storage (``summary.json``: ``part_loads``; 1 each means
it never moved), parts read per round, and the round overhead (round wall time minus T, from
``metrics.jsonl``) as seconds and as a fraction of T. The overhead is then taken apart along the round's
critical path (the task that finished last), from Spark's event log (written in the run folder) and the
trainers' own times (:func:`round_profile`).

Run: ``python benchmarks/bench_placement.py --work DIR``. Results: ``benchmarks/results/placement.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import run_cli, shell_command, spark_events, write_results  # noqa: E402

log = logging.getLogger("bench_placement")
MASTERS = ("local-cluster[4,1,1024]", "local[4]")  # the default --masters


#: The parts of a round's overhead (:func:`round_profile`), in the order they happen, with their table headers.
PHASES = {
    "driver_s": "driver around the job (weights out and back, submit, divergence check)",
    "launch_s": "job submitted to last task launched",
    "deserialize_s": "task deserialize",
    "run_over_s": "task run time past T",
    "result_s": "result serialize and fetch",
    "job_end_s": "last task end to job end",
    "average_checkpoint_s": "driver between stages (previous checkpoint, average)",
}


def round_profile(events: Path, row: dict) -> dict:
    """Where round ``row`` (a ``metrics.jsonl`` line) spent its overhead, in seconds (:data:`PHASES`), along its
    critical path, the task that finished last, from Spark's event log: the job's submission, that task's launch,
    deserialization, run time (the Python worker: the trainer, its broadcast reads and its result's pickling)
    and finish, the job's end; and the driver's time outside the job (the round's ``stage_seconds`` minus the
    job's wall time) and between the stages (the previous round's checkpoint, this one's averaging): a round's
    wall time runs from where the previous one's ended. The phases add up to the overhead. ``trainer_over_s``
    (not a phase: it is inside the run time) is how far the slowest trainer's own function ran past T, part
    load included."""
    prefix = f"tma_spark train round {row['round']}"
    jobs = [e for e in spark_events(events, "SparkListenerJobStart")
            if (e.get("Properties") or {}).get("spark.job.description", "") == prefix]
    start, = jobs  # a barrier round is one job; a retried round (several) is not profiled
    end = next(e for e in spark_events(events, "SparkListenerJobEnd") if e["Job ID"] == start["Job ID"])
    stages = set(start["Stage IDs"])
    last = max((e for e in spark_events(events, "SparkListenerTaskEnd") if e["Stage ID"] in stages),
               key=lambda e: e["Task Info"]["Finish Time"])
    info, metrics = last["Task Info"], last["Task Metrics"]
    submitted, ended = start["Submission Time"] / 1e3, end["Completion Time"] / 1e3
    launched, finished = info["Launch Time"] / 1e3, info["Finish Time"] / 1e3
    deser, run = metrics["Executor Deserialize Time"] / 1e3, metrics["Executor Run Time"] / 1e3
    out = {"driver_s": row["stage_seconds"] - (ended - submitted), "launch_s": launched - submitted,
           "deserialize_s": deser, "run_over_s": run - row["round_seconds"],
           "result_s": finished - launched - deser - run, "job_end_s": ended - finished,
           "average_checkpoint_s": row["driver_seconds"],
           "trainer_over_s": max(t for t in row["task_seconds"] if t is not None) - row["round_seconds"]}
    return {k: round(v, 3) for k, v in out.items()}


def host_reference_ms(repeats: int = 5) -> float:
    """The median time of a fixed piece of driver-like work on this machine (a 0.74M-parameter state dict through
    ``torch.save``/``torch.load`` ten times, and a Python loop), in ms. This shared machine's speed drifts (the
    same code's round overhead went from 0.96 s to 1.81 s within two hours), so each run's overheads are read
    against the reference measured with them."""
    import io

    import torch

    state = {"w": torch.ones(2 * 1433 * 256), "b": torch.ones(256 * 7)}
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(10):
            buffer = io.BytesIO()
            torch.save(state, buffer)
            torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
        sum(i * i for i in range(300_000))
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def one_run(master: str, optimizer_state: str, transport: str, lake: Path, parts: Path, out: Path, seconds: float,
            rounds: int, conf: list) -> dict:
    events = out.parent / f"{out.name}-events"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    started = time.perf_counter()
    run_cli("train", "--master", master, "--lake", str(lake), "--partitions", str(parts), "--out", str(out),
            "--round-seconds", str(seconds), "--max-rounds", str(rounds), "--optimizer-state", optimizer_state,
            "--weights-transport", transport, "--overwrite",
            "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file://{events}",
            "--conf", "spark.eventLog.compress=false", *[a for c in conf for a in ("--conf", c)])
    wall = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    over = [r["overhead_seconds"] for r in rows]
    profiles = [round_profile(events, r) for r in rows]
    return {"master": master, "optimizer_state": optimizer_state, "transport": summary["weights_transport"],
            "wall_s": wall, "part_loads": summary["part_loads"],
            "loads_per_round": [sum(bool(x) for x in r["part_loaded"]) for r in rows],
            "overhead_mean_s": statistics.mean(over), "overhead_max_s": max(over),
            "overhead_mean_fraction": statistics.mean(over) / seconds, "test": summary["test"],
            "profile": {k: statistics.mean(p[k] for p in profiles) for k in profiles[0]},
            "rounds": [{**{k: r[k] for k in ("round", "overhead_seconds", "part_loaded", "executors", "load_seconds",
                                             "task_seconds", "stage_seconds", "driver_seconds")}, "profile": p}
                       for r, p in zip(rows, profiles)]}


def report(data: dict) -> str:
    lines = ["# Where trainers run: part loads and round overhead", "",
             f"Cora, K = 4 RandomTMA parts, {data['rounds']} rounds of T = {data['seconds']:g} s, "
             f"{os.cpu_count()} cores (`{data['command']}`, {data['date']}). This machine's speed drifts: a "
             f"fixed piece of driver work (`host_reference_ms`) took {data['host_reference_ms'][0]:g} ms before the "
             f"runs and {data['host_reference_ms'][1]:g} ms after them (lower is faster).", "",
             "| master | optimizer state | weights transport | part loads (per part, warm-up included) "
             "| parts read per round | round overhead mean / max s | mean overhead / T | test |",
             "|---|---|---|---|---|---|---:|---:|"]
    for r in data["runs"]:
        lines.append(f"| `{r['master']}` | {r['optimizer_state']} | {r['transport']} | {r['part_loads']} | "
                     f"{r['loads_per_round']} | "
                     f"{r['overhead_mean_s']:.2f} / "
                     f"{r['overhead_max_s']:.2f} | {100 * r['overhead_mean_fraction']:.1f}% | {r['test']:.4f} |")
    lines += ["", "Where the overhead goes, mean over the rounds in seconds, along each round's critical path (the "
              "task that finished last; Spark's event log and the trainers' times, `round_profile`). The phases add "
              "up to the overhead; *slowest trainer past T* is part of *task run time past T*.", "",
              "| master | optimizer state | weights transport | " + " | ".join(PHASES.values())
              + " | overhead | slowest trainer past T |", "|---|---|---|" + "---:|" * (len(PHASES) + 2)]
    for r in data["runs"]:
        p = r["profile"]
        lines.append(f"| `{r['master']}` | {r['optimizer_state']} | {r['transport']} | "
                     + " | ".join(f"{p[k]:.3f}" for k in PHASES)
                     + f" | {r['overhead_mean_s']:.3f} | {p['trainer_over_s']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench_placement")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--masters", default=";".join(MASTERS),
                    help="Spark masters, separated by semicolons (local-cluster[...] holds commas)")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting for every run")
    ap.add_argument("--optimizer-states", default="resident,shipped",
                    help="comma-separated --optimizer-state settings, each run on every master")
    ap.add_argument("--transports", default="files,spark",
                    help="comma-separated --weights-transport settings, each run on every master and optimizer state")
    ap.add_argument("--out", default=str(HERE / "results" / "placement.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    lake, parts = work / "lake", work / "parts"
    if not (parts / "_tma_parts.json").exists():
        run_cli("ingest", "--dataset", "cora", "--lake", str(lake), "--overwrite")
        run_cli("partition", "--lake", str(lake), "--parts", "4", "--seed", "0", "--out", str(parts), "--overwrite")
    reference = [host_reference_ms()]
    runs = [one_run(m, opt, via, lake, parts, work / f"run{i}-{opt}-{via}", args.seconds, args.rounds, args.conf)
            for opt in args.optimizer_states.split(",") for i, m in enumerate(args.masters.split(";"))
            for via in args.transports.split(",")]
    reference.append(host_reference_ms())
    data = {"seconds": args.seconds, "rounds": args.rounds, "conf": args.conf, "command": shell_command(),
            "host_reference_ms": [round(r, 1) for r in reference],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}
    write_results(args.out, data, report(data))
    print(report(data))


if __name__ == "__main__":
    main()
