"""Go's values as the ``--format`` templates see them (``gotemplate``): how they print
(fmt's ``%v``: ``[a b]``, ``map[k:v]``, ``<no value>``), ``json``, truthiness, and the
functions a template may call (podman's and Go's builtins). Python values stand for Go's:
``dict`` a struct, ``GoMap`` a map, lists slices. Pure.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable

from unionfs.errors import UserError


class GoMap(dict[str, typing.Any]):
    """A Go map: ``.key`` of a missing key is ``<no value>``; printed ``map[k:v ...]``."""


class TemplateError(UserError):
    def __init__(self, message: str) -> None:
        super().__init__(f"template: {message}", exit_code=2)


NO_VALUE = "<no value>"


# -- printing values as Go's fmt %v does ----------------------------------------------------
def go_str(value: object) -> str:
    if isinstance(value, Missing):
        return NO_VALUE
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, GoMap):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, dict):
        return "{" + " ".join(go_str(v) for v in value.values()) + "}"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _go_float(x: float) -> str:
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    return re.sub(r"e([+-]?)0*(\d\d)", lambda m: f"e{m.group(1) or '+'}{m.group(2)}", text)


def go_json(value: object) -> str:
    """``json.Marshal`` as podman's ``json`` function writes it (no HTML escaping)."""
    if isinstance(value, Missing):
        value = None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Missing:
    """The value of a missing map key (Go's zero reflect.Value): prints ``<no value>``."""


MISSING = Missing()


def truthy(value: object) -> bool:
    if isinstance(value, Missing) or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def type_name(value: object) -> str:
    return {str: "string", int: "int", float: "float64", bool: "bool", list: "[]interface {}",
            tuple: "[]interface {}"}.get(type(value), type(value).__name__)  # fmt: skip


def _index(value: object, *keys: object) -> object:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(str(key), MISSING) if isinstance(value, GoMap) else \
                value.get(str(key))  # fmt: skip
            if isinstance(value, Missing):
                return ""
        elif isinstance(value, list | tuple | str) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"can't index item of type {type_name(value)}")
    return value


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: object) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s %v %q %d %x %f %g %t %%."""
    queue = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, precision, verb = m.groups()
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        arg = queue.pop(0)
        if verb in "dxXob" and isinstance(arg, int | float) and not isinstance(arg, bool):
            text = format(int(arg), {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb])
        elif verb in "feEgG" and isinstance(arg, int | float):
            text = format(float(arg), f".{precision or 6}{verb}")
        elif verb == "q":
            text = go_json(go_str(arg) if not isinstance(arg, str) else arg)
        else:
            text = go_str(arg)
            if precision is not None and verb in "sv":
                text = text[: int(precision)]
        if width and width != "*":
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        return text

    return _VERB.sub(one, fmt)


def _sprint(*args: object) -> str:
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


def _compare(op: Callable[[typing.Any, typing.Any], bool]) -> Callable[..., bool]:
    def compare(a: object, b: object) -> bool:
        try:
            return op(a, b)
        except TypeError:
            raise TemplateError("incompatible types for comparison") from None

    return compare


def _eq(a: object, *others: object) -> bool:
    return any(a == b for b in others)


def _and(*args: object) -> object:
    for arg in args:
        if not truthy(arg):
            return arg
    return args[-1]


def _or(*args: object) -> object:
    for arg in args:
        if truthy(arg):
            return arg
    return args[-1]


def _len(value: object) -> int:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    raise TemplateError(f"len of type {type_name(value)}")


FUNCS: dict[str, Callable[..., object]] = {
    "json": go_json,
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: re.sub(r"\b[a-z]", lambda m: m.group(0).upper(), go_str(s)),
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "truncate": lambda s, n: go_str(s)[: int(n)],
    "pad": lambda s, n, c=" ": c * int(n) + go_str(s) + c * int(n),
    "len": _len,
    "index": _index,
    "printf": _printf,
    "print": _sprint,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda v: not truthy(v),
}
