"""Measurement helpers shared by the benchmark scripts (Linux /proc and psutil)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import psutil

__all__ = ["reset_peak", "peak_rss", "find_jvm", "dir_size", "machine_info"]


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
