"""Filesystem operations through Hadoop's FileSystem API.

Lakes may live on local disk, HDFS, S3 or DBFS; going through the JVM's
Hadoop FileSystem keeps one code path for all of them. Outputs are written to
a hidden staging sibling and renamed into place, so a failed or killed job
never leaves a half-written output visible.
"""

from __future__ import annotations

import os
import uuid
from typing import Optional, Tuple

from . import jsonsafe
from .faults import crash_point

__all__ = ["qualify", "exists", "delete", "rename", "write_bytes", "write_text", "read_text", "modified_time", "list_names",
           "create_exclusive",
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
    """Whether ``path`` exists (Hadoop's FileSystem with a session; pyarrow when ``spark`` is None)."""
    if spark is None:
        from pyarrow import fs as pafs

        fs_, p = _arrow_fs(path)
        return fs_.get_file_info(p).type != pafs.FileType.NotFound
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def delete(spark, path: str) -> None:
    """Delete ``path`` (recursively) when it exists."""
    if spark is None:
        from pyarrow import fs as pafs

        fs_, p = _arrow_fs(path)
        kind = fs_.get_file_info(p).type
        if kind == pafs.FileType.Directory:
            fs_.delete_dir(p)
        elif kind != pafs.FileType.NotFound:
            fs_.delete_file(p)
        return
    fs, p = _fs(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def rename(spark, src: str, dst: str) -> None:
    if spark is None:
        fs_, s = _arrow_fs(src)
        fs_.move(s, _arrow_fs(dst)[1])
        return
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


def create_exclusive(spark, path: str, text: str) -> bool:
    """Create the small file ``path`` with ``text`` only if it does not exist; False when it does. Atomic on
    local disks (``O_EXCL``) and HDFS; through Hadoop's ``create(overwrite=false)`` elsewhere."""
    local = qualify(path)
    local = local[len("file:"):] if local.startswith("file:") else local
    if "://" not in local:
        os.makedirs(os.path.dirname(local), exist_ok=True)
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    fs, p = _fs(spark, path)
    try:
        out = fs.create(p, False)
    except Exception as exc:  # py4j: org.apache.hadoop.fs.FileAlreadyExistsException
        if "FileAlreadyExists" in str(exc) or fs.exists(p):
            return False
        raise
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    return True


def list_names(spark, path: str):
    """The names of the entries of folder ``path`` (None when ``path`` is a file), through Hadoop's
    FileSystem (``spark`` given) or pyarrow (``spark`` None)."""
    if spark is None:
        from pyarrow import fs as pafs

        fs_, p = _arrow_fs(path)
        if fs_.get_file_info(p).type != pafs.FileType.Directory:
            return None
        return [info.base_name for info in fs_.get_file_info(pafs.FileSelector(p))]
    fs, p = _fs(spark, path)
    if not fs.getFileStatus(p).isDirectory():
        return None
    return [status.getPath().getName() for status in fs.listStatus(p)]


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
    folders, which live on the driver's disk. Always valid JSON: NaN and infinities are written as null
    (:func:`tma_spark.jsonsafe.dumps`)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(jsonsafe.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
