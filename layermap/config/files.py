"""Settings from files and the command line: the presets (``layermap/presets/*.toml``), TOML files, section dicts
and stored run configs read into a :class:`~layermap.config.sections.Config` (unknown keys, wrong types and renamed
settings handled), ``--set section.key=value`` overrides, TOML written back, and the digests a fingerprint is made of.
Imports ``config.sections``, ``logs`` and ``errors``.
"""


from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tomllib
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from ..logs import get_logger
from .sections import RENAMED_SETTINGS, Config, ConfigError

_log = get_logger(__name__)


SECTIONS = {f.name: f.type for f in fields(Config)}
PRESETS = ("smoke", "demo", "paper", "gpu")


def _section_class(name: str) -> type:
    hints = typing.get_type_hints(Config)
    if name not in hints:
        raise ConfigError(f"unknown config section [{name}]; sections are: {', '.join(SECTIONS)}")
    return hints[name]


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's type; ints are accepted for floats, lists for tuples."""
    where = f"{section}.{key}"
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        if item is not str:                          # a list of numbers: each item checked as that number type
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where} must be a list of {'integers' if item is int else 'numbers'}, got {value!r}")
            return tuple(_coerce(section, key, v, item) for v in value)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, got {value!r}")
        return tuple(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where} has an unsupported type {annotation!r}")  # pragma: no cover


def _new_name(section: str, key: str) -> str | None:
    """The current name of a renamed setting's key (``run``, ``cache_db`` -> ``store_path``), else None."""
    new = RENAMED_SETTINGS.get(f"{section}.{key}")
    return new.split(".", 1)[1] if new else None


def _rename_old_keys(section: str, values: dict, where: str = "") -> dict:
    """``values`` with renamed keys under their current names; with ``where`` (``"in s.toml"``, ``"in --set"``:
    what a user typed) each old name is reported in one warning line.  Old and new name together is an error."""
    if not any(_new_name(section, key) for key in values):
        return values
    out = {}
    for key, value in values.items():
        new = _new_name(section, key)
        if new is None:
            out[key] = value
            continue
        if new in values:
            raise ConfigError(f"{section}.{key} and {section}.{new} are both given{' ' + where if where else ''}; "
                              f"{section}.{key} is the old name of {section}.{new}: keep only {section}.{new}")
        if where:
            _log.warning(f"{section}.{key} {where} is the old name of {section}.{new}; it still works, but write "
                         f"{section}.{new}")
        out[new] = value
    return out


def _build_section(name: str, values: dict) -> Any:
    cls = _section_class(name)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    values = _rename_old_keys(name, values)
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown setting {name}.{key}; known keys in [{name}] are: {', '.join(sorted(known))}")
    kwargs = {k: _coerce(name, k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    sections = {}
    for name, values in data.items():
        if not isinstance(values, dict) and name not in SECTIONS:
            raise ConfigError(_outside_section(name))
        _section_class(name)
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{name}] must be a table of key = value pairs")
        sections[name] = _build_section(name, values)
    return Config(**sections)


def _merge(base: dict, extra: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for name, values in extra.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{name}] must be a table of key = value pairs")
        out.setdefault(name, {}).update(values)
    return out


def _outside_section(key: str, origin: str = "the settings") -> str:
    owners = [name for name, cls in typing.get_type_hints(Config).items() if key in {f.name for f in fields(cls)}]
    where = f"under [{owners[0]}]" if len(owners) == 1 else (f"under one of [{'], ['.join(owners)}]" if owners else "under its [section]")
    return f"setting {key!r} in {origin} is outside any [section]; put it {where}"


def read_toml(source: str) -> dict:
    """A preset name (``smoke``, ``demo``, ``paper``) or the path of a TOML file -> its dict."""
    if source in PRESETS:
        text = importlib.resources.files("layermap.presets").joinpath(f"{source}.toml").read_text("utf-8")
        origin = f"preset {source!r}"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config {source!r} is neither a preset ({', '.join(PRESETS)}) nor an existing TOML file")
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config {source!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"config {source!r} cannot be read ({exc.strerror or exc})") from None
        origin = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {origin} is not valid TOML: {str(exc).splitlines()[0]}") from None
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(_outside_section(key, origin))
    return {name: _rename_old_keys(name, values, f"in {origin}") for name, values in data.items()}


def parse_override(text: str) -> tuple[str, str, Any]:
    """``'search.population=12'`` -> ``('search', 'population', 12)``; the value is read as TOML, else as a string.
    A renamed setting's old name comes back under its new name (``run.cache_db`` -> ``run.store_path``), with a warning."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} is malformed; write --set section.key=value, e.g. --set search.population=12")
    lhs, raw = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    if _new_name(section, key):
        key = next(iter(_rename_old_keys(section, {key: value}, "in --set")))
    return section, key, value


def load_config(source: str | dict | None = None, overrides: Sequence[str] = (), **section_values: dict) -> Config:
    """Defaults <- preset or TOML file (or settings already read, as a dict of sections) <- ``section_values``
    (from CLI flags) <- ``--set`` overrides."""
    if isinstance(source, dict):                     # e.g. a run's stored settings, which may use old names
        data: dict = {name: _rename_old_keys(name, values) if isinstance(values, dict) else values
                      for name, values in source.items()}
    else:
        data = read_toml(source) if source else {}
    data = _merge(data, {k: v for k, v in section_values.items() if v})
    for text in overrides:
        section, key, value = parse_override(text)
        data = _merge(data, {section: {key: value}})
    return config_from_dict(data)


def dump_toml(config: Config) -> str:
    """The resolved config as TOML (written into every run folder)."""
    lines = []
    for name, values in config.to_dict().items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def format_override(key: str, value: Any) -> str:
    """``('run.workers', 4)`` -> ``'run.workers=4'``: a value as the ``--set`` text that gives it back."""
    return f"{key}={_toml_value(value)}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def file_digest(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (used for teacher weights, corpus and data identities)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest(obj: Any) -> str:
    """Stable sha256 of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
