"""YAML configs loaded into typed dataclasses.

Every key must be a field of the dataclass (nested sections are nested dataclasses), every
value must have the field's type, and a dataclass may check its own values in
`__post_init__` with `require(...)`. Errors name the file and the dotted key:

    ConfigError: conf/am_hier.yaml: model.encoder.num_layers: expected int, got 'six'
    ConfigError: conf/am_hier.yaml: unknown key 'optimiser' (known: data, model, ...)

Composition. `load_config(path, cls, overrides)` merges files in order: mappings key by key,
anything else (lists included) replaced by the later file. A file may start from another
with a top-level `base: <file>` (relative to its own directory; chains allowed): the base
is read first and the file merged on top, exactly as an override would be, so a system's
config can hold only the lines where it differs from a common one and still be a complete
config on its own. An error names the last file that set the offending key.

Supported field types: bool, int, float, str, Optional[X], list[X], dict[str, X],
Literal[...], and nested dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


class _FieldValueError(ValueError):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def require(condition: bool, key: str, message: str) -> None:
    """For __post_init__: reject a value, naming its key."""
    if not condition:
        raise _FieldValueError(key, message)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(value: Any, kind: Any, path: str) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if kind is Any:
        return value
    if origin is Union or origin is types.UnionType:  # Optional[X] and X | None
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: no type fits {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a section (mapping), got {value!r}")
        return _build(kind, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, item, _join(path, str(k))) for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected int, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config field type {kind!r} at {path} is not supported")


def _build(cls: type[T], data: dict, path: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ConfigError(
            f"{_join(path, str(unknown[0]))}: unknown key{where} (known: {', '.join(fields)})"
        )
    kwargs = {name: _convert(value, hints[name], _join(path, name)) for name, value in data.items()}
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(path, missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except _FieldValueError as e:
        raise ConfigError(f"{_join(path, e.key)}: {e}") from None


def from_dict(cls: type[T], data: dict | None, source: str = "<dict>") -> T:
    """Builds cls from a mapping; errors are prefixed with source."""
    try:
        return _build(cls, data or {})
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


BASE_KEY = "base"


def read_yaml(path: str | Path) -> dict:
    """A YAML file whose top level is a mapping (an empty file: {})."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def merge(base: dict, top: dict) -> dict:
    """base with top merged on top: mappings key by key, other values (lists too) replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_layers(path: str | Path) -> list[tuple[Path, dict]]:
    """(file, mapping) of a config file and of its `base:` chain, the deepest base first."""
    layers, seen, path = [], [], Path(path)
    while True:
        if path.resolve() in seen:
            raise ConfigError(f"{path}: `{BASE_KEY}:` chain loops back to this file")
        seen.append(path.resolve())
        data = dict(read_yaml(path))
        base = data.pop(BASE_KEY, None)
        layers.insert(0, (path, data))
        if base is None:
            return layers
        if not isinstance(base, str):
            raise ConfigError(f"{path}: {BASE_KEY}: expected a file name, got {base!r}")
        path = path.parent / base


def _defines(data, dotted: str) -> bool:
    """Whether a YAML mapping sets the dotted key (list indices as [i])."""
    node = data
    for part in dotted.replace("[", ".[").split("."):
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            if index >= len(node):
                return False
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def load_config(path: str | Path, cls: type[T], overrides: typing.Sequence[str | Path] = ()) -> T:
    """Reads a YAML file (with its `base:` chain) and any override files merged on top into
    the dataclass cls, rejecting unknown keys and bad values; an error names the last file
    that set the offending key (all of them when none did)."""
    layers = [layer for p in [path, *overrides] for layer in read_layers(p)]
    merged: dict = {}
    for _, data in layers:
        merged = merge(merged, data)
    try:
        return from_dict(cls, merged, "")
    except ConfigError as e:
        message = str(e)[2:] if str(e).startswith(": ") else str(e)
        key = message.split(": ", 1)[0]
        setting = [p for p, d in layers if _defines(d, key)]
        where = str(setting[-1]) if setting else " + ".join(str(p) for p, _ in layers)
        raise ConfigError(f"{where}: {message}") from None


def to_dict(config: Any) -> dict:
    """The config as plain data, e.g. to save next to a model."""
    return dataclasses.asdict(config)
