"""``unionfs push`` / ``unionfs pull`` end to end: store -> real registry -> empty store, both
images mounted and their trees compared; the registry log shows a second image sharing the
base layers sent only its own; bad input is one line, a non-zero exit, the store unchanged.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mountutil import unionfs_mount
from treecmp import snapshot as tree_snapshot

from registry.conftest import PASSWORD, USER
from registry.regutil import Registry, build_image, free_port, random_bytes, snapshot
from unionfs.store import ImageStore

KIB = 1024
BASE = [
    {
        "etc": None,
        "etc/os-release": b"NAME=base\n",
        "etc/motd": b"hello\n",
        "bin": None,
        "bin/tool": random_bytes(200 * KIB, 11),
        "bin/alias": "tool",
    },
    {"usr": None, "usr/lib": None, "usr/lib/libx.so": random_bytes(150 * KIB, 12)},
]
TOP = {"etc": None, "etc/.wh.motd": b"", "app": None, "app/main": random_bytes(80 * KIB, 13)}


def uf(
    root: Path, *args: str, ok: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "XDG_CONFIG_HOME": str(root.parent / "xdg"), **(env or {})}
    for var in ("REGISTRY_AUTH_FILE", "UNIONFS_REGISTRY_USERNAME", "UNIONFS_REGISTRY_PASSWORD"):
        if env is None or var not in env:
            full_env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "unionfs", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def source_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding ``base:1`` (two layers) and ``app:1`` (the same two and one more)."""
    work = tmp_path_factory.mktemp("srcstore")
    layout = work / "layout"
    build_image(layout, "base", BASE)
    build_image(layout, "app", [*BASE, TOP])
    root = work / "store"
    uf(root, "import", f"{layout}:base", "base:1")
    uf(root, "import", f"{layout}:app", "app:1")
    return root


def mounted_tree(root: Path, image: str, mnt: Path) -> dict[bytes, dict[str, object]]:
    with ImageStore(str(root)) as store:
        lowers = store.lowers(store.resolve(image))
    mnt.mkdir()
    with unionfs_mount(lowers, mnt):
        return tree_snapshot(mnt)


def test_push_then_pull_into_an_empty_store_gives_the_same_tree(
    registry: Registry, source_store: Path, tmp_path: Path
) -> None:
    host = registry.host
    out = uf(source_store, "push", "base:1", f"{host}/cli/app:base", "--tls-verify=false").stdout
    assert "2 layers: 2 sent, 0 skipped" in out
    mark = registry.mark()
    out = uf(source_store, "push", "app:1", f"{host}/cli/app:1", "--tls-verify=false").stdout
    assert "3 layers: 1 sent, 2 skipped" in out, out
    uploads = [u for m, u, _ in registry.requests(mark) if m == "PUT" and "/blobs/uploads/" in u]
    assert len(uploads) == 2  # the top layer and the config; the base layers were not sent

    dest = tmp_path / "dest"
    out = uf(dest, "pull", f"{host}/cli/app:1", "--tls-verify=false").stdout
    assert "3 layers: 3 fetched, 0 skipped" in out
    again = uf(dest, "pull", f"{host}/cli/app:1", "copy:2", "--tls-verify=false").stdout
    assert "3 layers: 0 fetched, 3 skipped" in again

    ours = mounted_tree(source_store, "app:1", tmp_path / "m1")
    theirs = mounted_tree(dest, f"{host}/cli/app:1", tmp_path / "m2")
    assert ours == theirs
    assert b"app/main" in ours and b"etc/os-release" in ours and b"etc/motd" not in ours
    assert ours[b"bin/alias"]["target"] == b"tool"


def test_killed_store_pull_resumes_and_leaves_no_temp_blob(
    registry: Registry, source_store: Path, tmp_path: Path
) -> None:
    ref = f"{registry.host}/cli/resume:1"
    uf(source_store, "push", "app:1", ref, "--tls-verify=false")
    dest = tmp_path / "dest"
    child = """
import os, signal, sys
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, pull
from unionfs.store import ImageStore

class Kill:
    def begin(self, desc): self.n = 0
    def advance(self, desc, n):
        self.n += n
        if self.n > 100 * 1024:
            os.kill(os.getpid(), signal.SIGKILL)
    def end(self, desc, outcome): pass

r = parse_reference(sys.argv[1])
with ImageStore(sys.argv[2]) as store, connect(r, tls_verify=False) as client:
    pull(client, r, store, "x", progress=Kill())
"""
    proc = subprocess.run([sys.executable, "-c", child, ref, str(dest)], check=False)
    assert proc.returncode == -9
    blobs = dest / "blobs" / "sha256"
    temps = {p.name.removesuffix(".lock") for p in blobs.iterdir() if p.name.startswith(".")}
    assert len(temps) == 1 and not [p for p in blobs.iterdir() if not p.name.startswith(".")]
    assert "x:latest" not in uf(dest, "images").stdout
    out = uf(dest, "pull", ref, "--tls-verify=false").stdout
    assert "3 layers: 3 fetched" in out
    assert [p.name for p in blobs.iterdir() if p.name.startswith(".")] == []


def store_state(root: Path) -> dict[str, bytes | None]:
    """The store's files, without LMDB's lock file (readers register in it)."""
    return {k: v for k, v in snapshot(root).items() if not k.endswith("lock.mdb")}


def write_authfile(path: Path, host: str, user: str, password: str) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


def test_bad_input_is_one_line_nonzero_and_the_store_unchanged(
    registry: Registry, auth_registry: Registry, source_store: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    uf(dest, "pull", f"{registry.host}/cli/app:base", "keep", "--tls-verify=false")
    before = store_state(dest)
    wrong = write_authfile(tmp_path / "wrong.json", auth_registry.host, USER, "not-it")
    cases = [
        (["pull", f"{registry.host}/Bad/Name"], "malformed image reference"),
        (["pull", f"{registry.host}/cli/app:nosuchtag"], "no such image"),
        (["pull", f"127.0.0.1:{free_port()}/cli/app:1"], "cannot reach registry"),
        (["pull", f"{auth_registry.host}/cli/app:1"], "unauthorized (no credentials found"),
        (
            ["pull", f"{auth_registry.host}/cli/app:1", "--authfile", str(wrong)],
            "unauthorized (credentials refused",
        ),
        (["pull", f"{registry.host}/cli/app:base", "--tls-verify=true"], "--tls-verify=false"),
        (["pull", f"{registry.host}/cli/app:base", "--tls-verify=maybe"], "expected true or false"),
        (["push", "nosuch:1", f"{registry.host}/cli/x:1"], "no such image"),
        (["pull", f"{registry.host}/cli/app:base", "bad name"], "invalid image name"),
    ]
    for args, message in cases:
        extra = [] if any(a.startswith("--tls-verify") for a in args) else ["--tls-verify=false"]
        proc = uf(dest, *args, *extra, ok=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("unionfs: ") and message in lines[0], (args, lines)
        assert "not-it" not in proc.stderr and "Traceback" not in proc.stderr
        assert store_state(dest) == before, args
    # A pull that fails at the registry does not even create a new store.
    missing = tmp_path / "never"
    proc = uf(missing, "pull", f"{registry.host}/cli/app:nosuchtag", "--tls-verify=false", ok=False)
    assert proc.returncode == 1 and not missing.exists()


def test_push_and_pull_with_basic_auth(
    auth_registry: Registry, source_store: Path, tmp_path: Path
) -> None:
    good = write_authfile(tmp_path / "auth.json", auth_registry.host, USER, PASSWORD)
    ref = f"{auth_registry.host}/private/app:1"
    proc = uf(source_store, "push", "app:1", ref, "--tls-verify=false", "--authfile", str(good))
    assert PASSWORD not in proc.stdout + proc.stderr
    # The same credentials from the environment, and from $XDG_CONFIG_HOME/unionfs/auth.json.
    env = {"UNIONFS_REGISTRY_USERNAME": USER, "UNIONFS_REGISTRY_PASSWORD": PASSWORD}
    out = uf(tmp_path / "s1", "pull", ref, "--tls-verify=false", env=env).stdout
    assert "3 layers: 3 fetched" in out
    (tmp_path / "xdg" / "unionfs").mkdir(parents=True)
    write_authfile(tmp_path / "xdg" / "unionfs" / "auth.json", auth_registry.host, USER, PASSWORD)
    out = uf(tmp_path / "s2", "pull", ref, "--tls-verify=false").stdout
    assert "3 layers: 3 fetched" in out
