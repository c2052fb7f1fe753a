"""``unionfs version [--format json|TEMPLATE]``: this unionfs, the Python and pyfuse3 it
runs on, as ``podman version`` shows its own (``{{.Client.Version}}``)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys

from unionfs import __version__
from unionfs.cli import gotemplate, report


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("version", help="show the versions of unionfs and what it runs on")
    p.add_argument("-f", "--format", metavar="FORMAT", help="json, or a Go template "
                   "({{.Client.Version}}, {{.Client.PythonVersion}}...)")  # fmt: skip


def machine_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def facts() -> dict[str, object]:
    try:
        binding = importlib.metadata.version("pyfuse3")  # without loading it (fuse/ does)
    except importlib.metadata.PackageNotFoundError:
        binding = "not installed"
    return {"Client": {
        "Version": __version__, "APIVersion": __version__,
        "PythonVersion": platform.python_version(), "Pyfuse3Version": binding,
        "OsArch": f"linux/{machine_arch()}", "Os": "linux",
    }}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    value = facts()
    if report.is_json(args.format):
        print(json.dumps(value, separators=(",", ":")))
        return 0
    if args.format:
        sys.stdout.write(gotemplate.execute(gotemplate.parse(report.normalize(args.format)), value))
        return 0
    client = value["Client"]
    assert isinstance(client, dict)
    lines = [("Client:", "unionfs"), ("Version:", client["Version"]),
             ("Python Version:", client["PythonVersion"]),
             ("pyfuse3 Version:", client["Pyfuse3Version"]),
             ("OS/Arch:", client["OsArch"])]  # fmt: skip
    width = max(len(k) for k, _v in lines) + 1
    for key, val in lines:
        print(f"{key:<{width}}{val}")
    return 0
