"""What a training run survives, measured: one run with four faults against an undisturbed run, same seed.

On Amazon Computers (K = 4 RandomTMA parts, 10 rounds of T seconds, ``--tolerate-failures``), through the
real command line (``tma-spark``), in one invocation of this script:

* ``undisturbed``: ``tma-spark train`` with no fault;
* ``disturbed``: the same command with ``--inject-failure trainer:0:2,hang:1:4,diverge:2:6`` (trainer 0's
  Python worker killed half-way through round 2; trainer 1 hung in round 4 until ``--round-timeout``
  cancels it; trainer 2's weights NaN at the end of round 6) and the driver process SIGKILLed once
  ``metrics.jsonl`` has 7 rows, then ``tma-spark train ... --resume`` to finish the 10 rounds.

Recorded: the rounds in which a trainer was lost (``lost_parts``), the checkpoint round the resumed run
continued from (the round in flight at the kill is trained again), whether
``metrics.jsonl`` holds rounds 1..10 with no gap or duplicate, the final test accuracy of both runs (at the
best validation round) and their difference (target: within 1 point), wall time and the peak RSS of each
driver process. Results: ``benchmarks/results/faults.{json,md}``.

    .venv/bin/python benchmarks/bench_faults.py [--round-seconds 5] [--rounds 10] [--parts 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, mb, shell_command, write_results  # noqa: E402

log = logging.getLogger("bench_faults")
BIN = Path(sys.executable).parent
FAULTS = "trainer:0:2,hang:1:4,diverge:2:6"


def _cli(*args) -> list:
    return [str(BIN / "tma-spark"), *map(str, args)]


def _rows(run: Path) -> list:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _run(argv: list, kill_after_rows: int = 0, run: Path = None) -> dict:
    """Run ``argv``; with ``kill_after_rows``, SIGKILL it once ``run/metrics.jsonl`` has that many rows.
    Returns exit code, seconds and the process's peak RSS (sampled every 0.2 s)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak, killed = psutil.Process(proc.pid), 0, False
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            pass
        if kill_after_rows and not killed and len(_rows(run)) >= kill_after_rows:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0 and not killed:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"code": proc.returncode, "seconds": round(time.monotonic() - started, 1), "peak_rss": peak,
            "killed": killed, "summary": json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kill-driver-at", type=int, default=7, help="SIGKILL the driver once this many rows exist")
    ap.add_argument("--out", default=str(RESULTS / "faults.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    work = Path(tempfile.mkdtemp(prefix="tma_faults_"))
    try:
        lake, parts = work / "lake", work / "parts"
        subprocess.run(_cli("ingest", "--dataset", "amazon_computers", "--lake", lake, "-q"), check=True)
        subprocess.run(_cli("partition", "--lake", lake, "--out", parts, "-k", args.parts, "--seed", args.seed,
                            "-q"), check=True, stdout=subprocess.DEVNULL)
        timeout = 3 * args.round_seconds + 20
        common = ["--lake", lake, "--partitions", parts, "-T", args.round_seconds, "--max-rounds", args.rounds,
                  "--time-limit", 100 * args.round_seconds * args.rounds, "--hidden", args.hidden, "--seed",
                  args.seed, "--tolerate-failures", "--round-timeout", timeout, "-q"]
        log.info("undisturbed run: %d rounds of %.0f s", args.rounds, args.round_seconds)
        base = _run(_cli("train", *common, "--out", work / "base"))
        log.info("disturbed run: %s, driver killed after %d rows", FAULTS, args.kill_driver_at)
        run = work / "faulty"
        first = _run(_cli("train", *common, "--out", run, "--inject-failure", FAULTS), args.kill_driver_at, run)
        rows_at_kill = len(_rows(run))
        second = _run(_cli("train", *common, "--out", run, "--inject-failure", FAULTS, "--resume"))
        rows = _rows(run)
        rounds = [r["round"] for r in rows]
        summary = second["summary"]
        lost = {r["round"]: r["lost_parts"] for r in rows if r.get("lost_parts")}
        resumed_from = summary.get("resumed_from_round")
        result = {
            "settings": {**vars(args), "faults": FAULTS, "round_timeout": timeout, "dataset": "amazon_computers"},
            "command": shell_command(),
            "undisturbed": {"test": base["summary"]["test"], "best_val": base["summary"]["best_val"],
                            "seconds": base["seconds"], "driver_peak_rss": base["peak_rss"]},
            "disturbed": {"test": summary["test"], "best_val": summary["best_val"],
                          "seconds": first["seconds"] + second["seconds"],
                          "driver_peak_rss": max(first["peak_rss"], second["peak_rss"]),
                          "driver_killed": first["killed"], "rows_when_killed": rows_at_kill,
                          "resumed_from_round": resumed_from, "lost_parts_by_round": lost,
                          "rounds": rounds, "no_gap": rounds == list(range(1, args.rounds + 1))},
        }
        diff = 100 * (summary["test"] - base["summary"]["test"])
        result["test_difference_points"] = round(diff, 2)
        result["target_met"] = abs(diff) <= 1.0 and result["disturbed"]["no_gap"]
        d, u = result["disturbed"], result["undisturbed"]
        md = "\n".join([
            "# Fault injection: one training run with four faults against an undisturbed run",
            "", f"Command: `{result['command']}`", "",
            f"Amazon Computers, K = {args.parts}, T = {args.round_seconds} s, {args.rounds} rounds, hidden "
            f"{args.hidden}, seed {args.seed}, `--tolerate-failures`, `--round-timeout {timeout:.0f}`; faults "
            f"`{FAULTS}`, driver SIGKILLed after {args.kill_driver_at} metrics rows, then `--resume`.", "",
            "| run | test accuracy | best val | wall s | driver peak RSS MB |", "|---|---|---|---|---|",
            f"| undisturbed | {u['test']:.4f} | {u['best_val']:.4f} | {u['seconds']:.0f} | {mb(u['driver_peak_rss'])} |",
            f"| disturbed | {d['test']:.4f} | {d['best_val']:.4f} | {d['seconds']:.0f} | {mb(d['driver_peak_rss'])} |",
            "", f"- Test accuracy difference: {diff:+.2f} points (target: within 1 point): "
                f"{'met' if abs(diff) <= 1.0 else 'MISSED'}.",
            f"- Rounds with a lost trainer: {lost or 'none'}.",
            f"- Driver SIGKILLed: {d['driver_killed']}, with {rows_at_kill} metrics rows written; `--resume` continued "
            f"from the checkpoint of round {resumed_from} (rounds 1..{resumed_from} kept, the round in flight "
            "trained again).",
            f"- metrics.jsonl rounds: {rounds}: {'no gap, no duplicate' if d['no_gap'] else 'GAP OR DUPLICATE'}.",
            ""])
        write_results(args.out, result, md)
        print(md)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
