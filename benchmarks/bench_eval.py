"""Sampled evaluation against exact evaluation, on a synthetic graph of 10^7 edges.

In one run: a Spark-generated graph (``--edges``, default 10^7; nodes = edges / 10, 64 features, 10
communities, homophily 0.8, ``--signal`` 0.1, so that the neighbourhood matters) is ingested; a GraphSAGE
model is trained centrally for ``--budget`` seconds (neighbour-sampled, sampled evaluation); then

* exact: ``tma-spark infer`` computes the model's validation and test accuracy on every node with Spark;
* sampled: for each of ``--seeds`` seeds, the train job's sampled evaluator is built as ``train`` builds it
  (``--eval-nodes`` validation and test targets, their neighbourhoods with each of the fan-out settings ``--eval-fanouts``
  extracted by Spark once) and scores the same weights.

Reported: each seed's sampled accuracies, their difference from the exact ones (mean and spread over seeds),
the sampled subgraph's size against its bound, the extraction time, and the driver's peak RSS.
Results: ``benchmarks/results/eval_sampled.{md,json}``.

    .venv/bin/python benchmarks/bench_eval.py [--edges 1e7] [--seeds 5] [--eval-nodes 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS, machine_info, peak_rss, shell_command, write_results

log = logging.getLogger("bench_eval")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=float, default=1e7)
    ap.add_argument("--signal", type=float, default=0.1)
    ap.add_argument("--budget", type=float, default=90.0, help="central training seconds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-nodes", type=int, default=10_000)
    ap.add_argument("--eval-fanouts", default="25,10;25,25;50,50", help="fan-out settings to compare, ';'-separated")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from tma_spark.infer import InferConfig, infer
    from tma_spark.infer.job import load_run
    from tma_spark.ingest import IngestConfig, ingest
    from tma_spark.ingest.synthetic import SyntheticConfig
    from tma_spark.session import get_spark
    from tma_spark.train import TrainConfig, train
    from tma_spark.train.evaluation import build_evaluator
    from tma_spark.train.neighbourhood import sampled_bound

    spark = get_spark(app_name="bench_eval", quiet=True)
    work = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    settings = [tuple(int(f) for f in item.split(",")) for item in args.eval_fanouts.split(";")]
    try:
        edges = int(args.edges)
        t0 = time.perf_counter()
        lake = ingest(spark, IngestConfig(lake=str(work / "lake"), synthetic=SyntheticConfig(
            nodes=edges // 10, edges=edges, communities=10, homophily=0.8, feature_dim=64, signal=args.signal,
            seed=0)))
        ingest_s = time.perf_counter() - t0
        run = str(work / "run")
        t0 = time.perf_counter()
        summary = train(spark, TrainConfig(lake=lake.path, out=run, mode="central", sampler="neighbor",
                                           eval="sampled", eval_nodes=1000, round_seconds=30,
                                           time_limit=args.budget, seed=0))
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact = infer(spark, InferConfig(lake=lake.path, run=run, out=str(work / "pred")))
        infer_s = time.perf_counter() - t0
        _, state, spec = load_run(run, "best")
        model = spec.build()
        model.load_state_dict(state)
        results = {
            "command": shell_command(), "machine": machine_info(spark),
            "graph": {"nodes": lake.meta.num_nodes, "edges": lake.meta.num_edges, "feature_dim": 64,
                      "signal": args.signal},
            "settings": {"eval_nodes": args.eval_nodes, "budget_s": args.budget, "training_fanouts": [25, 10]},
            "ingest_s": ingest_s, "train_s": train_s, "infer_s": infer_s, "train_summary": summary,
            "exact": {"val": exact["val"], "test": exact["test"]}, "fanouts": [],
        }
        for fanouts in settings:
            seeds = []
            for seed in range(args.seeds):
                cfg = TrainConfig(lake=lake.path, out=run, mode="central", eval="sampled",
                                  eval_nodes=args.eval_nodes, eval_fanouts=fanouts, seed=seed).validate()
                t0 = time.perf_counter()
                evaluator = build_evaluator(spark, lake, cfg)
                extract_s = time.perf_counter() - t0
                scores = evaluator.evaluate(model)
                seeds.append({"seed": seed, "val": scores["val"], "test": scores["test"], "extract_s": extract_s,
                              "nodes": evaluator.graph.num_nodes,
                              "edges": int(evaluator.graph.edge_index.shape[1] // 2)})
                log.info("fan-outs %s seed %d: sampled val %.4f test %.4f (exact %.4f / %.4f), %d nodes, %.1f s",
                         fanouts, seed, scores["val"], scores["test"], exact["val"], exact["test"],
                         evaluator.graph.num_nodes, extract_s)
                del evaluator
            diffs = {s: [100 * (r[s] - exact[s]) for r in seeds] for s in ("val", "test")}
            results["fanouts"].append({
                "fanouts": list(fanouts), "bound_nodes": sampled_bound(2 * args.eval_nodes, fanouts)[0],
                "seeds": seeds,
                "difference_points": {s: {"mean": statistics.mean(d),
                                          "stdev": statistics.stdev(d) if len(d) > 1 else 0.0,
                                          "max_abs": max(abs(x) for x in d)} for s, d in diffs.items()}})
        results["driver_peak_rss_mb"] = (peak_rss() or 0) / 2**20
        write_results(RESULTS / "eval_sampled.json", results, report(results))
        print(report(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        spark.stop()


def report(r: dict) -> str:
    g = r["graph"]
    lines = [
        "# Sampled evaluation against exact evaluation", "",
        f"Graph: synthetic, {g['nodes']:,} nodes, {g['edges']:,} edges, {g['feature_dim']} features, signal "
        f"{g['signal']}; model: GraphSAGE (2 layers, hidden 256) trained centrally with fan-outs 25,10 for "
        f"{r['settings']['budget_s']:.0f} s. Machine: {r['machine'].get('nproc', '?')} cores. "
        f"Command: `{r['command']}`.", "",
        f"Exact (Spark inference on every node, {r['infer_s']:.0f} s): val {r['exact']['val']:.4f}, test "
        f"{r['exact']['test']:.4f}. Sampled: {r['settings']['eval_nodes']:,} validation and "
        f"{r['settings']['eval_nodes']:,} test targets per seed, the train job's sampled evaluator.", "",
        "| fan-outs | seed | val | test | val - exact (pts) | test - exact (pts) | subgraph nodes | edges | "
        "extraction (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in r["fanouts"]:
        for s in f["seeds"]:
            lines.append(f"| {','.join(map(str, f['fanouts']))} | {s['seed']} | {s['val']:.4f} | {s['test']:.4f} | "
                         f"{100 * (s['val'] - r['exact']['val']):+.2f} | {100 * (s['test'] - r['exact']['test']):+.2f} "
                         f"| {s['nodes']:,} | {s['edges']:,} | {s['extract_s']:.1f} |")
    lines += ["", "| fan-outs | bound (nodes) | val - exact: mean, stdev, max abs (pts) | test - exact: mean, stdev, "
              "max abs (pts) |", "|---|---:|---|---|"]
    for f in r["fanouts"]:
        d = f["difference_points"]
        lines.append(f"| {','.join(map(str, f['fanouts']))} | {f['bound_nodes']:,} | {d['val']['mean']:+.2f}, "
                     f"{d['val']['stdev']:.2f}, {d['val']['max_abs']:.2f} | {d['test']['mean']:+.2f}, "
                     f"{d['test']['stdev']:.2f}, {d['test']['max_abs']:.2f} |")
    lines += ["", f"Driver peak RSS {r['driver_peak_rss_mb']:,.0f} MB.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TMA_SPARK_MASTER", "local[2]")
    main()
