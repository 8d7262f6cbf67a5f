"""Each command's settings class, and its validated config from flags or from a config file.

:mod:`tma_spark.cli` (flags, ``--config``) and :mod:`tma_spark.pipeline` (``tma-spark run``) both build
configs here, so a step run alone and the same step inside the pipeline get the same settings. Pure: no
Spark, no argparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .bench.config import BenchConfig
from .configfile import PATH_KEYS, command_defaults
from .errors import ConfigError
from .infer.config import InferConfig
from .ingest.config import IngestOptions
from .partition.config import PartitionConfig
from .settings import from_values, setting, specs
from .train.config import TrainConfig

__all__ = ["SETTINGS", "CONFIG_COMMANDS", "InfoOptions", "build_config", "file_settings", "config_from_file",
           "config_paths", "spark_settings"]


@dataclass
class InfoOptions:
    """The flags of ``tma-spark info``."""

    lake: str = setting(help="the lake to summarize")
    json: bool = setting(False, help="print JSON instead of text")


#: command -> the dataclass that declares its flags and config-file keys
SETTINGS: Dict[str, type] = {"ingest": IngestOptions, "partition": PartitionConfig, "train": TrainConfig,
                             "infer": InferConfig, "bench": BenchConfig, "info": InfoOptions}
#: the commands that run a job with a validated config (``info`` only reads its two flags)
CONFIG_COMMANDS = ("ingest", "partition", "train", "infer", "bench")


def build_config(command: str, values: Mapping[str, Any]):
    """The validated config of ``command`` from flag or file values (setting name -> value)."""
    options = from_values(SETTINGS[command], values)
    if command == "ingest":
        return options.to_config()  # the flags map onto IngestConfig and SyntheticConfig
    return options.validate()


def file_settings(doc: dict, command: str, argv: Sequence[str] = ()) -> dict:
    """The values config file ``doc`` gives ``command``'s settings; a ConfigError names the required settings
    that neither the file nor the command line ``argv`` gives."""
    values = command_defaults(doc, command, SETTINGS[command])
    given = {a.split("=")[0] for a in argv}
    missing = [s for s in specs(SETTINGS[command])
               if s.required and s.name not in values and not given & set(s.flags)]
    if missing:
        def key(name: str) -> str:
            top = PATH_KEYS.get(command, {}).get(name)
            return f"{command}.{name}" + (f" or top-level '{top}'" if top else "")

        raise ConfigError(f"{doc.get('_path', 'config')}: {command} needs {', '.join(key(s.name) for s in missing)} "
                          f"(or the flags {', '.join(s.flag for s in missing)}).")
    return values


def config_from_file(doc: dict, command: str):
    """The validated config of ``command`` from config file ``doc`` alone (``tma-spark run``)."""
    return build_config(command, file_settings(doc, command))


#: Settings that name a folder or table of the job (inputs and outputs), in any command's config.
_PATH_SETTINGS = ("lake", "partitions", "run", "out", "npz")


def config_paths(cfg) -> List[str]:
    """The folders and files a validated config reads or writes (for the store checks before Spark jobs)."""
    return [getattr(cfg, name) for name in _PATH_SETTINGS if isinstance(getattr(cfg, name, None), str)]


def spark_settings(flags: Optional[Sequence[str]], doc: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Spark settings from a config file's ``spark_conf`` mapping, overridden by ``--conf KEY=VALUE`` flags."""
    doc = doc or {}
    conf = doc.get("spark_conf") or {}
    if not isinstance(conf, Mapping):
        raise ConfigError(f"{doc.get('_path', 'config')}: spark_conf must be a mapping of Spark settings "
                          "(e.g. spark.hadoop.fs.s3a.endpoint: http://minio:9000).")
    values = {str(k): str(v) for k, v in conf.items()}
    for item in flags or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {item!r} is not KEY=VALUE. Fix: e.g. --conf spark.hadoop.fs.s3a.endpoint="
                              "http://127.0.0.1:9000.")
        values[key.strip()] = value
    return values
