"""Full-graph inference speed and memory: the Spark job (``tma-spark infer``) against PyG in one process.

In one run, for each graph:

* ``ogbn_arxiv``: the real citation graph (169,343 nodes, 1.17M edges) with FastRP structural features
  (``ingest --features fastrp``, 128 dimensions) computed by Spark;
* ``synthetic``: a Spark-generated graph of ``--synthetic-edges`` edges (default 10^7; 10^6 nodes,
  64 features, 10 classes),

a lake is ingested (timed, for information) and a run folder is written with a seeded, untrained
2-layer GraphSAGE (hidden ``--hidden``; inference cost does not depend on the weights). Then:

* ``spark``: :func:`tma_spark.infer.infer` (local[*] on this machine): layer-wise propagation with joins and
  Arrow UDFs, the prediction table written as Delta, exact metrics computed. Memory: peak RSS (VmHWM) of
  the driver and of the JVM, and the peak sampled every 50 ms of the summed RSS of the JVM's Python workers.
* ``pyg``: a child process that reads the lake with pyarrow, builds the graph tensors and runs the model on
  the whole graph at once (``model(x, edge_index)``), as a PyG user would; its own VmHWM.

``nodes/s`` = nodes / wall seconds of the inference (Spark: the whole job including writing predictions and
metrics; PyG: forward pass only, and also with loading). Results: ``benchmarks/results/infer.{md,json}``.

    .venv/bin/python benchmarks/bench_infer.py [--graphs ogbn_arxiv,synthetic] [--synthetic-edges 1e7]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, Watch, find_jvm, machine_info, mb, run_worker, worker_main

log = logging.getLogger("bench_infer")


def write_run(run: Path, in_dim: int, hidden: int, out_dim: int, task: str = "node") -> None:
    """A run folder holding a seeded, untrained 2-layer GraphSAGE, as ``tma-spark train`` writes it."""
    import torch

    from tma_spark.train.contract import ModelSpec

    model = ModelSpec("sage", in_dim, hidden, out_dim, layers=2)
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "sage", "hidden": hidden, "layers": 2, "task": task,
                                                 "seed": 0, "eval_negatives": 100}))
    (run / "model.json").write_text(json.dumps(model.to_json()))
    torch.save(model.build(seed=0).state_dict(), run / "best.pt")


def load_graph_and_model(lake: str, run: str) -> tuple:
    """(graph, model in eval mode, seconds to read the lake): the lake read with pyarrow into one in-memory
    graph, and the run's checkpoint, as a PyG user would have them."""
    from tma_spark.infer.job import load_run
    from tma_spark.train.graphdata import build_graph, read_table

    t0 = time.perf_counter()
    g = build_graph(read_table(f"{lake}/nodes", "delta", ["id", "features", "label", "split"]),
                    read_table(f"{lake}/edges", "delta", ["src", "dst"]))
    load_s = time.perf_counter() - t0
    _, state, model_spec = load_run(run)
    model = model_spec.build()
    model.load_state_dict(state)
    model.eval()
    return g, model, load_s


def pyg_worker(spec: dict) -> dict:
    """Child process: load the lake with pyarrow and run the model on the whole graph (as a PyG user would)."""
    import torch

    t0 = time.perf_counter()
    g, model, _ = load_graph_and_model(spec["lake"], spec["run"])
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model(g.x, g.edge_index)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "forward_s": t2 - t1, "nodes": g.num_nodes, "out_rows": int(out.shape[0]),
            "threads": torch.get_num_threads()}


def run_spark(spark, lake: str, run: str, out: str, **sizes) -> dict:
    """``sizes``: InferConfig's ``shuffle_partition_mb`` and ``arrow_batch_mb`` (its defaults when absent)."""
    from tma_spark.infer import InferConfig, infer

    with Watch(find_jvm()) as watch:
        t0 = time.perf_counter()
        result = infer(spark, InferConfig(lake=lake, run=run, out=out, **sizes))
        wall = time.perf_counter() - t0
    return {"status": "ok", "wall_s": wall, "driver_peak_rss": watch.driver_peak, "jvm_peak_rss": watch.jvm_peak,
            "workers_peak_rss": watch.sampled_peak or None, "other_cpu_s": watch.other_cpu_s, "test": result["test"],
            "metric": result["metric"]}


def make_lake(spark, graph: str, path: str, edges: int, data_dir) -> dict:
    from tma_spark.ingest import IngestConfig, ingest
    from tma_spark.ingest.synthetic import SyntheticConfig

    t0 = time.perf_counter()
    if graph == "ogbn_arxiv":
        cfg = IngestConfig(lake=path, dataset="ogbn_arxiv", data_dir=data_dir, structural_features="fastrp")
    else:
        cfg = IngestConfig(lake=path, synthetic=SyntheticConfig(nodes=edges // 10, edges=edges, communities=10,
                                                                feature_dim=64, seed=0))
    lake = ingest(spark, cfg)
    return {"ingest_s": time.perf_counter() - t0, "nodes": lake.meta.num_nodes, "edges": lake.meta.num_edges,
            "feature_dim": lake.meta.feature_dim, "classes": lake.meta.num_classes}


def exactness(spark, data_dir, work: Path, seconds: float) -> dict:
    """Train GraphSAGE centrally on Amazon Computers for ``seconds``, then compare the Spark inference of the
    best checkpoint with PyG full-graph inference of the same checkpoint: max |logit difference| and test
    accuracy of each (and of the train job's own evaluation)."""
    import numpy as np
    import torch

    from tma_spark.ingest import IngestConfig
    from tma_spark.infer import InferConfig, infer
    from tma_spark.infer.job import load_run
    from tma_spark.ingest import ingest
    from tma_spark.train import TrainConfig, train
    from tma_spark.train.graphdata import build_graph, read_table

    lake, run, pred = str(work / "amazon_lake"), str(work / "amazon_run"), str(work / "amazon_pred")
    ingest(spark, IngestConfig(lake=lake, dataset="amazon_computers", data_dir=data_dir))
    summary = train(spark, TrainConfig(lake=lake, out=run, mode="central", round_seconds=seconds, max_rounds=1))
    result = infer(spark, InferConfig(lake=lake, run=run, out=pred))
    got = spark.read.format("delta").load(pred).orderBy("id").select("logits").toPandas()
    _, state, spec = load_run(run)
    g = build_graph(read_table(f"{lake}/nodes", "delta", ["id", "features", "label", "split"]),
                    read_table(f"{lake}/edges", "delta", ["src", "dst"]))
    model = spec.build()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        ref = model(g.x, g.edge_index)
    diff = float((torch.from_numpy(np.stack(got["logits"])) - ref).abs().max())
    test = g.mask("test")
    return {"max_abs_logit_diff": diff, "spark_test_acc": result["test"],
            "pyg_test_acc": float((ref.argmax(-1)[test] == g.y[test]).float().mean()),
            "train_job_test_acc": summary["test"], "train_seconds": seconds, "nodes": g.num_nodes}


def main() -> None:
    if worker_main({"pyg": pyg_worker}):
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", default="ogbn_arxiv,synthetic")
    ap.add_argument("--synthetic-edges", type=float, default=1e7)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--shuffle-partition-mb", type=int, default=None, help="infer's setting (default: its own)")
    ap.add_argument("--arrow-batch-mb", type=int, default=None, help="infer's setting (default: its own)")
    ap.add_argument("--exactness-seconds", type=float, default=60.0,
                    help="training time of the Amazon Computers exactness check (0 = skip it)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from tma_spark.session import get_spark

    spark = get_spark()
    rows = []
    exact = None
    work = Path(tempfile.mkdtemp(prefix="bench_infer_"))
    try:
        if args.exactness_seconds > 0:
            exact = exactness(spark, args.data_dir, work, args.exactness_seconds)
            log.info("exactness on Amazon Computers: %s", exact)
        for graph in args.graphs.split(","):
            lake, run = str(work / f"{graph}_lake"), work / f"{graph}_run"
            info = make_lake(spark, graph, lake, int(args.synthetic_edges), args.data_dir)
            write_run(run, info["feature_dim"], args.hidden, info["classes"])
            log.info("%s: %s", graph, info)
            sizes = {k: v for k, v in (("shuffle_partition_mb", args.shuffle_partition_mb),
                                       ("arrow_batch_mb", args.arrow_batch_mb)) if v is not None}
            spark_row = run_spark(spark, lake, str(run), str(work / f"{graph}_pred"), **sizes)
            pyg_row = run_worker(__file__, "pyg", {"lake": lake, "run": str(run)}, work)
            rows.append({"graph": graph, **info, "spark": spark_row, "pyg": pyg_row})
            log.info("%s: spark %s | pyg %s", graph, spark_row, pyg_row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/bench_infer.py " + " ".join(sys.argv[1:])
    lines = ["# Full-graph inference: Spark job against PyG in one process", "",
             f"Command: `{command}`  ", f"Machine: {os.cpu_count()} cores, Spark {spark.sparkContext.master}; "
             f"2-layer GraphSAGE, hidden {args.hidden}. Spark wall time covers the whole job (propagation, "
             "prediction table written as Delta, exact metrics); PyG forward is `model(x, edge_index)` on the "
             "whole graph in one process (load = reading the lake with pyarrow and building tensors).", "",
             "| graph | nodes | edges | features | Spark s | Spark nodes/s | Spark peak MB (driver / JVM / workers) | "
             "PyG forward s | PyG nodes/s (forward) | PyG nodes/s (load+forward) | PyG peak MB |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        s, p = r["spark"], r["pyg"]
        pyg_cells = (f"{p['forward_s']:.1f} | {r['nodes'] / p['forward_s']:,.0f} | "
                     f"{r['nodes'] / (p['load_s'] + p['forward_s']):,.0f} | {mb(p['peak_rss'])}"
                     if p["status"] == "ok" else f"{p['status']} ({p['note']}) | - | - | -")
        lines.append(f"| {r['graph']} | {r['nodes']:,} | {r['edges']:,} | {r['feature_dim']} | {s['wall_s']:.1f} | "
                     f"{r['nodes'] / s['wall_s']:,.0f} | {mb(s['driver_peak_rss'])} / {mb(s['jvm_peak_rss'])} / "
                     f"{mb(s['workers_peak_rss'])} | {pyg_cells} |")
    if exact:
        lines += ["", f"Exactness on Amazon Computers ({exact['nodes']:,} nodes; GraphSAGE trained centrally for "
                  f"{exact['train_seconds']:g} s): max |Spark logit - PyG logit| = {exact['max_abs_logit_diff']:.2e} "
                  f"(target < 1e-4: {'met' if exact['max_abs_logit_diff'] < 1e-4 else 'NOT met'}); test accuracy "
                  f"Spark {exact['spark_test_acc']:.4f}, PyG {exact['pyg_test_acc']:.4f}, train job's evaluation "
                  f"{exact['train_job_test_acc']:.4f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "infer.md").write_text(text)
    (RESULTS / "infer.json").write_text(json.dumps({"command": command, "args": vars(args), "exactness": exact,
                                                    "machine": machine_info(spark), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
