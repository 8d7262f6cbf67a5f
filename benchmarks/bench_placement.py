"""Part loads and round overhead at T = 30 s: trainers on four executors against four trainers in one executor.

``tma-spark train`` through the real CLI on the bundled Cora graph in K = 4 RandomTMA parts, ``--rounds``
rounds of ``T`` seconds each, twice in one invocation of this script:

* ``local-cluster[4,1,1024]``: four executor JVMs with one core each, so one trainer per executor, and parts
  follow the executors that hold them (``tma_spark/train/placement.py``);
* ``local[4]`` (the reference): one executor runs the four trainers, so its Python workers cannot be told
  apart by address and a part moves whenever Spark hands its task to another worker.

Per run: how many times each part was read from storage (``summary.json``: ``part_loads``; 1 each means
it never moved), parts read per round, and the round overhead (round wall time minus T, from
``metrics.jsonl``) as seconds and as a fraction of T.

Run: ``python benchmarks/bench_placement.py --work DIR``. Results: ``benchmarks/results/placement.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import run_cli, shell_command, write_results  # noqa: E402

log = logging.getLogger("bench_placement")
MASTERS = ("local-cluster[4,1,1024]", "local[4]")


def one_run(master: str, lake: Path, parts: Path, out: Path, seconds: float, rounds: int) -> dict:
    started = time.perf_counter()
    run_cli("train", "--master", master, "--lake", str(lake), "--partitions", str(parts), "--out", str(out),
        "--round-seconds", str(seconds), "--max-rounds", str(rounds), "--overwrite")
    wall = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    over = [r["overhead_seconds"] for r in rows]
    return {"master": master, "wall_s": wall, "part_loads": summary["part_loads"],
            "loads_per_round": [sum(bool(x) for x in r["part_loaded"]) for r in rows],
            "overhead_mean_s": statistics.mean(over), "overhead_max_s": max(over),
            "overhead_mean_fraction": statistics.mean(over) / seconds, "test": summary["test"],
            "rounds": [{k: r[k] for k in ("round", "overhead_seconds", "part_loaded", "executors", "load_seconds")}
                       for r in rows]}


def report(data: dict) -> str:
    lines = ["# Where trainers run: part loads and round overhead", "",
             f"Cora, K = 4 RandomTMA parts, {data['rounds']} rounds of T = {data['seconds']:g} s, "
             f"{os.cpu_count()} cores (`{data['command']}`, {data['date']}).", "",
             "| master | part loads (per part, warm-up included) | parts read per round | round overhead mean / max s "
             "| mean overhead / T | test |", "|---|---|---|---|---:|---:|"]
    for r in data["runs"]:
        lines.append(f"| `{r['master']}` | {r['part_loads']} | {r['loads_per_round']} | {r['overhead_mean_s']:.2f} / "
                     f"{r['overhead_max_s']:.2f} | {100 * r['overhead_mean_fraction']:.1f}% | {r['test']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench_placement")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "placement.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    lake, parts = work / "lake", work / "parts"
    if not (parts / "_tma_parts.json").exists():
        run_cli("ingest", "--dataset", "cora", "--lake", str(lake), "--overwrite")
        run_cli("partition", "--lake", str(lake), "--parts", "4", "--seed", "0", "--out", str(parts), "--overwrite")
    runs = [one_run(m, lake, parts, work / f"run{i}", args.seconds, args.rounds) for i, m in enumerate(MASTERS)]
    data = {"seconds": args.seconds, "rounds": args.rounds, "command": shell_command(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}
    write_results(args.out, data, report(data))
    print(report(data))


if __name__ == "__main__":
    main()
