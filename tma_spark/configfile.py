"""YAML config files for every command and for the whole pipeline (``tma-spark run``).

One file describes a pipeline; each command reads the part it needs, and command-line flags override it::

    lake: demo_lake            # shared paths
    partitions: demo_parts
    run: demo_run
    predictions: demo_predictions
    ingest:    {dataset: cora}
    partition: {strategy: random, parts: 4}
    train:     {round_seconds: 5, time_limit: 30, hidden: 64}
    infer:     {checkpoint: best}
    mlflow:    {tracking_uri: file:./mlruns, experiment: tma_spark}   # or: mlflow: true

A section's keys are the command's long flags with ``_`` for ``-`` (``round_seconds`` is
``--round-seconds``). Every key and value is checked against the command's flags before any Spark job
starts: an unknown key, a wrong type or a value outside the allowed choices is a :class:`ConfigError`
that names the file, the key and what is allowed. Pure functions; no Spark.
"""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Dict, List, Optional, Sequence

from .errors import ConfigError

__all__ = ["load_config", "command_defaults", "apply_overrides", "STEPS", "PATH_KEYS", "TOP_LEVEL"]

STEPS = ("ingest", "partition", "train", "infer")
#: For each command: its flag (dest) -> the top-level path key that fills it.
PATH_KEYS: Dict[str, Dict[str, str]] = {
    "ingest": {"lake": "lake"},
    "info": {"lake": "lake"},
    "partition": {"lake": "lake", "out": "partitions"},
    "train": {"lake": "lake", "partitions": "partitions", "out": "run"},
    "infer": {"lake": "lake", "run": "run", "out": "predictions"},
    "bench": {"lake": "lake"},
}
TOP_LEVEL = ("lake", "partitions", "run", "predictions", "master", "mlflow") + STEPS + ("bench",)
#: Flags that are not settings of a step (they belong to the invocation, not to the pipeline).
_NOT_SETTINGS = {"help", "config", "quiet", "verbose", "command", "set", "mlflow"}


def load_config(path: str) -> dict:
    """Read and shape-check a YAML config file (a mapping with known top-level keys)."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} does not exist. Fix: pass the path of a YAML file with --config.")
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)  # safe_load: plain data only, never Python objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}".replace("\n", " ")) from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ConfigError(f"Config file {path} must be a mapping of keys to values, not a {type(doc).__name__}.")
    for key, value in doc.items():
        if key not in TOP_LEVEL:
            raise ConfigError(f"{path}: unknown top-level key {key!r}{_suggest(key, TOP_LEVEL)}. Allowed: "
                              f"{', '.join(TOP_LEVEL)}.")
        if key in STEPS + ("bench",) and value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: {key} must be a mapping of {key} settings, e.g. {key}: {{seed: 0}}.")
    doc["_path"] = path
    return doc


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _settings(sub: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {a.dest: a for a in sub._actions if a.dest not in _NOT_SETTINGS and a.dest != argparse.SUPPRESS}


def _coerce(where: str, action: argparse.Action, value):
    """A YAML value as the flag's parsed value, or a ConfigError naming ``where`` and what is allowed."""
    flag = max(action.option_strings, key=len) if action.option_strings else action.dest
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} must be true or false ({flag}).")
        return value
    if value is None:
        return None
    if action.type in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if action.type is int:
            ok = ok and float(value) == int(value)
        if not ok:
            kind = "a whole number" if action.type is int else "a number"
            raise ConfigError(f"{where} = {value!r} must be {kind} ({flag}).")
        value = action.type(value)
    elif isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)  # e.g. split: [0.6, 0.2, 0.2] -> "0.6,0.2,0.2"
    elif isinstance(value, dict):
        raise ConfigError(f"{where} must be a single value, not a mapping ({flag}).")
    else:
        value = str(value) if not isinstance(value, bool) else str(value).lower()
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where} = {value!r} is not one of {', '.join(map(str, action.choices))} ({flag}).")
    return value


def command_defaults(doc: dict, command: str, sub: argparse.ArgumentParser) -> dict:
    """The values a config file gives the flags of ``command`` (shared paths, then its own section)."""
    path = doc.get("_path", "config")
    settings = _settings(sub)
    values: dict = {}
    for dest, key in PATH_KEYS.get(command, {}).items():
        if doc.get(key) is not None:
            values[dest] = _coerce(f"{path}: {key}", settings[dest], doc[key])
    if doc.get("master") is not None and "master" in settings:
        values["master"] = str(doc["master"])
    for key, value in (doc.get(command) or {}).items():
        dest = str(key).replace("-", "_")
        if dest not in settings or dest == "master":
            allowed = sorted(d for d in settings if d != "master")
            raise ConfigError(f"{path}: {command}.{key} is not a {command} setting{_suggest(dest, allowed)}. "
                              f"Allowed: {', '.join(allowed)}.")
        values[dest] = _coerce(f"{path}: {command}.{key}", settings[dest], value)
    return values


def apply_overrides(doc: dict, assignments: Optional[List[str]]) -> dict:
    """``--set train.time_limit=60 --set lake=/data/lake``: a copy of ``doc`` with YAML-typed values set."""
    import yaml

    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for item in assignments or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} must be KEY=VALUE, e.g. train.time_limit=60 or lake=/data/lake.")
        value = yaml.safe_load(text) if text else None
        section, dot, name = key.partition(".")
        if section not in TOP_LEVEL:
            raise ConfigError(f"--set {item!r}: unknown key {section!r}{_suggest(section, TOP_LEVEL)}. Allowed: "
                              f"{', '.join(TOP_LEVEL)}.")
        if dot:
            if section not in STEPS + ("mlflow",):
                raise ConfigError(f"--set {item!r}: {section} has no sub-keys.")
            current = doc.get(section)
            doc[section] = {**(current if isinstance(current, dict) else {}), name: value}
        else:
            doc[section] = value
    return doc
