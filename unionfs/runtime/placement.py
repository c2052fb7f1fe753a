"""Where a container's cgroups go: *below the cgroup this process runs in*, per hierarchy
(from /proc/self/cgroup), named ``unionfs-<id>``; for an ordinary user, only where a cgroup
was delegated to them. Nothing of the parent cgroup is changed (not even v2's
subtree_control: a controller that is not delegated is an error that says so). The root
path is a parameter, so the v2 path is tested against a fake tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from unionfs.errors import UserError
from unionfs.runtime.cgroups import (
    ROOT,
    V1_CONTROLLERS,
    WHAT_FOR,
    Cgroup,
    NoCgroup,
    V1Cgroup,
    V2Cgroup,
    read,
)
from unionfs.runtime.spec import Resources

NO_DEVICE_RULES = (", nor device rules (an image's device nodes stay unusable: what a user "
                   "namespace mounts is nodev)")  # fmt: skip


def own_cgroups(text: str) -> tuple[dict[str, str], str | None]:
    """/proc/self/cgroup -> (v1 controller -> own path, own v2 path or None)."""
    v1: dict[str, str] = {}
    v2 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        for controller in controllers.split(","):
            if controller and not controller.startswith("name="):
                v1[controller] = path
    return v1, v2


def locate(name: str, resources: Resources, root: str = ROOT,
           self_cgroup: str | None = None) -> Cgroup:  # fmt: skip
    """Where the cgroup *name* of a new container goes, checked but not created."""
    if self_cgroup is None:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            self_cgroup = f.read()
    v1, v2 = own_cgroups(self_cgroup)
    needed = resources.controllers()
    if any(c in v1 for c in ("memory", "cpu", "pids")):
        found = _locate_v1(needed, v1, root, lambda own: os.path.join(own.lstrip("/"), name))
        unified = os.path.join(root, "unified")
        if "devices" in needed and v2 is not None and _is_v2(unified):
            # hybrid: the device rules also go to the v2 hierarchy, as a BPF program
            found.dirs["unified"] = os.path.join(unified, v2.lstrip("/"), name)
        return found
    return _locate_v2(needed, v2, root, lambda own: os.path.join(own.lstrip("/"), name))


def _is_v2(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "cgroup.controllers"))


def delegated(name: str, resources: Resources, root: str = ROOT,
              self_cgroup: str | None = None,
              may_create: Callable[[str], bool] | None = None,
              ) -> tuple[Cgroup, str | None]:  # fmt: skip
    """For an ordinary user: the cgroups *name* below their own where they may create one
    (a v1 directory chowned to them, a v2 subtree delegated to them), and a one-line
    notice when there is none (then no limits, no stats). Limits asked for without a
    delegated cgroup for their controller are an error naming the fix. *may_create*
    (parent directory -> bool) is a seam for tests; the default asks the kernel."""
    allowed = may_create or _may_create
    needed = resources.controllers()
    try:
        found = locate(name, resources, root, self_cgroup)
    except UserError:
        if needed:
            raise
        return NoCgroup(), ("no cgroup hierarchy found: running without cgroup limits or "
                            f"stats{NO_DEVICE_RULES}")  # fmt: skip
    if isinstance(found, V1Cgroup):
        usable = {c: p for c, p in found.dirs.items() if allowed(os.path.dirname(p))}
        parents = {c: os.path.dirname(p) for c, p in found.dirs.items()}
    else:
        assert isinstance(found, V2Cgroup)
        parent = os.path.dirname(found.path)
        usable = {"unified": found.path} if allowed(parent) else {}
        parents = {c: parent for c in ("memory", "cpu", "pids", "unified")}
    for controller in needed:
        if controller != "devices" and controller not in usable and "unified" not in usable:
            where = parents.get(controller, root)
            raise UserError(f"{WHAT_FOR[controller]} needs a cgroup delegated to you: {where} "
                            "is not yours (fix: as root, make a cgroup there, chown -R it to "
                            "you and move your shell into it; or run without limits)")  # fmt: skip
    if not usable:
        where = next(iter(parents.values()), root)
        return NoCgroup(), (f"no delegated cgroup ({where} is not yours): running without "
                            f"cgroup limits or stats{NO_DEVICE_RULES}")  # fmt: skip
    if isinstance(found, V1Cgroup):
        return V1Cgroup(usable), None
    return found, None


def _may_create(parent: str) -> bool:
    """Whether this user may make a cgroup in *parent* and move processes into it."""
    return os.access(parent, os.W_OK) and os.access(os.path.join(parent, "cgroup.procs"), os.W_OK)


def _locate_v1(needed: tuple[str, ...], own: dict[str, str], root: str,
               place: Callable[[str], str]) -> V1Cgroup:  # fmt: skip
    """Per hierarchy: *place* (our own path there -> the cgroup's, relative to its root)."""
    dirs = {}
    for controller in dict.fromkeys((*V1_CONTROLLERS, *needed)):
        hierarchy = _v1_hierarchy(root, controller, own)
        if hierarchy is None:
            if controller in needed:
                raise UserError(f"the cgroup controller {controller!r} is not available "
                                f"(needed for {WHAT_FOR[controller]}): no v1 hierarchy "
                                f"mounted at {root}/{controller}")  # fmt: skip
            continue
        dirs[controller] = os.path.join(hierarchy, place(own[controller]))
    return V1Cgroup(dirs)


def _v1_hierarchy(root: str, controller: str, own: dict[str, str]) -> str | None:
    if controller not in own:
        return None
    comounted = sorted(c for c, p in own.items() if p == own[controller])
    for candidate in (controller, ",".join(comounted)):
        path = os.path.join(root, candidate)
        if os.path.isfile(os.path.join(path, "cgroup.procs")):
            return path
    return None


def _locate_v2(needed: tuple[str, ...], own: str | None, root: str,
               place: Callable[[str], str]) -> V2Cgroup:  # fmt: skip
    mount = next((p for p in (root, os.path.join(root, "unified")) if _is_v2(p)), None)
    if own is None or mount is None:
        raise UserError(f"no cgroup hierarchy found at {root} (neither v1 nor v2)")
    parent = os.path.join(mount, own.lstrip("/"))
    delegated = (read(os.path.join(parent, "cgroup.subtree_control")) or "").split()
    available = (read(os.path.join(mount, "cgroup.controllers")) or "").split()
    for controller in needed:
        if controller == "devices":
            continue  # not a v2 controller: a BPF program (set_limits)
        if controller not in delegated:
            hint = ("it is not enabled in this kernel's cgroup v2" if controller not in available
                    else f"enable it in {parent}/cgroup.subtree_control (the cgroup "
                         f"{own} must then have no processes of its own)")  # fmt: skip
            raise UserError(f"the cgroup controller {controller!r} is not available below "
                            f"{own} (needed for {WHAT_FOR[controller]}): {hint}")  # fmt: skip
    return V2Cgroup(os.path.join(mount, place(own)))



def at_path(path: str, resources: Resources, root: str = ROOT,
            self_cgroup: str | None = None) -> Cgroup:  # fmt: skip
    """The cgroups an OCI bundle's ``linux.cgroupsPath`` names, as runc reads it (an
    absolute path from each hierarchy's root, a relative one below our own cgroup there),
    checked but not created."""
    if self_cgroup is None:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            self_cgroup = f.read()
    v1, v2 = own_cgroups(self_cgroup)

    def place(own: str) -> str:
        return path.lstrip("/") if path.startswith("/") else os.path.join(own.lstrip("/"), path)

    needed = resources.controllers()
    if any(c in v1 for c in ("memory", "cpu", "pids")):
        found = _locate_v1(needed, v1, root, place)
        unified = os.path.join(root, "unified")
        if "devices" in needed and v2 is not None and _is_v2(unified):
            found.dirs["unified"] = os.path.join(unified, place(v2))
        return found
    return _locate_v2(needed, v2, root, place)


def named(name: str, root: str = ROOT) -> V1Cgroup:
    """The cgroups *name* below ours in every hierarchy mounted at *root* (runc makes one
    in each, crun in the v2 one) that exist."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="ascii") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else ["unified"]:
                own[c.removeprefix("name=")] = path
    if set(own) == {"unified"}:  # a pure v2 host: the hierarchy is the root itself
        own[""] = own["unified"]
    found = {}
    for entry in [*sorted(os.listdir(root)), ""]:
        mine = own.get(entry.split(",")[0])
        candidate = os.path.join(root, entry, (mine or "").lstrip("/"), name)
        if mine is not None and os.path.isdir(candidate):
            found[entry or "v2"] = candidate
    return V1Cgroup(found)
