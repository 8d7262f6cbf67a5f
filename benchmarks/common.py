"""Measurement helpers shared by the benchmark scripts (Linux /proc and psutil)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import threading
from pathlib import Path

import psutil

__all__ = ["reset_peak", "peak_rss", "find_jvm", "dir_size", "machine_info", "Watch"]


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
