"""The ``tma-spark`` command line. ``jobs/*.py`` call :func:`main` with the same arguments.

Each subcommand parses its arguments into a typed config, validates it (before
any Spark job starts), then calls one library function.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import List, Optional, Sequence

from . import __version__
from .ingest.config import INPUT_FORMATS, IngestConfig
from .ingest.datasets import DATASETS
from .errors import ConfigError, TmaSparkError
from .lake import LAKE_FORMATS
from .ingest.synthetic import SyntheticConfig

__all__ = ["main", "build_parser"]

log = logging.getLogger("tma_spark")


def _count(text: str, flag: str) -> int:
    """Parse counts such as 1000000, 1e6 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a number.") from None
    if value != int(value):
        raise ConfigError(f"{flag} {text!r} must be a whole number.")
    return int(value)


def _fractions(text: str, flag: str = "--split") -> tuple:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be three comma-separated fractions, e.g. 0.6,0.2,0.2.") from None
    if len(parts) != 3:
        raise ConfigError(f"{flag} {text!r} must have three fractions (train,val,test).")
    return parts


def _ints(text: str, flag: str) -> tuple:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be comma-separated whole numbers, e.g. 25,10.") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tma-spark", description="GNN training on Spark with randomized partitions "
                                     "and time-based model aggregation (RandomTMA / SuperTMA).")
    parser.add_argument("--version", action="version", version=f"tma_spark {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--master", help="Spark master (default: local[*]; untouched under spark-submit)")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors (for schedulers)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("--config", help="YAML config file (see README, 'Config files'); flags given on the "
                        "command line override it")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", parents=[common], help="import a graph into a lake",
                       description="Import a graph into a lake (Delta by default). Exactly one source: "
                       "--nodes/--edges tables, --dataset, --npz or --synthetic.")
    p.add_argument("--lake", required=True, help="output lake folder")
    p.add_argument("--nodes", help="node table path or catalog name; with --synthetic: the number of nodes")
    p.add_argument("--edges", help="edge table path or catalog name; with --synthetic: the number of edges")
    p.add_argument("--format", dest="input_format", default="delta", choices=INPUT_FORMATS,
                   help="format of --nodes/--edges (table = catalog table names)")
    p.add_argument("--dataset", choices=sorted(DATASETS), help="a named real graph (cora is bundled)")
    p.add_argument("--data-dir", help="folder holding the named datasets (default: $TMA_SPARK_DATA_DIR or "
                   "../shared/datasets)")
    p.add_argument("--npz", help="a graph file in the npz format (see README)")
    p.add_argument("--synthetic", action="store_true", help="generate a synthetic graph with Spark")
    p.add_argument("--communities", type=int, default=10, help="synthetic: communities = classes (default 10)")
    p.add_argument("--homophily", type=float, default=0.8, help="synthetic: P(edge inside a community) (default 0.8)")
    p.add_argument("--signal", type=float, default=1.0, help="synthetic: class-centroid scale in the features, noise "
                   "is N(0, 1) (default 1: features alone separate the classes; 0.1: the graph is needed)")
    p.add_argument("--feature-dim", type=int, default=None,
                   help="synthetic: feature dimension (default 64); datasets without features: random dim (128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic graph, random split and features")
    p.add_argument("--split", default="0.6,0.2,0.2", help="train,val,test fractions of the seeded node split")
    p.add_argument("--edge-split", default="0.9,0.05,0.05",
                   help="train,val,test fractions of the seeded edge split (link prediction), used when the "
                   "edges have no split column")
    p.add_argument("--features", default="input",
                   help="input (default: the input's features; random for datasets without) | fastrp (FastRP "
                   "structural features of --feature-dim, computed by Spark from the training edges)")
    p.add_argument("--num-classes", type=int, help="number of classes C (labels must be 0..C-1; default max+1)")
    p.add_argument("--directed", action="store_true", help="table input: edges are directed")
    p.add_argument("--lake-format", default="delta", choices=LAKE_FORMATS)
    p.add_argument("--overwrite", action="store_true", help="replace an existing lake (atomically)")

    p = sub.add_parser("partition", parents=[common], help="split a lake into K parts (RandomTMA, METIS)",
                       description="Assign nodes to K parts, keep intra-part edges, write parts and statistics.")
    p.add_argument("--lake", required=True)
    p.add_argument("--out", required=True, help="output partitions folder (PARTS)")
    p.add_argument("--strategy", default="random",
                   help="random (RandomTMA), super (SuperTMA) or metis (PSGD-PA baseline)")
    p.add_argument("--parts", "-k", type=int, default=4, help="number of parts K (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="delta", choices=LAKE_FORMATS)
    p.add_argument("--overwrite", action="store_true", help="replace an existing PARTS folder (atomically)")
    p.add_argument("--super-nodes", "-m", type=int, help="super: about M super-nodes (default: N/200, >= 32K)")
    p.add_argument("--super-method", default="lpa", help="super: lpa (label propagation) or metis (pymetis clusters)")
    p.add_argument("--lpa", default="auto", help="super: auto|graphframes|builtin label propagation")
    p.add_argument("--lpa-iter", type=int, default=10, help="super: label propagation iterations (default 10)")
    p.add_argument("--full-stats", default="auto", help="auto|on|off: also count duplicate edges, isolated nodes "
                   "and per-part degree quantiles (shuffles every edge; auto = up to 2e7 edges)")

    p = sub.add_parser("train", parents=[common], help="train K local GNNs with time-based model averaging",
                       description="Train one model per part in barrier-mode Spark tasks; average every T seconds.")
    p.add_argument("--lake", required=True)
    p.add_argument("--partitions", help="PARTS folder from 'tma-spark partition' (not needed for --mode central)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--task", default="node", help="node (classification, accuracy) | link (prediction, MRR)")
    p.add_argument("--model", default="sage", help="sage | gcn | gat | mlp")
    p.add_argument("--mode", default="tma", help="tma | central | psgd-pa | llcg | ddp (synchronous data-parallel "
                   "baseline: --workers trainers on the whole graph, gradients averaged every step)")
    p.add_argument("--workers", type=int, default=4, help="ddp: number of data-parallel trainers (default 4)")
    p.add_argument("--round-seconds", "-T", type=float, default=30.0, help="seconds between averagings (T)")
    p.add_argument("--time-limit", type=float, default=300.0, help="total training seconds")
    p.add_argument("--max-rounds", type=int)
    p.add_argument("--patience", type=int, help="stop after this many rounds without a better validation metric")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--weighting", default="none", help="none (paper) | nodes | edges")
    p.add_argument("--llcg-steps", type=int, default=5, help="llcg: server correction steps per round")
    p.add_argument("--sampler", default="auto", help="full (full-batch on each part) | neighbor (mini-batches with "
                   "neighbour sampling) | auto (full while the part is small enough; default)")
    p.add_argument("--fanouts", help="neighbor: neighbours sampled per hop, hop 1 first, one per layer; -1 = all "
                   "(default 25,10 for 2 layers)")
    p.add_argument("--batch-size", type=int, default=1024, help="neighbor: target nodes (or edges) per step")
    p.add_argument("--eval", default="auto", help="full (exact, whole graph on the driver) | sampled (fixed sample "
                   "of targets, neighbourhoods extracted by Spark once) | auto (full up to 2e7 edges)")
    p.add_argument("--eval-nodes", type=int, default=5000, help="sampled eval: validation and test nodes each")
    p.add_argument("--eval-edges", type=int, default=5000, help="link: validation and test edges scored each")
    p.add_argument("--eval-negatives", type=int, default=100, help="link: negatives per edge for MRR")
    p.add_argument("--optimizer-state", default="shipped", help="shipped (travels with each round's task; "
                   "default) | resident (stays in the task's Python worker)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder (the previous run "
                   "stays in place until the new one finishes)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                   "(after the driver was killed or a round failed for good)")
    p.add_argument("--round-retries", type=int, default=2, help="times a failed round is run again from the same "
                   "weights (default 2)")
    p.add_argument("--tolerate-failures", action="store_true", help="average a round over the trainers that "
                   "finish it; a lost trainer rejoins in the next round")
    p.add_argument("--mlflow", nargs="?", const="default", metavar="TRACKING_URI", help="track the run with "
                   "MLflow (default store: ./mlruns, or $MLFLOW_TRACKING_URI)")
    p.add_argument("--inject-failure", dest="inject_failures", metavar="KIND:PART:ROUND[,...]",
                   help="fault injection for tests and demos: kill trainer PART during round ROUND; KIND is "
                   "trainer (its Python worker) or executor (its executor JVM; needs local-cluster or a cluster)")

    p = sub.add_parser("infer", parents=[common], help="apply a trained model to every node (Spark), exact metrics",
                       description="Layer-wise full-graph inference as Spark jobs: predictions or embeddings for "
                       "every node, written as a table; exact validation/test metrics to RUN/eval.json.")
    p.add_argument("--lake", required=True)
    p.add_argument("--run", required=True, help="run folder of 'tma-spark train'")
    p.add_argument("--out", required=True, help="prediction table to write (PRED)")
    p.add_argument("--checkpoint", default="best", help="best (default) | last")
    p.add_argument("--format", default="delta", choices=LAKE_FORMATS)
    p.add_argument("--eval-negatives", type=int, help="link: random nodes each held-out edge is ranked against "
                   "(default: the run's --eval-negatives)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing prediction table")

    p = sub.add_parser("info", parents=[common], help="summarize a lake")
    p.add_argument("--lake", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("jars", parents=[common], help="fetch / show the Delta jars for spark-submit")
    p.add_argument("--fetch", action="store_true", help="download them with Maven if not cached")
    p.add_argument("--classpath", action="store_true", help="print the comma-separated jar paths (for --jars)")

    p = sub.add_parser("bench", parents=[common], help="compare TMA with the baselines: same model, budget, cores",
                       description="Train every method on one lake with the same model, hyper-parameters, budget "
                       "and cores, once per seed; write BENCH/results.json, report.md and curves.png.")
    p.add_argument("--lake", required=True)
    p.add_argument("--out", required=True, help="benchmark folder (BENCH)")
    p.add_argument("--methods", default="central,ddp,psgd-pa,llcg,random,super",
                   help="comma-separated; central is required (the target is 98%% of its best validation metric)")
    p.add_argument("--budget", type=float, default=120.0, help="training seconds per run (default 120)")
    p.add_argument("--seeds", type=int, default=3, help="runs per method (default 3)")
    p.add_argument("--parts", "-k", type=int, default=4, help="K: parts / trainers (default 4)")
    p.add_argument("--round-seconds", "-T", type=float, default=10.0, help="T (default 10)")
    p.add_argument("--task", default="node")
    p.add_argument("--model", default="sage")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--sampler", default="auto")
    p.add_argument("--target-fraction", type=float, default=0.98)
    p.add_argument("--super-method", default="lpa",
                   help="SuperTMA's super-nodes: lpa (label propagation, default) or metis (faster on large graphs)")
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds BENCH already has (same settings) and run only the missing ones; "
                        "e.g. --seeds 2 --resume adds seed 1 in a fresh Spark application")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("run", parents=[common], help="the whole pipeline from a config file: ingest (or use an "
                       "existing lake), partition, train, infer",
                       description="Run ingest, partition, train and infer as configured in --config (YAML). "
                       "Every step's settings are validated before Spark starts.")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. "
                   "--set train.time_limit=60 or --set lake=/data/lake (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace every existing output (lake, partitions, "
                   "run, predictions)")
    p.add_argument("--mlflow", nargs="?", const="default", metavar="TRACKING_URI", help="track the pipeline with "
                   "MLflow (default store: ./mlruns, or $MLFLOW_TRACKING_URI; or 'mlflow:' in the config)")
    parser._tma_subparsers = {name: sp for name, sp in sub.choices.items()}
    return parser


def _ingest_config(args: argparse.Namespace) -> IngestConfig:
    synth = None
    nodes, edges = args.nodes, args.edges
    if args.synthetic:
        if nodes is None or edges is None:
            raise ConfigError("--synthetic needs --nodes N and --edges M (counts).")
        synth = SyntheticConfig(nodes=_count(nodes, "--nodes"), edges=_count(edges, "--edges"),
                                communities=args.communities, homophily=args.homophily,
                                feature_dim=args.feature_dim or 64, seed=args.seed, signal=args.signal)
        nodes = edges = None
    return IngestConfig(
        lake=args.lake, nodes=nodes, edges=edges, input_format=args.input_format, dataset=args.dataset,
        npz=args.npz, synthetic=synth, data_dir=args.data_dir, lake_format=args.lake_format,
        overwrite=args.overwrite, num_classes=args.num_classes, split_seed=args.seed,
        split_fractions=_fractions(args.split),
        edge_split_fractions=_fractions(args.edge_split, "--edge-split"), feature_dim=args.feature_dim or 128, directed=args.directed,
        structural_features=None if args.features == "input" else args.features,
    ).validate()


def _trainers(cfg) -> int:
    """Number of trainers of a train config (1 for central, else K from the partitions folder)."""
    if cfg.mode == "central":
        return 1
    if cfg.mode == "ddp":
        return cfg.workers
    from .partition.meta import open_parts

    return open_parts(None, cfg.partitions).parts


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def _partition_config(args: argparse.Namespace):
    from .partition import PartitionConfig

    return PartitionConfig(lake=args.lake, out=args.out, strategy=args.strategy, parts=args.parts, seed=args.seed,
                           overwrite=args.overwrite, format=args.format, full_stats=args.full_stats,
                           super_nodes=args.super_nodes, super_method=args.super_method, lpa=args.lpa,
                           lpa_iter=args.lpa_iter).validate()


def _train_config(args: argparse.Namespace):
    from .train import TrainConfig

    return TrainConfig(
        lake=args.lake, partitions=args.partitions, out=args.out, task=args.task, model=args.model,
        mode=args.mode, round_seconds=args.round_seconds, time_limit=args.time_limit, max_rounds=args.max_rounds,
        patience=args.patience, hidden=args.hidden, layers=args.layers, dropout=args.dropout, lr=args.lr,
        weighting=args.weighting, llcg_steps=args.llcg_steps, seed=args.seed, overwrite=args.overwrite,
        sampler=args.sampler, fanouts=_ints(args.fanouts, "--fanouts") if args.fanouts else None,
        batch_size=args.batch_size, eval=args.eval, eval_nodes=args.eval_nodes, eval_edges=args.eval_edges,
        eval_negatives=args.eval_negatives, optimizer_state=args.optimizer_state, resume=args.resume,
        workers=args.workers,
        round_retries=args.round_retries, tolerate_failures=args.tolerate_failures,
        inject_failures=args.inject_failures,
    ).validate()


def _infer_config(args: argparse.Namespace):
    from .infer import InferConfig

    return InferConfig(lake=args.lake, run=args.run, out=args.out, checkpoint=args.checkpoint, format=args.format,
                       overwrite=args.overwrite, eval_negatives=args.eval_negatives).validate()


def _bench_config(args: argparse.Namespace):
    from .bench import BenchConfig

    return BenchConfig(lake=args.lake, out=args.out, methods=tuple(m.strip() for m in args.methods.split(",")),
                       budget=args.budget, seeds=args.seeds, parts=args.parts, round_seconds=args.round_seconds,
                       task=args.task, model=args.model, hidden=args.hidden, lr=args.lr, sampler=args.sampler,
                       target_fraction=args.target_fraction, super_method=args.super_method,
                       overwrite=args.overwrite, resume=args.resume).validate()


BUILDERS = {"ingest": _ingest_config, "partition": _partition_config, "train": _train_config,
            "infer": _infer_config, "bench": _bench_config}


def _step_args(doc: dict, command: str, extra: Sequence[str] = ()) -> argparse.Namespace:
    """Parse ``command``'s flags with the config file's values as defaults; ``extra`` flags override them."""
    from .configfile import command_defaults

    parser = build_parser()
    sub = parser._tma_subparsers[command]
    defaults = command_defaults(doc, command, sub)
    sub.set_defaults(**defaults)
    missing = []
    for action in sub._actions:
        if action.dest in defaults:
            action.required = False
        elif action.required and not any(e.split("=")[0] in action.option_strings for e in extra):
            missing.append(action.dest)
    if missing:
        keys = [f"{command}.{d}" + (f" or top-level '{_top_key(command, d)}'" if _top_key(command, d) else "")
                for d in missing]
        raise ConfigError(f"{doc.get('_path', 'config')}: {command} needs {', '.join(keys)} (or the flags "
                          f"{', '.join('--' + d.replace('_', '-') for d in missing)}).")
    return parser.parse_args([command, *extra])


def _top_key(command: str, dest: str) -> Optional[str]:
    from .configfile import PATH_KEYS

    return PATH_KEYS.get(command, {}).get(dest)


def _parse(argv: List[str]) -> argparse.Namespace:
    """Parse the command line; with ``--config FILE`` the file's values are the defaults of the flags."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if not known.config or command in (None, "run", "jars") or command not in build_parser()._tma_subparsers:
        args = build_parser().parse_args(argv)
        args.config_doc = {}
        return args
    from .configfile import STEPS, command_defaults, load_config

    doc = load_config(known.config)
    subs = build_parser()._tma_subparsers
    for step in STEPS:  # a typo in any section fails now, not when that step runs
        command_defaults(doc, step, subs[step])
    at = argv.index(command)
    args = _step_args(doc, command, argv[:at] + argv[at + 1:])
    args.config_doc = doc
    return args


def _log_effective_config(args: argparse.Namespace, cfg) -> None:
    """Log the effective settings of a config-file run (each command also saves them with its output)."""
    if getattr(args, "config", None) and cfg is not None:
        from dataclasses import asdict

        log.info("effective %s settings (from %s and the command line): %s", args.command, args.config,
                 json.dumps(asdict(cfg), default=str, sort_keys=True))


def run(argv: Optional[List[str]] = None) -> int:
    """Run a subcommand; return the exit status (raises TmaSparkError on user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    _setup_logging(args)
    from . import jars

    if args.command == "jars":
        paths = jars.fetch_jars() if args.fetch else (jars.cached_jars() or [])
        if args.classpath:
            print(",".join(paths))
        else:
            for p in paths or [f"(not fetched) {c}" for c in jars.maven_coordinates()]:
                print(p)
        return 0
    if args.command == "run":
        from .pipeline import run_pipeline

        print(json.dumps(run_pipeline(args)))
        return 0

    cfg = BUILDERS[args.command](args) if args.command in BUILDERS else None  # validated before Spark starts
    _log_effective_config(args, cfg)
    from .session import get_spark, running_under_cluster_launcher

    master = args.master
    trainers = _trainers(cfg) if args.command == "train" else cfg.parts if args.command == "bench" else 1
    if master is None and args.command in ("train", "bench") and not running_under_cluster_launcher():
        master = f"local[{max(trainers, os.cpu_count() or 1)}]"  # one task slot per trainer
    spark = get_spark(master=master, quiet=args.quiet)
    if args.command == "ingest":
        from .ingest import ingest

        ingest(spark, cfg)
        return 0
    if args.command == "partition":
        from .partition import partition

        stats = partition(spark, cfg)
        keys = ("strategy", "parts", "seed", "edge_retention", "label_tv", "node_balance", "edges_kept")
        print(json.dumps({k: stats[k] for k in keys}))
        return 0
    if args.command == "train":
        from .pipeline import train_tracked
        from .tracking import Tracker, tracking_settings

        tracker = Tracker(tracking_settings(args.mlflow, args.config_doc.get("mlflow")))
        print(json.dumps(train_tracked(spark, cfg, tracker)))
        return 0
    if args.command == "infer":
        from .infer import infer

        print(json.dumps({k: v for k, v in infer(spark, cfg).items() if k != "config"}))
        return 0
    if args.command == "bench":
        from .bench import bench

        results = bench(spark, cfg, command=" ".join(["tma-spark", *argv]))
        print(json.dumps({"out": cfg.out, "speedups": results["speedups"],
                          "rows": [{k: r[k] for k in ("method", "test_mean", "time_to_target_mean")}
                                   for r in results["rows"]]}))
        return 0
    if args.command == "info":
        from .info import format_summary, lake_summary

        summary = lake_summary(spark, args.lake)
        print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
        return 0
    raise AssertionError(args.command)


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user errors print one clear message and exit with status 2."""
    try:
        code = run(argv)
    except TmaSparkError as exc:
        logging.getLogger("tma_spark").error("%s", exc)
        sys.exit(exc.exit_code)
    sys.exit(code)


if __name__ == "__main__":
    main()
