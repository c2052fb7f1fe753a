"""OCI hooks: which run when, parsed from config.json's ``hooks``, and running one.

A hook gets the container's OCI state as JSON on stdin, its own argv and environment (and
nothing of ours), and is killed when its timeout passes; a non-zero exit is a failure,
told with the start of what it wrote on stderr. The runtime runs prestart, createRuntime,
poststart and poststop; the container's process (``executor``) runs createContainer and
startContainer. No decision about *whether* a failure matters is taken here.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import cast

from unionfs.errors import UserError
from unionfs.runtime.steps import Hook

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()

    def of(self, kind: str) -> tuple[Hook, ...]:
        """The hooks of *kind* (as config.json names it)."""
        value: tuple[Hook, ...] = getattr(self, _attr(kind))
        return value


def _attr(kind: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind)


def parse(value: object) -> Hooks:
    """config.json's ``hooks`` object -> ``Hooks``; anything malformed is a UserError."""
    if value is None:
        return Hooks()
    if not isinstance(value, dict):
        raise UserError("config.json: hooks must be an object")
    found: dict[str, tuple[Hook, ...]] = {}
    for kind, items in cast(dict[str, object], value).items():
        if kind not in KINDS:
            raise UserError(f"config.json: hooks.{kind} is not a hook kind ({', '.join(KINDS)})")
        if not isinstance(items, list):
            raise UserError(f"config.json: hooks.{kind} must be a list")
        found[_attr(kind)] = tuple(_hook(item, f"hooks.{kind}[{i}]") for i, item in
                                   enumerate(items))  # fmt: skip
    return Hooks(**found)


def _hook(item: object, where: str) -> Hook:
    if not isinstance(item, dict):
        raise UserError(f"config.json: {where} must be an object")
    data = cast(dict[str, object], item)
    unknown = sorted(set(data) - {"path", "args", "env", "timeout"})
    if unknown:
        raise UserError(f"config.json: {where}.{unknown[0]} is not a hook field")
    path = data.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise UserError(f"config.json: {where}.path must be an absolute path")
    lists = {}
    for key in ("args", "env"):
        got = data.get(key) or []
        if not isinstance(got, list) or not all(isinstance(x, str) for x in got):
            raise UserError(f"config.json: {where}.{key} must be a list of strings")
        lists[key] = tuple(cast(list[str], got))
    timeout = data.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                or timeout <= 0):  # fmt: skip
        raise UserError(f"config.json: {where}.timeout must be a number of seconds above 0")
    return Hook(path, lists["args"], lists["env"], timeout)


class HookFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def run(hook: Hook, state: str) -> None:
    """Run *hook* with *state* on stdin; HookFailed if it cannot run, fails or times out."""
    argv = list(hook.args) or [hook.path]
    env = dict(item.partition("=")[::2] for item in hook.env)
    try:
        proc = subprocess.Popen(argv, executable=hook.path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    except OSError as exc:
        raise HookFailed(f"hook {hook.path}: {exc.strerror}") from None
    try:
        _out, err = proc.communicate(state.encode(), timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise HookFailed(f"hook {hook.path}: timed out after {hook.timeout} s") from None
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        detail = f": {said[-1]}" if said else ""
        raise HookFailed(f"hook {hook.path} failed with exit {proc.returncode}{detail}")


def run_all(hooks: tuple[Hook, ...], state: str) -> None:
    """Run *hooks* in order; the first failure stops them (HookFailed)."""
    for hook in hooks:
        run(hook, state)
