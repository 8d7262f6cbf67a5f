"""Filesystem operations through Hadoop's FileSystem API.

Lakes may live on local disk, HDFS, S3 or DBFS; going through the JVM's
Hadoop FileSystem keeps one code path for all of them. Outputs are written to
a hidden staging sibling and renamed into place, so a failed or killed job
never leaves a half-written output visible.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Optional, Tuple

from .faults import crash_point

__all__ = ["qualify", "exists", "delete", "rename", "write_bytes", "write_text", "read_text", "modified_time",
           "staging_sibling", "replace_dir", "write_json_local"]


def qualify(path: str) -> str:
    """Absolute local path for scheme-less paths; URIs (s3a://, dbfs:/ …) unchanged."""
    if "://" in path or path.startswith(("file:", "dbfs:")):
        return path
    return os.path.abspath(path)


def _fs(spark, path: str) -> Tuple[object, object]:
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(qualify(path))
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def exists(spark, path: str) -> bool:
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def delete(spark, path: str) -> None:
    fs, p = _fs(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def rename(spark, src: str, dst: str) -> None:
    fs, s = _fs(spark, src)
    _, d = _fs(spark, dst)
    if not fs.rename(s, d):
        raise OSError(f"could not rename {src} to {dst}")


def write_bytes(spark, path: str, data: bytes) -> None:
    """Write a small file (overwrites), without Hadoop's ``.crc`` side files on local disk."""
    fs, p = _fs(spark, path)
    fs.setWriteChecksum(False)
    out = fs.create(p, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def write_text(spark, path: str, text: str) -> None:
    """Write a small UTF-8 text file (overwrites)."""
    write_bytes(spark, path, text.encode("utf-8"))


def _arrow_fs(path: str):
    """(pyarrow filesystem, path in it) for code that runs before or outside a SparkSession."""
    from pyarrow import fs as pafs

    path = qualify(path)
    if path.startswith("file:"):
        path = path[len("file:"):]
    if "://" not in path:
        return pafs.LocalFileSystem(), path
    return pafs.FileSystem.from_uri(path)


def read_text(spark: Optional[object], path: str) -> str:
    """A small UTF-8 text file, through Hadoop's FileSystem (``spark`` given) or pyarrow (``spark`` None,
    e.g. before the session starts). Raises FileNotFoundError when it is absent."""
    if spark is None:
        fs_, p = _arrow_fs(path)
        with fs_.open_input_stream(p) as fh:
            return fh.read().decode("utf-8")
    fs, p = _fs(spark, path)
    if not fs.exists(p):
        raise FileNotFoundError(path)
    jvm = spark.sparkContext._jvm
    stream = fs.open(p)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def modified_time(spark: Optional[object], path: str) -> float:
    """Seconds since the epoch at which ``path`` was last written (Hadoop's FileSystem, or pyarrow)."""
    if spark is None:
        fs_, p = _arrow_fs(path)
        return fs_.get_file_info(p).mtime.timestamp()
    fs, p = _fs(spark, path)
    return fs.getFileStatus(p).getModificationTime() / 1000.0


def staging_sibling(path: str, tag: str = "staging") -> str:
    """A hidden sibling path (``.NAME.staging-UUID``) on the same filesystem as ``path``."""
    path = qualify(path).rstrip("/")
    parent, name = path.rsplit("/", 1)
    return f"{parent}/.{name}.{tag}-{uuid.uuid4().hex[:12]}"


def replace_dir(spark, staging: str, final: str) -> None:
    """Move a fully written ``staging`` directory to ``final``, replacing any previous one.

    The previous version is renamed aside first and deleted only after the new
    one is in place, so at every instant one complete version exists on disk.
    """
    crash_point("before-commit")  # fault injection: a job killed here must leave ``final`` as it was
    old = None
    if exists(spark, final):
        old = staging_sibling(final, "previous")
        rename(spark, final, old)
    try:
        rename(spark, staging, final)
    except Exception:
        if old is not None:
            rename(spark, old, final)
        raise
    if old is not None:
        delete(spark, old)


def write_json_local(path: str, obj) -> None:
    """Write ``obj`` as JSON to a local file atomically (a temporary sibling renamed over ``path``), for run
    folders, which live on the driver's disk."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
    os.replace(tmp, path)
