"""Committing whole outputs (a lake, a partitions folder, a run folder): readers see the previous output, none,
or the new one complete.

Outputs are written to a hidden staging sibling and moved into place. On local disk and HDFS that is one
rename; on object stores, where renaming a folder copies its objects, the output's marker (``_tma_*.json``,
which readers require) is moved last (:func:`replace_dir`). The file operations are :mod:`tma_spark.fs`.
"""

from __future__ import annotations

import uuid

from .faults import crash_point
from .fs import delete, exists, is_object_store, join, list_names, qualify, rename

__all__ = ["staging_sibling", "replace_dir"]


def staging_sibling(path: str, tag: str = "staging") -> str:
    """A hidden sibling path (``.NAME.staging-UUID``) on the same filesystem as ``path``."""
    path = qualify(path).rstrip("/")
    parent, name = path.rsplit("/", 1)
    return f"{parent}/.{name}.{tag}-{uuid.uuid4().hex[:12]}"


def replace_dir(spark, staging: str, final: str) -> None:
    """Move a fully written ``staging`` directory to ``final``, replacing any previous one.

    The previous version is renamed aside first and deleted only after the new
    one is in place, so at every instant one complete version exists on disk.
    On object stores, where a folder rename is a copy, see :func:`_replace_dir_by_copy`.
    """
    crash_point("before-commit")  # fault injection: a job killed here must leave ``final`` as it was
    if is_object_store(final):
        _replace_dir_by_copy(spark, staging, final)
        return
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


def _replace_dir_by_copy(spark, staging: str, final: str) -> None:
    """:func:`replace_dir` on an object store, where renaming a folder copies its objects in no set order.

    Readers require an output's marker (``_tma_lake.json``, ``_tma_parts.json`` …), so the markers are set
    aside first, the previous output loses its markers before it is deleted, the folder is copied, and the
    markers travel last: a reader sees the previous output, none (a clear "not a lake" error), or the new one
    complete. The copies are server-side (S3 COPY). A job killed mid-way leaves the complete staging folder
    and its markers beside ``final``.
    """
    held = {}
    for name in list_names(spark, staging) or []:
        if name.startswith("_tma_"):
            held[name] = staging_sibling(final, f"marker{name}")
            rename(spark, join(staging, name), held[name])
    if exists(spark, final):
        for name in list_names(spark, final) or []:
            if name.startswith("_tma_"):
                delete(spark, join(final, name))
        delete(spark, final)
    rename(spark, staging, final)
    for name, aside in held.items():
        rename(spark, aside, join(final, name))
