"""The OCI runtime-tools validation suite, run against ``unionfs-runtime`` and runc side by
side (slow tier): every test that passes on runc must pass on ours, unless it is listed in
``NOT_ON_OURS`` with the reason.

The suite's sources: ``$RUNTIME_TOOLS_SRC`` (a runtime-tools checkout) or the Debian path.
Debian's ``golang-github-opencontainers-runtime-tools-dev`` (0.9.0+git20220423) ships only
the libraries (generate, validate, specerror, cgroups), not ``validation/`` nor
``cmd/runtimetest``, and neither Debian's source archive nor the Go module proxy is
reachable from this machine: without a checkout the test skips and says so. Each
validation program is built as its own binary (``go build ./validation/NAME``) and run from
a directory holding ``runtimetest`` and ``rootfs-amd64.tar.gz`` (busybox), with
``RUNTIME`` naming a wrapper that gives the runtime a private ``--root`` and a bundle
without ``cgroupsPath`` one below our own cgroup. A tree holding ``validation/`` alone
(no ``cmd/runtimetest``) runs with a stub ``runtimetest``: the lifecycle programs still
check what they check, the checks from inside nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime.containerutil import own_cgroup_dirs
from runtime.ocitest import OURS

DEBIAN = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-tools")
GOPATH = "/usr/share/gocode"  # Debian's packaged Go libraries (the suite's dependencies)
PER_TEST = 600.0
NOT_ON_OURS: dict[str, str] = {}  # validation name -> why it cannot apply to unionfs
# Not run at all: they make their cgroups at /cgrouptest of every hierarchy's root (runc
# makes one in each), outside this process's own memory cgroup, which the machine owns.
NOT_RUN_PREFIXES = ("linux_cgroups_",)


def sources() -> Path:
    for candidate in (os.environ.get("RUNTIME_TOOLS_SRC"), str(DEBIAN)):
        if candidate and (Path(candidate) / "validation").is_dir():
            return Path(candidate)
    pytest.skip("no runtime-tools validation sources: Debian's golang-github-opencontainers-"
                "runtime-tools-dev ships only its libraries (no validation/, no "
                "cmd/runtimetest), and they cannot be fetched here; set RUNTIME_TOOLS_SRC "
                "to a runtime-tools checkout")  # fmt: skip


def build(src: Path, work: Path) -> list[str]:
    """runtimetest and every validation program, built into *work*; their names."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed (apt-get install golang-go)")
    gopath = work / "gopath"
    tree = gopath / "src/github.com/opencontainers/runtime-tools"
    tree.parent.mkdir(parents=True)
    shutil.copytree(src, tree, symlinks=True)
    module = (tree / "vendor").is_dir()
    cache = os.environ.get("GOCACHE", str(work / "cache"))  # a warm one, if given
    # a checkout inside a GOPATH (ROOT/src/github.com/opencontainers/runtime-tools) brings
    # that GOPATH's other packages (tap-go, uuid, fileutils: Debian packages none of them)
    outer = f":{src.parents[3]}" if src.parents[2].name == "src" else ""
    env = {**os.environ, "GOPATH": f"{gopath}:{GOPATH}{outer}", "GOCACHE": cache,
           "GO111MODULE": "on" if module else "off", "GOFLAGS": "-mod=vendor" if module else "",
           "GOPROXY": "off"}  # fmt: skip

    def go_build(out: Path, package: str) -> None:
        done = subprocess.run(["go", "build", "-o", str(out), package], cwd=tree, env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, f"go build {package}: {done.stderr}"

    if (tree / "cmd/runtimetest").is_dir():
        go_build(work / "runtimetest", "./cmd/runtimetest")
    else:  # a tree of validation/ alone: the checks from inside check nothing
        print("no cmd/runtimetest: a stub that exits 0 runs in its place")
        (work / "runtimetest").write_text("#!/bin/sh\nexit 0\n")
        (work / "runtimetest").chmod(0o755)
    names = sorted(d.name for d in (tree / "validation").iterdir()
                   if d.is_dir() and (d / f"{d.name}.go").exists()
                   and not d.name.startswith(NOT_RUN_PREFIXES))  # fmt: skip
    for name in names:
        go_build(work / f"{name}.t", f"./validation/{name}")
    return names


def failed(lines: list[str]) -> bool:
    """Whether a TAP stream says a failure: a ``not ok`` line, or a YAML block with an
    ``error:`` that belongs to no ``ok`` line (some programs say a failure only so). A block
    right after an ``ok`` line is its diagnostic, whatever the program printed between them
    (``Refer to: ...``) and in whatever order its keys come (Go's maps have none)."""
    owner = False  # an "ok" line whose diagnostic block may follow
    in_block = has_error = False
    for line in lines:
        if in_block:
            if line == "  ...":
                if has_error and not owner:
                    return True
                in_block = owner = False
            has_error = has_error or line.startswith("  error:")
        elif line.startswith("not ok"):
            return True
        elif line.startswith("ok"):
            owner = True
        elif line == "  ---":
            in_block, has_error = True, False
    return False


def passes(work: Path, name: str, runtime: str) -> bool:
    """Whether validation program *name* reports only ``ok`` (and skips) for *runtime*."""
    done = subprocess.run([str(work / f"{name}.t")], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "RUNTIME": runtime}, timeout=PER_TEST,
                          check=False)  # fmt: skip
    return done.returncode == 0 and not failed(done.stdout.splitlines())


WRAPPER = """#!{python}
import json, os, sys, uuid
args = sys.argv[1:]
if "create" in args:  # a bundle without cgroupsPath: runc would make /ID at every root
    i = args.index("--bundle") if "--bundle" in args else -1
    path = os.path.join(args[i + 1] if i >= 0 else ".", "config.json")
    with open(path) as f:
        config = json.load(f)
    linux = config.setdefault("linux", {{}})
    if not linux.get("cgroupsPath"):
        linux["cgroupsPath"] = "unionfs-rtval-" + uuid.uuid4().hex[:10]  # below ours
        with open(path, "w") as f:
            json.dump(config, f)
os.execv({program!r}, [{program!r}, "--root", {state!r}, *args])
"""


def wrapper(path: Path, program: str, state: Path) -> str:
    """A RUNTIME for the programs: *program* with a private --root, and a relative
    cgroupsPath given to a bundle that names none."""
    path.write_text(WRAPPER.format(python=sys.executable, program=program, state=str(state)))
    path.chmod(0o755)
    return str(path)


@pytest.mark.slow
def test_runtime_tools_validation_passes_on_ours_where_it_passes_on_runc(
    tmp_path: Path, busybox_rootfs: Path
) -> None:
    src = sources()
    work = tmp_path / "work"
    work.mkdir()
    names = build(src, work)
    with tarfile.open(work / "rootfs-amd64.tar.gz", "w:gz") as tar:
        tar.add(busybox_rootfs, arcname=".")
    runc = wrapper(work / "runc-wrapper", shutil.which("runc") or "runc", tmp_path / "runc")
    ours = wrapper(work / "unionfs-runtime", OURS, tmp_path / "ours")
    table = {name: (passes(work, name, runc), passes(work, name, ours)) for name in names}
    print("\n| validation | runc | unionfs-runtime |\n|---|---|---|")
    for name, (theirs, mine) in table.items():
        print(f"| {name} | {'pass' if theirs else 'FAIL'} | {'pass' if mine else 'FAIL'} |")
    behind = {n for n, (theirs, mine) in table.items() if theirs and not mine}
    assert behind <= set(NOT_ON_OURS), sorted(behind - set(NOT_ON_OURS))
    left = [p for d in own_cgroup_dirs() for p in d.glob("unionfs-rtval-*")]
    left += [p for p in (tmp_path / "runc", tmp_path / "ours") if p.exists() and any(p.iterdir())]
    assert left == []
