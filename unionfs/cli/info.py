"""``unionfs info [--format json|TEMPLATE]``: the host, the store and the registries as
unionfs sees them, as ``podman info`` shows its own: the cgroup version and controllers,
rootless or not and the id mappings, the FUSE features the pyfuse3 binding offers and those
it lacks (``fuse.features``), the store's place and counts, the index's place, and what
registries.conf says. Printed as YAML (the default) or JSON."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from unionfs import livemounts
from unionfs.cli import containerinfo, gotemplate, report
from unionfs.cli.version import machine_arch
from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, default_home
from unionfs.store import catalog


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", help="show the host, store and registries as unionfs sees them",
                       description=__doc__)  # fmt: skip
    p.add_argument("-f", "--format", metavar="FORMAT", help="json, or a Go template "
                   "({{.Host.CgroupVersion}}, {{.Store.GraphRoot}}...)")  # fmt: skip


def _cgroups() -> tuple[str, list[str]]:
    """(version, controllers): v2 when /sys/fs/cgroup is cgroup2, else v1 (a hybrid host's
    v2 hierarchy at /sys/fs/cgroup/unified is said in the version)."""
    if livemounts.fstype_at("/sys/fs/cgroup") == "cgroup2":
        try:
            with open("/sys/fs/cgroup/cgroup.controllers", encoding="ascii") as f:
                return "v2", f.read().split()
        except OSError:
            return "v2", []
    controllers = []
    try:
        with open("/proc/cgroups", encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if fields and not line.startswith("#") and fields[3] == "1" and fields[1] != "0":
                    controllers.append(fields[0])
    except OSError:
        pass
    hybrid = livemounts.fstype_at("/sys/fs/cgroup/unified") == "cgroup2"
    return ("v1 (hybrid)" if hybrid else "v1"), controllers


def _fuse() -> dict[str, object]:
    from unionfs.cli.version import facts as version

    try:
        from unionfs.fuse import features
    except ImportError as exc:
        return {"binding": f"unavailable ({exc})"}
    client = version()["Client"]
    assert isinstance(client, dict)
    return {
        "binding": f"pyfuse3 {client['Pyfuse3Version']}",
        "features": sorted(features.available()), "missing": list(features.missing()),
        "device": "/dev/fuse" if os.path.exists("/dev/fuse") else "missing",
        "deviceAccess": os.access("/dev/fuse", os.R_OK | os.W_OK),
        "fusermount3": shutil.which("fusermount3") or "missing",
    }


def _id_mappings() -> dict[str, object]:
    if os.geteuid() == 0:
        return {}
    import pwd

    from unionfs.runtime import userns

    mapping, note = userns.plan_mapping(pwd.getpwuid(os.getuid()))
    return {"uidmap": [list(r) for r in userns.map_lines(mapping.uid, mapping.uid_ranges)],
            "gidmap": [list(r) for r in userns.map_lines(mapping.gid, mapping.gid_ranges)],
            **({"note": note} if note else {})}  # fmt: skip


def facts() -> dict[str, object]:
    from unionfs.cli.registrycli import registries
    from unionfs.cli.version import facts as version
    from unionfs.index.env import default_dir

    home = default_home()
    version_of, controllers = _cgroups()
    states = ContainerDirs(home).all()
    words = [containerinfo.state_word(s) for s in states]
    with catalog.metadata(home) as meta:
        names = catalog.names_by_image(meta)
    try:
        conf = registries()
        regs: dict[str, object] = {"search": conf.search, "files": conf.files,
                                   "insecure": sorted(p for p, e in conf.entries.items()
                                                      if e.insecure),
                                   "blocked": sorted(p for p, e in conf.entries.items()
                                                     if e.blocked)}  # fmt: skip
    except UserError as exc:
        regs = {"error": exc.message}
    uname = os.uname()
    return {
        "host": {
            "arch": machine_arch(), "os": "linux", "kernel": uname.release,
            "hostname": uname.nodename, "cpus": os.cpu_count(), "cgroupVersion": version_of,
            "cgroupControllers": controllers, "rootless": os.geteuid() != 0,
            "security": {"rootless": os.geteuid() != 0}, "idMappings": _id_mappings(),
            "fuse": _fuse(),
        },
        "store": {
            "graphRoot": home, "graphDriverName": "unionfs", "indexDir": default_dir(),
            "imageStore": {"number": len(names)},
            "containerStore": {"number": len(states), "running": words.count("running"),
                               "stopped": len(states) - words.count("running")},
        },
        "registries": regs,
        "version": version()["Client"],
    }  # fmt: skip


def _yaml(value: object, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and item:
                lines.append(f"{pad}{key}:")
                lines += _yaml(item, indent + 1)
            elif isinstance(item, list) and item:
                lines.append(f"{pad}{key}:")
                lines += [f"{pad}- {json.dumps(v) if not isinstance(v, str) else v}"
                          for v in item]  # fmt: skip
            else:
                shown = json.dumps(item) if not isinstance(item, str) or not item else item
                lines.append(f"{pad}{key}: {shown}")
    return lines


def run(args: argparse.Namespace) -> int:
    value = facts()
    if report.is_json(args.format):
        print(json.dumps(value, indent=2))
    elif args.format:
        nodes = gotemplate.parse(report.normalize(args.format))
        sys.stdout.write(gotemplate.execute(nodes, value))
    else:
        print("\n".join(_yaml(value)))
    return 0
