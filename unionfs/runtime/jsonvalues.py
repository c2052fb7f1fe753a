"""The runtime's frozen values (``RunSpec``, ``State`` and what they hold) to and from JSON.

Out: ``dataclasses.asdict`` (tuples become lists). In: each field is rebuilt from its type
hint (str, int, float, bool, ``X | None``, ``tuple[X, ...]``, fixed tuples, nested
dataclasses), so a new field needs no code here. A missing field takes its default (files
written before it existed); an unknown field or a value of the wrong type is a
``ValueError`` naming where, never a half-built value. Pure: reads and writes no file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TypeVar

T = TypeVar("T")


def dump(value: object) -> dict[str, object]:
    """*value* (a dataclass instance) as plain JSON data."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"not a dataclass value: {value!r}")
    return dataclasses.asdict(value)


def load(cls: type[T], data: object) -> T:
    """A *cls* (a dataclass) from what ``dump`` made of one; ValueError if it does not fit."""
    return typing.cast(T, _decode(cls, data, cls.__name__))


def _decode(hint: object, data: object, where: str) -> object:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, data, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{where}: cannot decode {hint}")
        return _decode(rest[0], data, where)
    if origin is tuple:
        if not isinstance(data, list | tuple):  # tuple: straight from dump, not via JSON
            raise ValueError(f"{where}: expected a list, not {_kind(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], x, f"{where}[{i}]") for i, x in enumerate(data))
        if len(args) != len(data):
            raise ValueError(f"{where}: expected {len(args)} items, not {len(data)}")
        pairs = enumerate(zip(args, data, strict=True))
        return tuple(_decode(a, x, f"{where}[{i}]") for i, (a, x) in pairs)
    if hint is bool and isinstance(data, bool):
        return data
    if hint in (int, float) and isinstance(data, int) and not isinstance(data, bool):
        return float(data) if hint is float else data
    if hint is float and isinstance(data, float):
        return data
    if hint is str and isinstance(data, str):
        return data
    if hint in (bool, int, float, str):
        name = getattr(hint, "__name__", str(hint))
        raise ValueError(f"{where}: expected {name}, not {_kind(data)}")
    raise TypeError(f"{where}: cannot decode {hint}")


def _dataclass(cls: type, data: object, where: str) -> object:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, not {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}")
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in data:
            raise ValueError(f"{where}: {name} is missing")
    values = {k: _decode(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def _kind(data: object) -> str:
    return "null" if data is None else type(data).__name__
