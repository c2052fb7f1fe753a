"""Seccomp profiles -> a ``Filter``: the rules that apply to one container, as frozen data.

Reads both shapes in use: docker's and containers-common's profile (``archMap``, rules with
``includes``/``excludes`` by capability, architecture and kernel version: the default one,
``data/seccomp-default.json``, and ``--security-opt seccomp=FILE``) and an OCI bundle's
``linux.seccomp`` (``architectures``, plain rules). Pure: the profile's JSON comes in as a
value; ``seccompbpf`` turns a ``Filter`` into the BPF program the kernel runs.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from unionfs.errors import UserError

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW")  # fmt: skip
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
       "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")  # fmt: skip
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}  # fmt: skip
# libseccomp's architecture names -> docker's (as profiles' includes.arches write them)
ARCH_NAMES = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32",
              "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_ARM": "arm"}  # fmt: skip
NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}  # uname -m -> arch
EPERM = 1
ENOSYS = 38


@dataclass(frozen=True, slots=True)
class ArgCmp:
    """Argument *index* (0-5) compared by *op* with *value* (MASKED_EQ: ``arg & value ==
    value_two``); 64-bit values."""

    index: int
    value: int
    value_two: int
    op: str


@dataclass(frozen=True, slots=True)
class Rule:
    """*action* (with *errno* for SCMP_ACT_ERRNO) for the system calls *names* whose
    arguments pass every comparison in *args* (all of them: an empty tuple always passes)."""

    names: tuple[str, ...]
    action: str
    errno: int = EPERM
    args: tuple[ArgCmp, ...] = ()


@dataclass(frozen=True, slots=True)
class Filter:
    """One container's filter: *rules* over *default_action*, for *arches* (libseccomp's
    names, native first). ``flags``: the seccomp(2) filter flags."""

    default_action: str
    default_errno: int
    arches: tuple[str, ...]
    rules: tuple[Rule, ...]
    flags: int = 0


def version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _get(obj: dict[str, object], key: str, kind: type, where: str) -> object:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise UserError(f"{where}.{key} has the wrong type")
    return value


def _action(obj: dict[str, object], where: str, default_errno: int,
            keys: tuple[str, str] = ("action", "errnoRet")) -> tuple[str, int]:  # fmt: skip
    """The action (and its errno) named by *keys* in *obj*."""
    action = _get(obj, keys[0], str, where) or "SCMP_ACT_ERRNO"
    action = {"SCMP_ACT_KILL": "SCMP_ACT_KILL_THREAD"}.get(cast(str, action), cast(str, action))
    if action not in ACTIONS:
        raise UserError(f"{where}.{keys[0]} {action!r} is not supported (use one of "
                        f"{', '.join(a for a in ACTIONS if a != 'SCMP_ACT_KILL')})")  # fmt: skip
    errno = _get(obj, keys[1], int, where)
    return action, cast(int, errno) if errno is not None else default_errno


def _args(items: object, where: str) -> tuple[ArgCmp, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise UserError(f"{where}.args must be a list")
    result = []
    for i, item in enumerate(items):
        here = f"{where}.args[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"{here} must be an object")
        index, value = item.get("index"), item.get("value", 0)
        two, op = item.get("valueTwo", 0) or 0, item.get("op")
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise UserError(f"{here}.index must be 0 to 5")
        if not all(isinstance(v, int) and 0 <= v < 2**64 for v in (value, two)):
            raise UserError(f"{here}: value and valueTwo must be numbers from 0 to 2**64-1")
        if op not in OPS:
            raise UserError(f"{here}.op {op!r} is not a comparison ({', '.join(OPS)})")
        result.append(ArgCmp(index, cast(int, value), cast(int, two), cast(str, op)))
    return tuple(result)


def _applies(rule: dict[str, object], where: str, caps: frozenset[str], native: str,
             kernel: tuple[int, ...]) -> bool:  # fmt: skip
    """Docker's includes/excludes: every include must hold, no exclude may."""
    arch = ARCH_NAMES.get(native, native)
    for key, wanted in (("includes", True), ("excludes", False)):
        cond = rule.get(key) or {}
        if not isinstance(cond, dict):
            raise UserError(f"{where}.{key} must be an object")
        checks = []
        if cond.get("caps"):
            checks.append(any(c in caps for c in cast(list[str], cond["caps"])))
        if cond.get("arches"):
            checks.append(arch in cast(list[str], cond["arches"]))
        if cond.get("minKernel"):
            checks.append(kernel >= version(str(cond["minKernel"])))
        if wanted and not all(checks):
            return False
        if not wanted and checks and any(checks):
            return False
    return True


def _arches(profile: dict[str, object], native: str) -> tuple[str, ...]:
    given = profile.get("architectures")
    if given:
        if not isinstance(given, list) or not all(isinstance(a, str) for a in given):
            raise UserError("seccomp: architectures must be a list of names")
        # the native one is always in, as libseccomp's seccomp_init puts it
        return tuple(dict.fromkeys([native, *cast(list[str], given)]))
    for entry in cast(list[dict[str, object]], profile.get("archMap") or []):
        if entry.get("architecture") == native:
            subs = cast(list[str], entry.get("subArchitectures") or [])
            return (native, *subs)
    return (native,)


def parse(profile: object, caps: Iterable[str], native: str,
          kernel: tuple[int, ...] = (99,)) -> Filter:  # fmt: skip
    """The filter *profile* (parsed JSON, either shape) gives a container holding *caps*
    (bounding set, ``CAP_*`` names) on a machine of arch *native* (``SCMP_ARCH_X86_64``)
    running *kernel* (its version, for ``minKernel``)."""
    if not isinstance(profile, dict):
        raise UserError("seccomp: the profile must be a JSON object")
    data = cast(dict[str, object], profile)
    unsupported = [k for k in ("listenerPath", "listenerMetadata") if data.get(k)]
    if unsupported:
        raise UserError(f"seccomp: {unsupported[0]} (SCMP_ACT_NOTIFY) is not supported by unionfs")
    default_action, default_errno = _action(data, "seccomp", EPERM,
                                            ("defaultAction", "defaultErrnoRet"))  # fmt: skip
    flags = 0
    for flag in cast(list[str], _get(data, "flags", list, "seccomp") or []):
        if flag not in FLAGS:
            raise UserError(f"seccomp: flag {flag!r} is not supported")
        flags |= FLAGS[flag]
    held = frozenset(caps)
    rules = []
    for i, item in enumerate(cast(list[object], _get(data, "syscalls", list, "seccomp") or [])):
        where = f"seccomp.syscalls[{i}]"
        if not isinstance(item, dict):
            raise UserError(f"{where} must be an object")
        entry = cast(dict[str, object], item)
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"{where}.names must be a list of system call names")
        if not names or not _applies(entry, where, held, native, kernel):
            continue
        action, errno = _action(entry, where, default_errno)
        rules.append(Rule(tuple(cast(list[str], names)), action, errno,
                          _args(entry.get("args"), where)))  # fmt: skip
    return Filter(default_action, default_errno, _arches(data, native), tuple(rules), flags)


@functools.cache
def default_profile() -> object:
    """unionfs's default profile (package data), parsed."""
    text = importlib.resources.files("unionfs.runtime").joinpath("data/seccomp-default.json")
    return json.loads(text.read_text(encoding="utf-8"))


def load_file(path: str) -> object:
    """A profile from ``--security-opt seccomp=PATH`` (read once, when the spec is made)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise UserError(f"seccomp profile {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"seccomp profile {path}: not JSON ({exc})") from None
