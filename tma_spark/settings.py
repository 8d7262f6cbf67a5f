"""One declaration per setting: a config dataclass field says its default, help, flag and allowed values once.

A command's settings are the fields of its config dataclass declared with :func:`setting`::

    @dataclass
    class TrainConfig:
        lake: str = setting(help="the lake")                               # no default: a required flag
        round_seconds: float = setting(30.0, flag="--round-seconds", short="-T", help="seconds between averagings")
        mode: str = setting("tma", choices=MODES, help="...")
        fanouts: Optional[Tuple[int, ...]] = setting(None, parse=whole_numbers, help="...")

Everything else is generated from those fields, so the three views cannot drift apart:

* :func:`add_arguments` adds the argparse flags (type from the annotation, bools as ``store_true``);
* :func:`coerce` checks a config file's value for a field (type, choices) and :func:`from_values` builds the
  config from flag or file values, running each field's ``parse`` on text such as ``25,10`` or ``1e6``;
* :func:`check_choices` is the choices check every ``validate()`` starts with (library callers included).

Values a user types as text (``--split 0.6,0.2,0.2``) stay text in the argparse namespace and in a config
file's values; ``parse(text, flag)`` turns them into the field's type when the config is built, raising a
:class:`ConfigError` that names the flag. Fields declared without :func:`setting` are not settings (no flag,
not accepted in a config file). Pure functions; no Spark.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

from .errors import ConfigError

__all__ = ["setting", "Setting", "Spec", "specs", "add_arguments", "from_values", "coerce", "check_choices",
           "default_of", "count", "fractions", "whole_numbers", "names"]

_KEY = "tma_spark.setting"


@dataclass(frozen=True)
class Setting:
    """What a field declares besides its type and default (see :func:`setting`)."""

    help: str
    flag: Optional[str] = None
    short: Optional[str] = None
    choices: Optional[Tuple[str, ...]] = None
    parse: Optional[Callable[[str, str], Any]] = None
    metavar: Optional[str] = None


def setting(default: Any = dataclasses.MISSING, *, help: str, flag: Optional[str] = None,
            short: Optional[str] = None, choices: Optional[Sequence[str]] = None,
            parse: Optional[Callable[[str, str], Any]] = None, metavar: Optional[str] = None) -> Any:
    """A dataclass field that is a command-line flag and a config-file key.

    Args:
        default: the default (none: the flag is required).
        help: the flag's help (argparse: ``%%`` for a literal percent sign, ``%(default)s`` for the default).
        flag: the long flag (default ``--`` + the field name with ``-`` for ``_``); the config-file key is
            always the field name.
        short: a one-letter alias such as ``-T``.
        choices: the allowed values (checked in config files and by :func:`check_choices`).
        parse: ``parse(text, flag) -> value`` for values typed as text (tuples, counts such as ``1e6``).
        metavar: the value's name in ``--help`` (default: the choices, or the field name).
    """
    meta = {_KEY: Setting(help, flag, short, tuple(choices) if choices is not None else None, parse, metavar)}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One setting of a config class: its field name (= the config-file key and the argparse dest), the
    scalar type of its values, its default and its declaration."""

    name: str
    kind: type
    default: Any
    required: bool
    setting: Setting

    @property
    def flag(self) -> str:
        return self.setting.flag or "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> Tuple[str, ...]:
        return (self.flag,) + ((self.setting.short,) if self.setting.short else ())

    def text(self, value: Any) -> Any:
        """``value`` as the text a user would type for a parsed field (e.g. ``(25, 10)`` -> ``"25,10"``)."""
        if self.setting.parse is None or value is None or isinstance(value, str):
            return value
        return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _kind(cls: type, name: str, hint: Any, parse) -> type:
    """The scalar type of a field's values: bool, int, float or str (``Optional`` unwrapped)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    if hint in (bool, int, float, str):
        return hint
    if parse is not None:
        return str  # typed as text, turned into the field's type by parse
    raise TypeError(f"{cls.__name__}.{name}: a {hint} setting needs parse=(text, flag) -> value.")


def specs(cls: type) -> Tuple[Spec, ...]:
    """The settings of config class ``cls``, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        s = f.metadata.get(_KEY)
        if s is None:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(Spec(f.name, _kind(cls, f.name, hints[f.name], s.parse), None if required else f.default,
                        required, s))
    return tuple(out)


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (to reuse it rather than repeat it)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def add_arguments(parser: argparse.ArgumentParser, cls: type, values: Optional[Mapping[str, Any]] = None) -> None:
    """Add a flag for every setting of ``cls`` to ``parser``; ``values`` (from a config file) replace the
    defaults, and a required setting that ``values`` gives is no longer required on the command line."""
    values = values or {}
    for spec in specs(cls):
        kwargs: dict = {"dest": spec.name, "help": spec.setting.help}
        if spec.kind is bool:
            kwargs.update(action="store_true", default=values.get(spec.name, False))
        else:
            choices = spec.setting.choices
            kwargs.update(default=values.get(spec.name, spec.text(spec.default)),
                          required=spec.required and spec.name not in values,
                          metavar=spec.setting.metavar or ("{" + ",".join(choices) + "}" if choices else None))
            if spec.kind in (int, float):
                kwargs["type"] = spec.kind
        parser.add_argument(*spec.flags, **kwargs)


def from_values(cls: type, values: Mapping[str, Any]):
    """An instance of ``cls`` from flag or file values (field name -> value; text of parsed fields is parsed).
    Settings missing from ``values`` keep their defaults; the result is not validated."""
    kwargs = {}
    for spec in specs(cls):
        if spec.name not in values:
            if spec.required:
                raise ConfigError(f"{spec.flag} is required.")
            continue
        value = values[spec.name]
        if spec.setting.parse is not None and isinstance(value, str):
            value = spec.setting.parse(value, spec.flag)
        kwargs[spec.name] = value
    return cls(**kwargs)


def coerce(where: str, spec: Spec, value: Any) -> Any:
    """A config file's ``value`` for ``spec`` as the flag would hold it, or a ConfigError naming ``where``
    (the file and key), the flag and what is allowed."""
    flag = spec.flag
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} must be true or false ({flag}).")
        return value
    if value is None:
        return None
    if spec.kind in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if spec.kind is int:
            ok = ok and float(value) == int(value)
        if not ok:
            kind = "a whole number" if spec.kind is int else "a number"
            raise ConfigError(f"{where} = {value!r} must be {kind} ({flag}).")
        value = spec.kind(value)
    elif isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)  # e.g. split: [0.6, 0.2, 0.2] -> "0.6,0.2,0.2"
    elif isinstance(value, dict):
        raise ConfigError(f"{where} must be a single value, not a mapping ({flag}).")
    elif isinstance(value, bool):
        value = _bool_word(value, spec.setting.choices)
    else:
        value = str(value)
    choices = spec.setting.choices
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} = {value!r} is not one of {', '.join(map(str, choices))} ({flag}).")
    return value


def _bool_word(value: bool, choices: Optional[Tuple[str, ...]]) -> str:
    """The word a YAML boolean stands for in a text setting: YAML 1.1 reads ``on``/``off`` and ``yes``/``no``
    as true/false, so a setting whose choices include such a pair gets that word back (``full_stats: on`` is
    ``"on"``); otherwise ``"true"``/``"false"``."""
    for yes, no in (("on", "off"), ("yes", "no"), ("true", "false")):
        if choices is not None and yes in choices and no in choices:
            return yes if value else no
    return "true" if value else "false"


def check_choices(cfg) -> None:
    """ConfigError for the first setting of ``cfg`` whose value is not one of its declared choices."""
    for spec in specs(type(cfg)):
        value = getattr(cfg, spec.name)
        if spec.setting.choices is not None and value is not None and value not in spec.setting.choices:
            raise ConfigError(f"{spec.flag} {value!r} is not one of {', '.join(spec.setting.choices)}.")


# Parsers of values typed as text: parse(text, flag) -> value, a ConfigError naming the flag otherwise.

def count(text: str, flag: str) -> int:
    """A count such as 1000000, 1e6 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a number.") from None
    if value != int(value):
        raise ConfigError(f"{flag} {text!r} must be a whole number.")
    return int(value)


def fractions(text: str, flag: str) -> Tuple[float, float, float]:
    """Three comma-separated fractions (train,val,test), e.g. 0.6,0.2,0.2."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be three comma-separated fractions, e.g. 0.6,0.2,0.2.") from None
    if len(parts) != 3:
        raise ConfigError(f"{flag} {text!r} must have three fractions (train,val,test).")
    return parts  # type: ignore[return-value]


def whole_numbers(text: str, flag: str) -> Optional[Tuple[int, ...]]:
    """Comma-separated whole numbers, e.g. 25,10; empty text is None (the field's default rule)."""
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} must be comma-separated whole numbers, e.g. 25,10.") from None


def names(text: str, flag: str) -> Tuple[str, ...]:
    """Comma-separated names, e.g. central,random."""
    return tuple(m.strip() for m in text.split(","))
