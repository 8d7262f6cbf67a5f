"""What the benchmark scripts share: measurement (Linux /proc and psutil), Spark start-up, child processes
whose memory is their own, the median of repeated runs, and report formatting."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

__all__ = ["RESULTS", "MB", "reset_peak", "peak_rss", "find_jvm", "dir_size", "machine_info", "Watch",
           "start_spark", "shell_command", "mb", "median_run", "write_results", "run_worker", "worker_main",
           "spark_events"]

log = logging.getLogger("benchmarks")

#: Where the benchmarks write their results by default.
RESULTS = Path(__file__).resolve().parent / "results"
MB = 1 << 20


def reset_peak(pid: int) -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) of ``pid`` (Linux; ignored elsewhere)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss(pid: int | str = "self") -> int | None:
    """VmHWM of ``pid`` in bytes, or None when /proc is not available."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def find_jvm() -> psutil.Process | None:
    """The Spark JVM: the java process among this Python process's descendants."""
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name() == "java" or "java" in Path(p.exe()).name:
                return p
        except psutil.Error:
            continue
    return None


def dir_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def machine_info(spark) -> dict:
    """The machine and Spark set-up a benchmark ran on, for its results file."""
    import pyspark

    return {
        "nproc": os.cpu_count(),
        "total_ram_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "java": spark.sparkContext._jvm.java.lang.System.getProperty("java.version"),
        "spark_master": spark.sparkContext.master,
        "default_parallelism": spark.sparkContext.defaultParallelism,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_snapshot() -> dict:
    """CPU seconds (user + system) so far of every process, by (pid, start time)."""
    out = {}
    for p in psutil.process_iter(["pid", "create_time", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[(p.info["pid"], p.info["create_time"])] = t.user + t.system
    return out


class Watch:
    """While the ``with`` block runs: peak RSS of the driver and the JVM (VmHWM), peak summed RSS of the
    processes under ``sampled`` (sampled every 50 ms), and CPU seconds used by the driver, the JVM, the JVM's
    Python workers and by processes outside this benchmark (processes that ended inside the block are not
    seen)."""

    def __init__(self, jvm: psutil.Process | None = None):
        self.jvm = jvm
        self.sampled: psutil.Process | None = jvm  # whose descendants are summed (the JVM's Python workers)
        self.sampled_self = False  # include ``sampled`` itself (a worker child process)
        self.sampled_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            p = self.sampled
            if p is None:
                continue
            try:
                procs = ([p] if self.sampled_self else []) + p.children(recursive=True)
            except psutil.Error:
                continue
            total = 0
            for q in procs:
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
            self.sampled_peak = max(self.sampled_peak, total)

    def __enter__(self) -> "Watch":
        self.loadavg = os.getloadavg()[0]
        self._cpu0 = _cpu_snapshot()
        reset_peak(os.getpid())
        if self.jvm is not None:
            reset_peak(self.jvm.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.driver_peak = peak_rss(os.getpid())
        self.jvm_peak = peak_rss(self.jvm.pid) if self.jvm is not None else None
        cpu1 = _cpu_snapshot()
        me = psutil.Process()
        ours = {me.pid} | {q.pid for q in me.children(recursive=True)}
        workers = set()
        if self.jvm is not None:
            try:
                workers = {q.pid for q in self.jvm.children(recursive=True)}
            except psutil.Error:
                pass
        used = {k: max(v - self._cpu0.get(k, 0.0), 0.0) for k, v in cpu1.items()}
        self.driver_cpu_s = sum(v for (pid, _), v in used.items() if pid == me.pid)
        self.jvm_cpu_s = sum(v for (pid, _), v in used.items() if self.jvm is not None and pid == self.jvm.pid)
        self.workers_cpu_s = sum(v for (pid, _), v in used.items() if pid in workers)
        self.other_cpu_s = sum(v for (pid, _), v in used.items() if pid not in ours)


class WorkersWatch(Watch):
    """:class:`Watch` whose sampled peak sums only the JVM's Python workers (``sampled_peak``), and which also
    keeps the largest single worker's peak (``largest``): the JVM also starts short-lived helpers
    (``jspawnhelper`` running Hadoop's shell commands for local files), whose RSS, sampled between their fork
    and exec, is the JVM's own."""

    largest = 0

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            total = 0
            try:
                procs = self.sampled.children(recursive=True) if self.sampled is not None else []
            except psutil.Error:
                continue
            for q in procs:
                try:
                    if q.name().startswith("python"):
                        rss = q.memory_info().rss
                        total += rss
                        self.largest = max(self.largest, rss)
                except psutil.Error:
                    pass
            self.sampled_peak = max(self.sampled_peak, total)


def spark_events(event_dir: str | Path, *kinds: str):
    """The events of kinds ``kinds`` (e.g. ``SparkListenerStageCompleted``) in every Spark event log under
    ``event_dir`` (uncompressed: ``spark.eventLog.compress=false``), as dicts, file by file in write order."""
    marks = [f'"{kind}"' for kind in kinds]
    for path in sorted(p for p in Path(event_dir).rglob("*") if p.is_file()):
        with open(path) as fh:
            for line in fh:
                if any(mark in line for mark in marks):
                    event = json.loads(line)
                    if event.get("Event") in kinds:
                        yield event


def start_spark(master: str, app_name: str):
    """A Spark session on ``master`` and its JVM process (None, with a warning, when it is not found)."""
    from tma_spark.session import get_spark

    log.info("starting Spark (%s)", master)
    spark = get_spark(master=master, app_name=app_name)
    jvm = find_jvm()
    if jvm is None:
        log.warning("Spark JVM not found among this process's children: no JVM memory figures")
    return spark, jvm


def tma_spark_cli(*args: str) -> subprocess.Popen:
    """Start ``tma-spark ARGS`` (this interpreter's package, so a worktree on ``PYTHONPATH`` is what runs), with
    the same interpreter for Spark's Python workers (local-cluster executors need it spelled out); logged."""
    log.info("tma-spark %s", " ".join(map(str, args)))
    return subprocess.Popen([sys.executable, "-m", "tma_spark.cli", *map(str, args)],
                            env={**os.environ, "PYSPARK_PYTHON": sys.executable})


def run_cli(*args: str) -> None:
    """Run ``tma-spark ARGS`` to the end (:func:`tma_spark_cli`); a failure stops the benchmark."""
    rc = tma_spark_cli(*args).wait()
    if rc != 0:
        raise SystemExit(f"tma-spark {args[0]} failed with exit status {rc}")


def shell_command() -> str:
    """The command line that ran this script, runnable again from any folder (for the results file)."""
    return f"cd {shlex.quote(os.getcwd())} && {shlex.join([sys.executable, *sys.argv])}"


def mb(x: int | None, digits: int = 0) -> str:
    """Bytes as MB for a table cell; ``-`` for None."""
    return "-" if x is None else f"{x / MB:,.{digits}f}"


def median_run(runs: list[dict]) -> dict:
    """Repeated runs of one job as one row: the median run's figures with the median seconds, the largest of
    each peak RSS over all runs, and the runs themselves (under ``runs``)."""
    med = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    peaks = {key: max((r[key] for r in runs if r.get(key) is not None), default=None)
             for key in ("driver_peak_rss", "jvm_peak_rss", "workers_peak_rss")}
    return {**med, "seconds": statistics.median(r["seconds"] for r in runs), **peaks, "runs": runs}


def write_results(path: str | Path, data: dict, markdown: str) -> None:
    """Write ``data`` as JSON at ``path`` and ``markdown`` beside it (same name, ``.md``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    out.with_suffix(".md").write_text(markdown)
    log.info("wrote %s and %s", out, out.with_suffix(".md"))


def run_worker(script: str, kind: str, spec: dict, workdir: Path, timeout: float | None = None) -> dict:
    """Run worker ``kind`` of ``script`` in a child process (see :func:`worker_main`), with a timeout.

    The child's peak memory is its own, and an out-of-memory kill or a crash is recorded instead of ending the
    benchmark. Returns ``status`` (ok / failed / timeout), ``returncode``, ``wall_s``, the sampled peak RSS of
    the child, CPU seconds used outside the benchmark meanwhile, the load before it, a ``note`` when it did not
    finish, and, when it did, the worker's own figures.
    """
    spec = dict(spec, result=str(workdir / f"{kind}_result.json"))
    Path(spec["result"]).unlink(missing_ok=True)
    cmd = [sys.executable, os.path.abspath(script), "--_worker", kind, "--_spec", json.dumps(spec)]
    with Watch() as watch:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        watch.sampled, watch.sampled_self = psutil.Process(proc.pid), True
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc, status = None, "timeout"
        wall = time.perf_counter() - t0
    row = {"status": status, "returncode": rc, "wall_s": wall, "sampled_peak_rss": watch.sampled_peak or None,
           "other_cpu_s": watch.other_cpu_s, "loadavg_1m_before": watch.loadavg}
    if status == "ok":
        row.update(json.loads(Path(spec["result"]).read_text()))
    elif status == "failed":
        row["note"] = (f"exit code {rc}" + (" (killed by signal %d%s)" % (-rc, ", likely out of memory" if rc == -9 else "")
                                            if rc is not None and rc < 0 else ""))
    else:
        row["note"] = f"killed after the {timeout:g} s timeout"
    return row


def worker_main(workers: dict[str, Callable[[dict], dict]], argv: list[str] | None = None) -> bool:
    """In a child started by :func:`run_worker` (``--_worker KIND --_spec JSON``): run ``workers[KIND](spec)``,
    add the child's peak RSS (VmHWM) and write the figures as JSON where the parent reads them; True.
    Anywhere else: False (the script goes on as its ordinary self)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or argv[0] != "--_worker" or argv[2] != "--_spec":
        return False
    spec = json.loads(argv[3])
    result = workers[argv[1]](spec)
    result["peak_rss"] = peak_rss()
    Path(spec["result"]).write_text(json.dumps(result))
    return True
