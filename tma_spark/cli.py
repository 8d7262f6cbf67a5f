"""The ``tma-spark`` command line. ``jobs/*.py`` call :func:`main` with the same arguments.

Each subcommand parses its arguments into a typed config, validates it (before any Spark job starts), then
calls one library function. The flags of a command are generated from the dataclass that declares its
settings (:data:`tma_spark.commands.SETTINGS`); only the flags of the invocation itself (``--master``, ``-q``,
``-v``, ``--config``, ``--mlflow``) and those of ``jars`` and ``run`` are written here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional

from . import __version__, fs, jsonsafe
from .commands import CONFIG_COMMANDS, SETTINGS, build_config, config_paths, file_settings, spark_settings
from .configfile import STEPS, command_defaults, load_config
from .errors import OutOfMemory, TmaSparkError, note_size, noted_size, out_of_memory_message
from .settings import add_arguments

__all__ = ["main", "build_parser"]

log = logging.getLogger("tma_spark")

#: command -> (one-line help, description) of the commands whose flags a settings class declares
_DOCS = {
    "ingest": ("import a graph into a lake", "Import a graph into a lake (Delta by default). Exactly one source: "
               "--nodes/--edges tables, --dataset, --npz or --synthetic."),
    "partition": ("split a lake into K parts (RandomTMA, METIS)",
                  "Assign nodes to K parts, keep intra-part edges, write parts and statistics."),
    "train": ("train K local GNNs with time-based model averaging",
              "Train one model per part in barrier-mode Spark tasks; average every T seconds."),
    "infer": ("apply a trained model to every node (Spark), exact metrics",
              "Layer-wise full-graph inference as Spark jobs: predictions or embeddings for every node, written "
              "as a table; exact validation/test metrics to RUN/eval.json."),
    "info": ("summarize a lake", None),
    "bench": ("compare TMA with the baselines: same model, budget, cores",
              "Train every method on one lake with the same model, hyper-parameters, budget and cores, once per "
              "seed; write BENCH/results.json, report.md and curves.png."),
}


_COMMANDS = (*_DOCS, "jars", "run")


def _add_mlflow(parser: argparse.ArgumentParser, what: str, where: str = "") -> None:
    parser.add_argument("--mlflow", nargs="?", const="default", metavar="TRACKING_URI", help=f"track {what} with "
                        f"MLflow (default store: ./mlruns, or $MLFLOW_TRACKING_URI{where})")


def _common() -> argparse.ArgumentParser:
    """The flags of the invocation, which every command has."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--master", help="Spark master (default: local[*]; untouched under spark-submit)")
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors (for schedulers)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("--conf", action="append", metavar="KEY=VALUE", help="a Spark setting for the session "
                        "tma_spark starts, e.g. --conf spark.hadoop.fs.s3a.endpoint=http://minio:9000 (repeatable; "
                        "see README, 'Data on object storage')")
    common.add_argument("--config", help="YAML config file (see README, 'Config files'); flags given on the "
                        "command line override it")
    return common


def build_parser(file_values: Optional[Dict[str, dict]] = None) -> argparse.ArgumentParser:
    """The ``tma-spark`` parser; ``file_values`` (command -> values from a config file) replace defaults."""
    file_values = file_values or {}
    parser = argparse.ArgumentParser(prog="tma-spark", description="GNN training on Spark with randomized partitions "
                                     "and time-based model aggregation (RandomTMA / SuperTMA).")
    parser.add_argument("--version", action="version", version=f"tma_spark {__version__}")
    common = _common()
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str) -> None:
        summary, description = _DOCS[name]
        p = sub.add_parser(name, parents=[common], help=summary, description=description)
        add_arguments(p, SETTINGS[name], file_values.get(name))
        if name == "train":
            _add_mlflow(p, "the run")

    for name in ("ingest", "partition", "train", "infer", "info"):
        command(name)
    p = sub.add_parser("jars", parents=[common], help="fetch / show the Delta jars for spark-submit")
    p.add_argument("--fetch", action="store_true", help="download them with Maven if not cached")
    p.add_argument("--classpath", action="store_true", help="print the comma-separated jar paths (for --jars)")
    p.add_argument("--s3", action="store_true", help="also Spark's s3a:// connector (hadoop-aws and the AWS SDK "
                   "bundle, about 690 MB)")
    command("bench")
    p = sub.add_parser("run", parents=[common], help="the whole pipeline from a config file: ingest (or use an "
                       "existing lake), partition, train, infer",
                       description="Run ingest, partition, train and infer as configured in --config (YAML). "
                       "Every step's settings are validated before Spark starts.")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. "
                   "--set train.time_limit=60 or --set lake=/data/lake (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace every existing output (lake, partitions, "
                   "run, predictions)")
    _add_mlflow(p, "the pipeline", "; or 'mlflow:' in the config")
    return parser


def _trainers(cfg) -> int:
    """Number of trainers of a train config (1 for central, else K from the partitions folder)."""
    if cfg.mode == "central":
        return 1
    if cfg.mode == "ddp":
        return cfg.workers
    from .partition.meta import open_parts

    return open_parts(None, cfg.partitions).parts


class _LastStep(logging.Handler):
    """Remembers the last INFO line of tma_spark's loggers: the step an out-of-memory message names (none
    with ``-q``, which logs no INFO lines)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.step: Optional[str] = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO:
            self.step = record.getMessage()


_LAST_STEP = _LastStep()


def _not_py4j_on_root(record: logging.LogRecord) -> bool:
    """False for py4j's records on the root logger: when the JVM dies, py4j logs "Exception while sending
    command." with a traceback there (not on its own logger), and the CLI reports the failure itself."""
    return not (record.name == "root" and f"{os.sep}py4j{os.sep}" in record.pathname)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_py4j_on_root)
    _LAST_STEP.step = None
    note_size(None)
    if _LAST_STEP not in log.handlers:
        log.addHandler(_LAST_STEP)


def _error_text(exc: BaseException) -> str:
    """The text of ``exc`` and of its causes (a Py4J error's text holds the Java exception and its causes)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        try:
            parts.append(f"{type(exc).__name__}: {exc}")
        except Exception as failed:  # noqa: BLE001 -- a Py4J error asks its JVM, which may be gone, for its text
            parts.append(f"{type(exc).__name__}: <str() failed: {type(failed).__name__}>")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


_MEMORY_KEYS = ("spark.driver.memory", "spark.executor.memory")
_SESSION_MEMORY: Dict[str, str] = {}  # the session's memory settings, read when it started (its JVM may die)


def _memory_settings() -> Dict[str, str]:
    """The running session's ``spark.driver.memory`` and ``spark.executor.memory`` (those set); when its JVM
    does not answer, those read when the session started ({} when unknown)."""
    try:
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is None:
            return dict(_SESSION_MEMORY)
        conf = sc.getConf()
        return {k: conf.get(k) for k in _MEMORY_KEYS if conf.contains(k)}
    except Exception:  # noqa: BLE001 -- the JVM is gone: what was read at the start
        return dict(_SESSION_MEMORY)


def _jvm_exit_status(text: str) -> Optional[int]:
    """The exit status of the driver JVM this process launched, when it has exited (else None). When the
    error says the JVM stopped answering, wait a few seconds for it to exit."""
    try:
        from pyspark import SparkContext

        proc = getattr(SparkContext._gateway, "proc", None)  # None under spark-submit: its launcher owns the JVM
        if proc is None:
            return None
        gone = any(s in text for s in ("Py4JNetworkError", "Answer from Java side is empty", "ConnectionRefused",
                                       "ConnectionResetError", "str() failed"))
        return proc.wait(timeout=10) if gone else proc.poll()
    except Exception:  # noqa: BLE001 -- still running after the wait, or no launcher to ask
        return None


def _out_of_memory(command: str, exc: BaseException) -> Optional[OutOfMemory]:
    """``exc`` as one clear :class:`OutOfMemory` error when it reports a JVM out of memory, else None."""
    text = _error_text(exc)
    message = out_of_memory_message(text, command, _memory_settings(), step=_LAST_STEP.step, size=noted_size(),
                                    jvm_exit_status=_jvm_exit_status(text))
    return OutOfMemory(message) if message else None


def _parse(argv: List[str]) -> argparse.Namespace:
    """Parse the command line; with ``--config FILE`` the file's values are the defaults of the flags."""
    known, _ = _common().parse_known_args(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if not known.config or command not in SETTINGS:
        args = build_parser().parse_args(argv)
        args.config_doc = {}
        return args
    doc = load_config(known.config)
    for step in STEPS:  # a typo in any section fails now, not when that step runs
        command_defaults(doc, step, SETTINGS[step])
    at = argv.index(command)
    rest = argv[:at] + argv[at + 1:]
    args = build_parser({command: file_settings(doc, command, rest)}).parse_args([command, *rest])
    if args.master is None and doc.get("master") is not None:
        args.master = str(doc["master"])
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
        paths = jars.fetch_jars(s3=args.s3) if args.fetch else (jars.cached_jars(s3=args.s3) or [])
        if args.classpath:
            print(",".join(paths))
        else:
            for p in paths or [f"(not fetched) {c}" for c in jars.maven_coordinates(s3=args.s3)]:
                print(p)
        return 0
    if args.command == "run":
        from .pipeline import run_pipeline

        print(jsonsafe.dumps(run_pipeline(args)))
        return 0

    # validated before Spark starts
    cfg = build_config(args.command, vars(args)) if args.command in CONFIG_COMMANDS else None
    _log_effective_config(args, cfg)
    from .session import get_spark, running_under_cluster_launcher

    conf = spark_settings(args.conf, args.config_doc)
    fs.configure({**fs.settings(), **fs.hadoop_keys(conf)})  # until the session starts (PARTS/_tma_parts.json)
    master = args.master
    trainers = _trainers(cfg) if args.command == "train" else cfg.parts if args.command == "bench" else 1
    if master is None and args.command in ("train", "bench") and not running_under_cluster_launcher():
        master = f"local[{max(trainers, os.cpu_count() or 1)}]"  # one task slot per trainer
    paths = config_paths(cfg) if cfg is not None else [args.lake]
    spark = get_spark(master=master, quiet=args.quiet, conf=conf,
                      object_store=any(fs.is_remote(p) for p in paths))
    _SESSION_MEMORY.clear()
    _SESSION_MEMORY.update(_memory_settings())  # for an out-of-memory message after its JVM died
    for path in paths:
        fs.check_reachable(path)
    if args.command == "ingest":
        from .ingest import ingest

        ingest(spark, cfg)
        return 0
    if args.command == "partition":
        from .partition import partition

        stats = partition(spark, cfg)
        keys = ("strategy", "parts", "seed", "edge_retention", "label_tv", "node_balance", "edges_kept")
        print(jsonsafe.dumps({k: stats[k] for k in keys}))
        return 0
    if args.command == "train":
        from .pipeline import train_tracked
        from .tracking import Tracker, tracking_settings

        tracker = Tracker(tracking_settings(args.mlflow, args.config_doc.get("mlflow")))
        print(jsonsafe.dumps(train_tracked(spark, cfg, tracker)))
        return 0
    if args.command == "infer":
        from .infer import infer

        print(jsonsafe.dumps({k: v for k, v in infer(spark, cfg).items() if k != "config"}))
        return 0
    if args.command == "bench":
        from .bench import bench

        results = bench(spark, cfg, command=" ".join(["tma-spark", *argv]))
        print(jsonsafe.dumps({"out": cfg.out, "speedups": results["speedups"],
                          "rows": [{k: r[k] for k in ("method", "test_mean", "time_to_target_mean")}
                                   for r in results["rows"]]}))
        return 0
    if args.command == "info":
        from .info import format_summary, lake_summary

        summary = lake_summary(spark, args.lake)
        print(jsonsafe.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
        return 0
    raise AssertionError(args.command)


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user errors print one clear message and exit with status 2; a JVM out of memory
    prints one line naming the setting to raise and exits with status 3 (its traceback is logged at debug)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            code = run(argv)
        except TmaSparkError:
            raise
        except Exception as exc:  # a JVM out of memory is a setting to raise: one line, not a Py4J traceback
            oom = _out_of_memory(next((a for a in argv if a in _COMMANDS), "?"), exc)
            if oom is None:
                raise
            log.debug("the out-of-memory error in full", exc_info=True)
            raise oom from None
    except TmaSparkError as exc:
        logging.getLogger("tma_spark").error("%s", exc)
        sys.exit(exc.exit_code)
    sys.exit(code)


if __name__ == "__main__":
    main()
