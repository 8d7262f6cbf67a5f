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

A section's keys are the command's settings, the fields of the dataclass that declares its flags (see
:mod:`tma_spark.settings`): its long flags with ``_`` for ``-`` (``round_seconds`` is ``--round-seconds``), with
two exceptions, ingest's ``input_format`` (``--format``) and train's ``inject_failures`` (``--inject-failure``).
Every key and value is checked against those fields before any Spark job starts: an unknown key, a wrong type
or a value outside the allowed choices is a :class:`ConfigError` that names the file, the key and what is
allowed. YAML aliases (``*name``) are refused, so a small file cannot expand to billions of values; YAML 1.1
reads ``on``/``off`` as booleans, which settings whose choices are ``on``/``off`` take back as those words.
Pure functions; no Spark.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Dict, List, Optional, Sequence

from .errors import ConfigError
from .settings import coerce, specs

__all__ = ["load_config", "command_defaults", "apply_overrides", "STEPS", "PATH_KEYS", "TOP_LEVEL"]

STEPS = ("ingest", "partition", "train", "infer")
#: For each command: its setting -> the top-level path key that fills it.
PATH_KEYS: Dict[str, Dict[str, str]] = {
    "ingest": {"lake": "lake"},
    "info": {"lake": "lake"},
    "partition": {"lake": "lake", "out": "partitions"},
    "train": {"lake": "lake", "partitions": "partitions", "out": "run"},
    "infer": {"lake": "lake", "run": "run", "out": "predictions"},
    "bench": {"lake": "lake"},
}
TOP_LEVEL = ("lake", "partitions", "run", "predictions", "master", "spark_conf", "mlflow") + STEPS + ("bench",)


def load_config(path: str) -> dict:
    """Read and shape-check a YAML config file (a mapping with known top-level keys)."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} does not exist. Fix: pass the path of a YAML file with --config.")
    try:
        with open(path) as fh:
            doc = yaml.load(fh, Loader=_loader())  # safe: plain data only, never Python objects; no aliases
    except _alias_error() as exc:
        raise ConfigError(f"Config file {path} uses a YAML alias ({exc.alias}, line {exc.line}): aliases are "
                          "refused, since a few lines of them can expand to billions of values. Fix: write the "
                          "value out where the alias is.") from None
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


@functools.lru_cache(maxsize=None)
def _alias_error() -> type:
    import yaml

    class AliasRefused(yaml.YAMLError):
        """A YAML alias (``*name``) in a config file."""

        def __init__(self, alias: str, line: int):
            super().__init__(f"alias {alias} at line {line}")
            self.alias, self.line = alias, line

    return AliasRefused


@functools.lru_cache(maxsize=None)
def _loader() -> type:
    """A ``yaml.SafeLoader`` that refuses aliases: a "billion laughs" document (anchors referring to anchors)
    fails at its first alias instead of expanding. Anchors alone are harmless and allowed."""
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _alias_error()(f"*{event.anchor}", event.start_mark.line + 1)
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def command_defaults(doc: dict, command: str, settings_class: type) -> dict:
    """The values config file ``doc`` gives the settings of ``command`` (declared by ``settings_class``): the
    shared paths, then its own section. Each is checked against the setting's type and choices."""
    path = doc.get("_path", "config")
    settings = {spec.name: spec for spec in specs(settings_class)}
    values: dict = {}
    for name, key in PATH_KEYS.get(command, {}).items():
        if doc.get(key) is not None:
            values[name] = coerce(f"{path}: {key}", settings[name], doc[key])
    for key, value in (doc.get(command) or {}).items():
        name = str(key).replace("-", "_")
        if name not in settings:
            allowed = sorted(settings)
            raise ConfigError(f"{path}: {command}.{key} is not a {command} setting{_suggest(name, allowed)}. "
                              f"Allowed: {', '.join(allowed)}.")
        values[name] = coerce(f"{path}: {command}.{key}", settings[name], value)
    return values


def apply_overrides(doc: dict, assignments: Optional[List[str]]) -> dict:
    """``--set train.time_limit=60 --set lake=/data/lake``: a copy of ``doc`` with YAML-typed values set."""
    import yaml

    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    for item in assignments or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} must be KEY=VALUE, e.g. train.time_limit=60 or lake=/data/lake.")
        try:
            value = yaml.load(text, Loader=_loader()) if text else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: {text!r} is not a YAML value ({exc}).".replace("\n", " ")) from None
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
