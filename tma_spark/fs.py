"""Every filesystem operation on a user's path: local disk or a Hadoop-compatible store.

A path is a local path or a URI (``s3a://``, ``abfss://``, ``gs://``, ``hdfs://``, ``dbfs:/``, ``file:``).
Two ways in, one module:

* with a SparkSession (``spark`` given): Hadoop's FileSystem API in the driver's JVM, the same connectors and
  settings the Spark stages use;
* without one (``spark`` None): pyarrow's filesystems, for code outside Spark jobs: trainer tasks reading their
  part, the driver's metadata, Delta log and run-folder reads and writes, evaluation. Their settings come
  from the Hadoop keys the user gave Spark (``spark.hadoop.fs.s3a.*``), captured by :func:`use_spark_settings` on the
  driver and shipped to trainer tasks (:func:`configure`), with each library's default credential chain
  (``AWS_*`` variables, profiles, instance credentials) for the rest (:mod:`tma_spark.stores`).

Why pyarrow and not fsspec: pyarrow is already how trainers read Parquet, its S3, GCS, Azure and HDFS
filesystems are in the wheel (no extra packages per store), and its S3 client is the AWS C++ SDK.

What is atomic where: on local disk and HDFS a file is written to a temporary sibling and renamed into
place; on object stores (S3, GCS, Azure) a file is one PUT, which readers see complete or not at all, and
nothing is appended. How whole outputs (folders) are committed is :mod:`tma_spark.commits`.
"""

from __future__ import annotations

import os
import uuid
from typing import Dict, List, Mapping, Optional, Tuple

from . import jsonsafe, stores
from .errors import TmaSparkError

__all__ = ["qualify", "join", "is_remote", "is_object_store", "configure", "hadoop_keys", "settings", "use_spark_settings", "arrow_filesystem",
           "delta_location", "check_reachable", "store_error", "exists", "is_file", "delete", "rename", "makedirs",
           "read_bytes", "read_text", "write_bytes", "write_text", "write_json", "create_exclusive", "list_names",
           "modified_time", "move_dir", "local_copy"]

#: Hadoop keys of the object-store connectors, copied from the Spark session (:func:`use_spark_settings`).
_SETTINGS: Dict[str, str] = {}
_PREFIXES = ("fs.s3a.", "fs.azure.", "fs.gs.")


def qualify(path: str) -> str:
    """Absolute local path for scheme-less paths; URIs (s3a://, dbfs:/ …) unchanged."""
    if stores.scheme(path):
        return path
    return os.path.abspath(path)


def join(path: str, *names: str) -> str:
    """``path/name/...`` for local paths and URIs alike."""
    return "/".join([path.rstrip("/"), *(n.strip("/") for n in names)])


def is_remote(path: str) -> bool:
    """Whether ``path`` is on a store other than this machine's disk."""
    return stores.scheme(path) not in ("", "file")


def is_object_store(path: str) -> bool:
    """Whether ``path`` is on an object store (no append, no atomic rename)."""
    return stores.scheme(path) in stores.OBJECT_STORE_SCHEMES


# -- settings shared with code outside Spark ---------------------------------------------------------------

def configure(hadoop_settings: Mapping[str, str]) -> None:
    """Use these Hadoop keys (``fs.s3a.*`` …) for pyarrow and delta-rs access in this process (trainer tasks
    call it with what the driver captured)."""
    _SETTINGS.clear()
    _SETTINGS.update({str(k): str(v) for k, v in hadoop_settings.items()})


def hadoop_keys(spark_conf: Mapping[str, str]) -> Dict[str, str]:
    """The Hadoop keys among Spark settings (``spark.hadoop.fs.s3a.endpoint`` -> ``fs.s3a.endpoint``)."""
    return {k[len("spark.hadoop."):]: str(v) for k, v in spark_conf.items() if k.startswith("spark.hadoop.")}


def settings() -> Dict[str, str]:
    """The Hadoop keys in use (to ship to trainer tasks); they may hold credentials: never log them."""
    return dict(_SETTINGS)


def use_spark_settings(spark) -> Dict[str, str]:
    """Capture the session's object-store settings (``spark.hadoop.fs.s3a.*`` and ``core-site.xml``) for the
    pyarrow side of this process; returns them."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    found: Dict[str, str] = {}
    for prefix in _PREFIXES:
        found.update({prefix + k: v for k, v in dict(conf.getPropsWithPrefix(prefix)).items()})
    configure(found)
    return found


def _local(path: str) -> str:
    path = qualify(path)
    if path.startswith("dbfs:"):  # Databricks mounts DBFS at /dbfs on the driver and every executor
        return "/dbfs/" + path[len("dbfs:"):].lstrip("/")
    return path[len("file:"):] if path.startswith("file:") else path


def arrow_filesystem(path: str):
    """``(pyarrow FileSystem, path inside it)`` for ``path``, configured from :func:`settings`."""
    from pyarrow import fs as pafs

    kind = stores.scheme(path)
    if kind in ("", "file", "dbfs"):
        return pafs.LocalFileSystem(), _local(path)
    if kind in stores.S3_SCHEMES:
        bucket, key = stores.split_bucket(path)
        options = stores.s3_settings(_SETTINGS, bucket).arrow_options()
        return pafs.S3FileSystem(**options), f"{bucket}/{key}".rstrip("/")
    try:
        return pafs.FileSystem.from_uri(path.replace("abfss://", "abfs://", 1))
    except Exception as exc:
        raise TmaSparkError(f"{path}: this process cannot open {kind}:// paths outside Spark ({exc}). Fix: use "
                            "s3a://, gs://, abfss://, hdfs:// or a local path, with the store's client "
                            "configured (see README, 'Data on object storage').") from None


def delta_location(path: str) -> Tuple[str, Dict[str, str]]:
    """``(table URI, storage_options)`` for ``deltalake.DeltaTable``."""
    kind = stores.scheme(path)
    if kind in ("", "file", "dbfs"):
        return _local(path), {}
    if kind in stores.S3_SCHEMES:
        return "s3://" + path.split("://", 1)[1], stores.s3_settings(_SETTINGS, stores.split_bucket(path)[0]).delta_options()
    return path, {}


def store_error(path: str, exc: BaseException) -> Exception:
    """``exc`` as a :class:`TmaSparkError` naming ``path`` and the setting to fix when it is an object store's
    access, bucket or connection failure; else ``exc`` itself."""
    message = stores.explain(path, f"{type(exc).__name__}: {exc}")
    return TmaSparkError(message) if message else exc


def check_reachable(path: str) -> None:
    """Fail with a clear error, before any Spark job, when ``path``'s store refuses us: an unreachable endpoint,
    wrong credentials or a missing bucket. Local paths pass. Reads only; nothing is written."""
    if stores.scheme(path) not in stores.S3_SCHEMES:
        return
    from pyarrow import fs as pafs

    bucket, _ = stores.split_bucket(path)
    try:
        filesystem, inner = arrow_filesystem(path)
        if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise TmaSparkError(f"{path}: its bucket {bucket!r} does not exist. Fix: create the bucket, or "
                                "correct the path's bucket name.")
        filesystem.get_file_info(inner)
    except OSError as exc:
        raise store_error(path, exc) from None


# -- operations: Hadoop with a session, pyarrow without ------------------------------------------------------

def _fs(spark, path: str) -> Tuple[object, object]:
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(qualify(path))
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def _info(path: str):
    filesystem, inner = arrow_filesystem(path)
    try:
        return filesystem, inner, filesystem.get_file_info(inner)
    except OSError as exc:
        raise store_error(path, exc) from None


def exists(spark, path: str) -> bool:
    """Whether ``path`` exists."""
    if spark is None:
        from pyarrow import fs as pafs

        return _info(path)[2].type != pafs.FileType.NotFound
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def is_file(path: str) -> bool:
    """Whether ``path`` is a file (pyarrow)."""
    from pyarrow import fs as pafs

    return _info(path)[2].type == pafs.FileType.File


def delete(spark, path: str) -> None:
    """Delete ``path`` (recursively) when it exists."""
    if spark is None:
        from pyarrow import fs as pafs

        fs_, p, info = _info(path)
        if info.type == pafs.FileType.Directory:
            fs_.delete_dir(p)
        elif info.type != pafs.FileType.NotFound:
            fs_.delete_file(p)
        return
    fs, p = _fs(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def rename(spark, src: str, dst: str) -> None:
    """Rename a file or a folder (without a session, a folder on an object store is copied: :func:`move_dir`)."""
    if spark is None:
        if is_object_store(src) and not is_file(src):
            move_dir(src, dst)
            return
        fs_, s = arrow_filesystem(src)
        fs_.move(s, arrow_filesystem(dst)[1])
        return
    fs, s = _fs(spark, src)
    _, d = _fs(spark, dst)
    if not fs.rename(s, d):
        raise OSError(f"could not rename {src} to {dst}")


def makedirs(path: str) -> None:
    """Create folder ``path`` and its parents (object stores have no folders: nothing to do there)."""
    if is_object_store(path):
        return
    fs_, p = arrow_filesystem(path)
    fs_.create_dir(p, recursive=True)


def read_bytes(path: str) -> bytes:
    """A whole file (pyarrow). Raises FileNotFoundError when it is absent."""
    fs_, p = arrow_filesystem(path)
    try:
        with fs_.open_input_stream(p) as fh:
            return fh.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        error = store_error(path, exc)
        if error is exc and "NotFound" not in str(exc) and "does not exist" not in str(exc):
            raise
        raise (error if error is not exc else FileNotFoundError(path)) from None


def read_text(spark: Optional[object], path: str) -> str:
    """A small UTF-8 text file. Raises FileNotFoundError when it is absent."""
    if spark is None:
        return read_bytes(path).decode("utf-8")
    fs, p = _fs(spark, path)
    if not fs.exists(p):
        raise FileNotFoundError(path)
    jvm = spark.sparkContext._jvm
    stream = fs.open(p)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def write_bytes(spark, path: str, data: bytes) -> None:
    """Write a whole file, replacing it; readers see the old or the new one, never a torn one.

    Without a session (pyarrow): on object stores one PUT; elsewhere a temporary sibling, fsynced on local disk,
    renamed over ``path``. With a session: Hadoop's ``create`` (for small side files of Spark stages).
    """
    if spark is not None:
        fs, p = _fs(spark, path)
        fs.setWriteChecksum(False)  # no .crc side files on local disk
        out = fs.create(p, True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()
        return
    if not is_remote(path) or stores.scheme(path) == "dbfs":
        local = _local(path)
        tmp = f"{local}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, local)
        return
    fs_, p = arrow_filesystem(path)
    target = p if is_object_store(path) else f"{p}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs_.open_output_stream(target) as fh:
            fh.write(data)
        if target != p:
            fs_.move(target, p)
    except OSError as exc:
        raise store_error(path, exc) from None


def write_text(spark, path: str, text: str) -> None:
    """Write a small UTF-8 text file, replacing it (:func:`write_bytes`)."""
    write_bytes(spark, path, text.encode("utf-8"))


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON, replacing ``path`` whole (:func:`write_bytes`). Always valid JSON: NaN and
    infinities are written as null (:func:`tma_spark.jsonsafe.dumps`)."""
    write_bytes(None, path, jsonsafe.dumps(obj, indent=2, default=str).encode("utf-8"))


def create_exclusive(spark, path: str, text: str) -> bool:
    """Create the small file ``path`` with ``text`` only if it does not exist; False when it does. Atomic on
    local disks (``O_EXCL``) and HDFS; on object stores a check then a PUT (two writers racing within
    milliseconds can both succeed there; without a session that check and PUT are pyarrow's)."""
    if spark is None and is_remote(path):
        if exists(None, path):
            return False
        write_text(None, path, text)
        return True
    if not is_remote(path):
        local = _local(path)
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


def list_names(spark, path: str) -> Optional[List[str]]:
    """The names of the entries of folder ``path`` (None when ``path`` is a file or absent on an object
    store)."""
    if spark is None:
        from pyarrow import fs as pafs

        fs_, p, info = _info(path)
        if info.type != pafs.FileType.Directory:
            return None
        return [entry.base_name for entry in fs_.get_file_info(pafs.FileSelector(p))]
    fs, p = _fs(spark, path)
    if not fs.getFileStatus(p).isDirectory():
        return None
    return [status.getPath().getName() for status in fs.listStatus(p)]


def modified_time(spark: Optional[object], path: str) -> float:
    """Seconds since the epoch at which ``path`` was last written."""
    if spark is None:
        return _info(path)[2].mtime.timestamp()
    fs, p = _fs(spark, path)
    return fs.getFileStatus(p).getModificationTime() / 1000.0


def move_dir(src: str, dst: str) -> None:
    """Move folder ``src`` to ``dst`` (absent) without a session: one rename locally and on HDFS; on object
    stores every file is copied, then ``src`` deleted (each file complete, the folder not atomically)."""
    fs_, s = arrow_filesystem(src)
    d = arrow_filesystem(dst)[1]
    if not is_object_store(src):
        fs_.move(s, d)
        return
    from pyarrow import fs as pafs

    for entry in fs_.get_file_info(pafs.FileSelector(s, recursive=True)):
        if entry.type == pafs.FileType.File:
            fs_.copy_file(entry.path, d + entry.path[len(s):])
    fs_.delete_dir(s)


def local_copy(path: str, folder: str) -> Optional[str]:
    """A local file with ``path``'s bytes in ``folder`` (``path`` itself when it is local), or None when absent:
    for libraries that only take local files (MLflow artifacts)."""
    if not is_remote(path):
        return _local(path) if os.path.isfile(_local(path)) else None
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return None
    local = os.path.join(folder, path.rstrip("/").rsplit("/", 1)[1])
    with open(local, "wb") as fh:
        fh.write(data)
    return local
