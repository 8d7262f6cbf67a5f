"""A trainer's memory for loading its part: peak resident memory against its import baseline and its part's bytes.

What a barrier task does before its first step (:func:`tma_spark.train.executor.load_part`: read the part from
the PARTS folder, build the graph tensors and the objective) runs here in a fresh child process per sampler,
exactly as on an executor, without Spark. The child records:

* the import baseline: resident memory after importing torch, PyG and the trainer's modules;
* the peak resident memory after loading the part (``ru_maxrss``: the true high-water mark, not a sample);
* the part's bytes: features (float32), labels, split codes, node ids and the ``edge_index`` it holds.

Target (issue: lean part loading): peak <= baseline + 2 x part bytes. The ratio ``(peak - baseline) / part
bytes`` is what the table reports.

Run: ``python benchmarks/bench_part_load.py --work DIR`` (generates the lake and parts with the CLI on first
use: ``--nodes``, ``--edges``, ``--dim``, ``--parts``). Results: ``benchmarks/results/part_load.{md,json}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import run_cli, run_worker, shell_command, worker_main, write_results  # noqa: E402

log = logging.getLogger("bench_part_load")
MB = 2**20


def load_worker(spec: dict) -> dict:
    """Child process: import what a trainer imports, then load one part as a trainer does."""
    import importlib

    import torch

    importlib.import_module("torch_geometric")  # a trainer imports PyG with its models: part of the baseline

    from tma_spark.train.contract import ModelSpec, Source, TrainerSpec
    from tma_spark.train.executor import load_part

    torch.set_num_threads(1)
    baseline = psutil.Process().memory_info().rss
    source = Source(kind="parts", path=spec["parts"], format="delta", version=spec["version"])
    trainer = TrainerSpec(model=ModelSpec("sage", in_dim=spec["dim"], hidden=64, out_dim=10), source=source,
                          sampler=spec["sampler"])
    started = time.perf_counter()
    graph, objective = load_part(trainer, spec["part"], torch.device("cpu"))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    part_bytes = sum(t.numel() * t.element_size()  # GraphTensors.nbytes, spelled out for older commits
                     for t in (graph.x, graph.y, graph.split, graph.node_ids, graph.edge_index))
    return {"sampler": objective.sampler, "baseline_rss": baseline, "peak_rss": peak, "part_bytes": part_bytes,
            "feature_bytes": graph.x.numel() * 4, "edge_bytes": graph.edge_index.numel() * 8,
            "nodes": graph.num_nodes, "edges": int(graph.edge_index.shape[1]) // 2, "seconds": seconds,
            "ratio": (peak - baseline) / part_bytes}


def report(data: dict) -> str:
    lines = ["# A trainer's memory for loading its part", "",
             f"Machine: {data['machine'].get('cpus')} cores, {data['machine'].get('memory_gb')} GB. Graph: "
             f"synthetic, {data['nodes']:,} nodes, {data['edges']:,} edges, {data['dim']} features, K = "
             f"{data['parts']}; part 0 loaded in a fresh process per sampler, as a trainer task does "
             f"(`{data['command']}`).", "",
             "| sampler | part nodes | part edges | part MB (features / edge_index) | import baseline MB | peak MB "
             "| (peak - baseline) / part bytes | load s |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in data["rows"]:
        lines.append(f"| {r['sampler']} | {r['nodes']:,} | {r['edges']:,} | {r['part_bytes'] / MB:.0f} "
                     f"({r['feature_bytes'] / MB:.0f} / {r['edge_bytes'] / MB:.0f}) | {r['baseline_rss'] / MB:.0f} "
                     f"| {r['peak_rss'] / MB:.0f} | **{r['ratio']:.2f}x** | {r['seconds']:.1f} |")
    lines += ["", "Target: (peak - baseline) <= 2 x part bytes."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if worker_main({"load": load_worker}, argv):
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/bench_part_load")
    ap.add_argument("--nodes", type=float, default=1e6)
    ap.add_argument("--edges", type=float, default=1e7)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--samplers", default="neighbor,full")
    ap.add_argument("--out", default=str(HERE / "results" / "part_load.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    lake, parts = work / "lake", work / "parts"
    if not (parts / "_tma_parts.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        run_cli("ingest", "--synthetic", "--nodes", str(int(args.nodes)), "--edges", str(int(args.edges)),
            "--feature-dim", str(args.dim), "--seed", "0", "--lake", str(lake), "--overwrite")
        run_cli("partition", "--lake", str(lake), "--strategy", "random", "--parts", str(args.parts), "--seed", "0",
            "--out", str(parts), "--overwrite")
    rows = []
    for sampler in args.samplers.split(","):
        spec = {"parts": str(parts), "part": 0, "dim": args.dim, "sampler": sampler, "version": time.time()}
        r = run_worker(__file__, "load", spec, work)
        if r.get("status") != "ok":
            raise SystemExit(f"part load with sampler {sampler} failed: {r}")
        log.info("%s: baseline %.0f MB, peak %.0f MB, part %.0f MB: (peak - baseline) / part = %.2fx, %.1f s",
                 sampler, r["baseline_rss"] / MB, r["peak_rss"] / MB, r["part_bytes"] / MB, r["ratio"], r["seconds"])
        rows.append(r)
    data = {"machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
            "nodes": int(args.nodes), "edges": int(args.edges), "dim": args.dim, "parts": args.parts,
            "command": shell_command(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    write_results(args.out, data, report(data))
    print(report(data))


if __name__ == "__main__":
    main()
