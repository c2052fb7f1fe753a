"""A container's privileges from the CLI's flags, as podman takes them: ``--cap-add``,
``--cap-drop`` (``ALL`` too), ``--privileged`` and ``--security-opt`` (``seccomp=unconfined
|FILE``, ``no-new-privileges[=BOOL]``, ``systempaths=unconfined``; ``label=disable`` and
``apparmor=unconfined`` are accepted and change nothing: no LSM profile is applied).

Pure but for reading the seccomp profile a ``seccomp=FILE`` names, once, when the spec is
made (the filter is saved with the container). ``spec.from_cli`` applies the result.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime import caps, seccomp

NO_OPS = ("label=disable", "label:disable", "apparmor=unconfined", "apparmor:unconfined")


@dataclass(frozen=True, slots=True)
class Security:
    bounding: tuple[int, ...]  # capability numbers
    no_new_privileges: bool
    seccomp: seccomp.Filter | None
    privileged: bool
    system_paths: bool  # keep the default masked and read-only paths


def _names(values: Sequence[str], flag: str) -> set[str]:
    """Full ``CAP_*`` names (or ``ALL``); an unknown one is an error naming the flag."""
    found = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item.upper() == "ALL":
                found.add("ALL")
            elif item:
                found.add(caps.NAMES[caps.numbers([item], flag)[0]])
    return found


def capabilities(add: Sequence[str], drop: Sequence[str], privileged: bool,
                 available: tuple[int, ...] | None = None) -> tuple[int, ...]:  # fmt: skip
    """The bounding set: docker's default (all with --privileged or ``--cap-add ALL``: all
    that *available*, by default our own bounding set, holds; none with ``--cap-drop
    ALL``), less the dropped, plus the added."""
    added, dropped = _names(add, "--cap-add"), _names(drop, "--cap-drop")
    everything: set[str] = set()
    if "ALL" in added or privileged:
        everything = {caps.NAMES[n] for n in (available or caps.own_bounding())}
    if everything:
        base = everything
    elif "ALL" in dropped:
        base = set()
    else:
        base = set(caps.DEFAULT)
    chosen = (base - (dropped - {"ALL"})) | (added - {"ALL"})
    return caps.numbers(chosen, "capabilities")


def _bool(text: str, option: str) -> bool:
    if text.lower() in ("", "true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise UserError(f"--security-opt {option}: expected true or false, not {text!r}")


def kernel_version() -> tuple[int, ...]:
    return seccomp.version(os.uname().release)


def parse(*, cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (),
          privileged: bool = False, options: Sequence[str] = (),
          native: str | None = None) -> Security:  # fmt: skip
    """The privileges the flags ask for. *native*: the seccomp architecture (default: this
    machine's)."""
    bounding = capabilities(cap_add, cap_drop, privileged)
    nnp = not privileged
    profile: object | None = None if privileged else seccomp.default_profile()
    system_paths = not privileged
    for option in options:
        if option in NO_OPS:
            continue
        key, sep, value = option.replace(":", "=", 1).partition("=")
        if key == "seccomp" and sep:
            profile = None if value == "unconfined" else seccomp.load_file(value)
        elif key == "no-new-privileges":
            nnp = _bool(value, option)
        elif key == "systempaths" and value == "unconfined":
            system_paths = False
        else:
            raise UserError(f"--security-opt {option!r} is not supported (unionfs takes "
                            "seccomp=unconfined|FILE, no-new-privileges[=true|false], "
                            "systempaths=unconfined)")  # fmt: skip
    filt = None
    if profile is not None:
        arch = native or seccomp.NATIVE.get(platform.machine(), platform.machine())
        held = [caps.NAMES[n] for n in bounding]
        filt = seccomp.parse(profile, held, arch, kernel_version())
    return Security(bounding, nnp, filt, privileged, system_paths)
