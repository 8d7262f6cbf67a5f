"""The trainer's GPU path against its CPU path, without Spark: device selection, speed and accuracy.

What a barrier task runs on an executor (:func:`tma_spark.train.executor.run_trainer_task`) needs only torch,
PyG and pyarrow, so this script runs it directly on a machine that has a GPU but no Spark or Java:

1. **Device selection.** Every trainer call gets Spark's GPU address ``"0"``, exactly as a task with
   ``spark.task.resource.gpu.amount=1`` does, and the script records the device the trainer picked.
2. **TMA on a real lake.** ``--rounds`` rounds of RandomTMA on ``--parts`` (a PARTS folder written by
   ``tma-spark partition``): each round trains every part's local model for ``--seconds`` (one after the other,
   since this machine has one GPU; on a cluster each trainer has its own), averages the K models, and
   evaluates the average on the whole lake. The same on the CPU with every core. Steps per second per trainer
   and test accuracy per round are recorded for both.
3. **Central on the whole lake**: one trainer, full-batch, for ``--seconds`` on each device.
4. **Scale**: a random graph of ``--synthetic-edges`` undirected edges (nodes = edges / 10, 64 features,
   10 classes), neighbour-sampled training on CPU and GPU, and full-batch training on the GPU (which holds
   the whole graph's message tensors where a CPU executor's memory would not).

Run: ``python benchmarks/bench_gpu_trainer.py --lake LAKE --parts PARTS --out RESULTS.json`` (add ``--quick``
for a smoke run). Writes the figures as JSON and a Markdown table beside it (``.md``), and logs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tma_spark.arrays import symmetric_edges  # noqa: E402
from tma_spark.partition.meta import open_parts  # noqa: E402
from tma_spark.train.averaging import average_state_dicts  # noqa: E402
from tma_spark.train.contract import ModelSpec, Source, TrainerSpec, to_bytes  # noqa: E402
from tma_spark.train.executor import run_trainer_task, train_for  # noqa: E402
from tma_spark.train.graphdata import GraphTensors, build_graph, read_table  # noqa: E402
from tma_spark.train.metrics import accuracy  # noqa: E402
from tma_spark.train.objectives import build_objective  # noqa: E402

log = logging.getLogger("bench_gpu_trainer")


def _spec(meta: dict, source: Source, hidden: int, sampler: str = "auto") -> TrainerSpec:
    model = ModelSpec("sage", meta["feature_dim"], hidden, meta["num_classes"], layers=2, dropout=0.5)
    return TrainerSpec(model=model, source=source, sampler=sampler, run_id="bench-gpu")


def _test_accuracy(graph: GraphTensors, spec: TrainerSpec, state: dict, device: torch.device) -> float:
    model = spec.model.build().to(device)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(graph.x.to(device), graph.edge_index.to(device)).float().cpu()
    mask = graph.mask("test")
    return accuracy(logits[mask], graph.y[mask])


def _gpus(device: str):
    return ["0"] if device == "cuda" else None


def tma(lake: str, parts: str, meta: dict, device: str, rounds: int, seconds: float, hidden: int,
        threads: int) -> dict:
    """RandomTMA rounds on one device through the trainer-task code; per-round test accuracy and speed."""
    info = open_parts(None, parts)
    k = info.parts
    source = Source("parts", info.path, info.format, info.version)
    spec = _spec(meta, source, hidden)
    whole = build_graph(read_table(f"{lake}/nodes", meta["format"], ["id", "features", "label", "split"]),
                        read_table(f"{lake}/edges", meta["format"], ["src", "dst"]))
    state = spec.model.build(seed=0).state_dict()
    opts: dict = {}
    picked, rows = set(), []
    for r in range(1, rounds + 1):
        results = [run_trainer_task(p, spec, to_bytes(state), opts.get(p), seconds, r, _gpus(device), threads)
                   for p in range(k)]
        for res in results:
            opts[res.part] = res.opt
            picked.add(res.device)
        state = average_state_dicts([res.state_dict() for res in results], [res.train_nodes for res in results])
        steps_per_s = [res.steps / max(res.task_seconds - res.load_seconds, 1e-9) for res in results]
        rows.append({"round": r, "test": _test_accuracy(whole, spec, state, torch.device("cpu")),
                     "steps": [res.steps for res in results], "steps_per_s": [round(s, 2) for s in steps_per_s],
                     "sampler": results[0].sampler})
        log.info("%s TMA round %d: test %.4f, steps/s per trainer %s", device, r, rows[-1]["test"],
                 rows[-1]["steps_per_s"])
    return {"device_picked": sorted(picked), "rounds": rows, "final_test": rows[-1]["test"],
            "mean_steps_per_s": float(np.mean([s for row in rows for s in row["steps_per_s"]]))}


def central(lake: str, meta: dict, device: str, seconds: float, hidden: int, threads: int) -> dict:
    """One trainer on the whole lake for ``seconds`` (what a PyG user would run on one machine)."""
    source = Source("lake", os.path.abspath(lake), meta["format"], 0)
    spec = _spec(meta, source, hidden)
    state = spec.model.build(seed=0).state_dict()
    run_trainer_task(0, spec, to_bytes(state), None, 1.0, 0, _gpus(device), threads)  # warm-up, load, cache
    res = run_trainer_task(0, spec, to_bytes(state), None, seconds, 1, _gpus(device), threads)
    secs = res.task_seconds - res.load_seconds
    return {"device_picked": res.device, "steps": res.steps, "seconds": round(secs, 2),
            "steps_per_s": res.steps / secs, "sampler": res.sampler}


def random_graph(edges: int, dim: int = 64, classes: int = 10, seed: int = 0) -> GraphTensors:
    """A random graph with ``edges`` undirected edges and edges / 10 nodes (60/20/20 split); speed only."""
    rng = np.random.default_rng(seed)
    n = max(edges // 10, 10)
    src, dst = rng.integers(0, n, edges), rng.integers(0, n, edges)
    ei = torch.from_numpy(np.stack(symmetric_edges(src, dst, n)))
    split = torch.from_numpy(rng.choice(np.array([0, 1, 2], np.int8), n, p=[0.6, 0.2, 0.2]))
    return GraphTensors(torch.arange(n), torch.randn(n, dim), torch.randint(0, classes, (n,)), split, ei)


def scale(edges: int, device: str, sampler: str, seconds: float, hidden: int, threads: int) -> dict:
    """Training steps per second on a random graph of ``edges`` undirected edges."""
    graph = random_graph(edges)
    no_source = Source("memory", "", "none")  # not read: the graph is built here
    spec = _spec({"feature_dim": 64, "num_classes": 10}, no_source, hidden, sampler)
    torch.set_num_threads(threads)
    dev = torch.device("cuda:0" if device == "cuda" else "cpu")
    objective = build_objective(graph, spec, dev)
    state = spec.model.build(seed=0).state_dict()
    train_for(objective, spec, state, None, 0.5, dev, seed=0)  # warm-up (kernels, allocator)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.monotonic()
    out = train_for(objective, spec, state, None, seconds, dev, seed=1)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs = time.monotonic() - t0
    row = {"edges": edges, "directed_edges": int(graph.edge_index.shape[1]), "nodes": graph.num_nodes,
           "device": str(dev), "sampler": objective.sampler, "steps": out.steps, "seconds": round(secs, 2),
           "steps_per_s": out.steps / secs,
           "targets_per_s": out.steps * (objective.targets if objective.sampler == "full" else spec.batch_size)
           / secs}
    if dev.type == "cuda":
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    log.info("scale %s %s: %.2f steps/s, %.0f targets/s", dev, objective.sampler, row["steps_per_s"],
             row["targets_per_s"])
    return row


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [f"# Trainer on GPU against CPU ({m['gpu'] or 'no GPU'})", "",
             f"Command: `{m['command']}`", "",
             f"Machine: {m['machine']}; torch {m['torch']}; {m['date']}. CPU runs use {m['threads']} threads. "
             "Trainer calls go through `run_trainer_task` with Spark's GPU address \"0\" (GPU runs) or none "
             "(CPU runs); bf16 autocast on the GPU, as in training. Steps/s exclude loading.", "",
             "## RandomTMA and central on the lake", "",
             "| run | device picked | sampler | steps/s per trainer | test accuracy |", "|---|---|---|---:|---:|"]
    for dev, r in res["tma"].items():
        lines.append(f"| TMA K={len(r['rounds'][0]['steps'])}, {len(r['rounds'])} rounds x {m['seconds']} s "
                     f"({dev}) | {', '.join(r['device_picked'])} | {r['rounds'][0]['sampler']} | "
                     f"{r['mean_steps_per_s']:.2f} | {r['final_test']:.4f} |")
    for dev, r in res["central"].items():
        lines.append(f"| central, {m['seconds']} s ({dev}) | {r['device_picked']} | {r['sampler']} | "
                     f"{r['steps_per_s']:.2f} | - |")
    for dev in ("tma", "central"):
        runs = res[dev]
        if "cuda" in runs and "cpu" in runs:
            key = "mean_steps_per_s" if dev == "tma" else "steps_per_s"
            lines.append(f"\n{dev}: GPU / CPU steps per second = {runs['cuda'][key] / runs['cpu'][key]:.1f}x")
    lines += ["", "## Scale: random graph", "",
              "| undirected edges | nodes | device | sampler | steps/s | targets/s | peak GPU GiB |",
              "|---:|---:|---|---|---:|---:|---:|"]
    for r in res["scale"]:
        lines.append(f"| {r['edges']:,} | {r['nodes']:,} | {r['device']} | {r['sampler']} | {r['steps_per_s']:.2f} "
                     f"| {r['targets_per_s']:,.0f} | {r.get('peak_gpu_gib', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", required=True)
    ap.add_argument("--parts", required=True)
    ap.add_argument("--out", required=True, help="results JSON (a .md table is written beside it)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="training seconds per trainer per round")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--synthetic-edges", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for the CPU runs")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s, 20,000-edge random graph")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quick:
        args.rounds, args.seconds, args.synthetic_edges = 1, 1.0, 20_000
    meta = json.loads(Path(args.lake, "_tma_lake.json").read_text())
    cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if cuda else ["cpu"]
    res = {"meta": {"command": " ".join([Path(sys.executable).name] + sys.argv), "date": dt.datetime.now(
        dt.timezone.utc).isoformat(timespec="seconds"), "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "threads": args.threads, "seconds": args.seconds, "lake": args.lake, "parts": args.parts},
        "tma": {}, "central": {}, "scale": []}
    for dev in devices:
        res["tma"][dev] = tma(args.lake, args.parts, meta, dev, args.rounds, args.seconds, args.hidden, args.threads)
        res["central"][dev] = central(args.lake, meta, dev, args.seconds, args.hidden, args.threads)
    res["scale"].append(scale(args.synthetic_edges, "cpu", "neighbor", args.seconds * 2, args.hidden, args.threads))
    if cuda:
        res["scale"].append(scale(args.synthetic_edges, "cuda", "neighbor", args.seconds * 2, args.hidden,
                                  args.threads))
        res["scale"].append(scale(args.synthetic_edges, "cuda", "full", args.seconds * 2, args.hidden,
                                  args.threads))
    Path(args.out).write_text(json.dumps(res, indent=1))
    Path(args.out).with_suffix(".md").write_text(markdown(res))
    log.info("wrote %s and %s", args.out, Path(args.out).with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
