"""The registry verbs as a user runs them: ``login``/``logout`` keeping credentials where
podman keeps them, then ``pull``/``push`` using them; short names and insecure registries
from a private registries.conf; podman's transports (``docker://``, ``oci-archive:``,
``docker-archive:``, ``oci:``) for pull and push; ``save --format`` and ``load``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from patience import scaled
from registry.conftest import PASSWORD, USER, auth_registry, registry, token_registry  # noqa: F401
from registry.regutil import Registry
from store.storeutil import rootfs

Uf = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's environment of their own: home, runtime dir, no credentials, no config."""
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    for d in (home, runtime):
        d.mkdir(mode=0o700)
    found = {k: v for k, v in os.environ.items()
             if k not in ("REGISTRY_AUTH_FILE", "UNIONFS_REGISTRY_USERNAME",
                          "UNIONFS_REGISTRY_PASSWORD", "XDG_CONFIG_HOME")}  # fmt: skip
    conf = tmp_path / "registries.conf"
    conf.write_text("# empty\n")
    return found | {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "UNIONFS_HOME":
                    str(tmp_path / "s"), "CONTAINERS_REGISTRIES_CONF": str(conf)}  # fmt: skip


@pytest.fixture
def uf(env: dict[str, str]) -> Uf:
    def run(*args: str, ok: bool = True, stdin: bytes | str | None = None,
            root: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        where = ["--root", str(root)] if root is not None else []
        proc = subprocess.run([sys.executable, "-m", "unionfs", *where, *args], env=env,
                              input=stdin if isinstance(stdin, str) else None,
                              capture_output=True, text=True, timeout=scaled(300),
                              stdin=subprocess.DEVNULL if stdin is None else None)  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        else:
            assert proc.returncode != 0 and len(proc.stderr.splitlines()) == 1, proc.stderr
        return proc

    return run


@pytest.fixture
def image(uf: Uf, tmp_path: Path) -> str:
    uf("import", str(rootfs(tmp_path / "rootfs")), "app:1")
    return "app:1"


def auth_json(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"


def test_login_keeps_credentials_where_podman_does_and_pull_push_use_them(
    uf: Uf, env: dict[str, str], image: str, auth_registry: Registry  # noqa: F811
) -> None:
    host = auth_registry.host
    refused = uf("push", image, f"{host}/t/app:1", "--tls-verify=false", ok=False)
    assert "unauthorized" in refused.stderr or "needs credentials" in refused.stderr
    bad = uf("login", "-u", USER, "-p", "wrong", "--tls-verify=false", host, ok=False)
    assert bad.stderr == f"unionfs: logging into {host}: invalid username or password\n"
    assert not auth_json(env).exists()
    done = uf("login", "-u", USER, "--password-stdin", "--tls-verify=false", host,
              stdin=PASSWORD + "\n")  # fmt: skip
    assert done.stdout == "Login Succeeded!\n"
    path = auth_json(env)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(path.read_text())["auths"][host]["auth"]
    assert base64.b64decode(entry).decode() == f"{USER}:{PASSWORD}"
    assert uf("login", "--get-login", host).stdout == f"{USER}\n"
    uf("push", image, f"{host}/t/app:1", "--tls-verify=false")
    uf("pull", f"docker://{host}/t/app:1", "--tls-verify=false")
    assert uf("logout", host).stdout == f"Removed login credentials for {host}\n"
    assert uf("logout", host, ok=False).stderr == f"unionfs: not logged into {host}\n"
    assert uf("pull", f"{host}/t/app:1", "--tls-verify=false", ok=False).returncode == 1


def test_login_to_a_token_registry_and_the_auth_file_flags(
    uf: Uf, env: dict[str, str], tmp_path: Path, image: str, token_registry: Registry  # noqa: F811
) -> None:
    host = token_registry.host
    own = tmp_path / "own-auth.json"
    uf("login", "-u", USER, "-p", PASSWORD, "--authfile", str(own), "--tls-verify=false", host)
    assert own.exists() and not auth_json(env).exists()
    uf("push", image, f"{host}/t/app:2", "--tls-verify=false", "--authfile", str(own))
    env["REGISTRY_AUTH_FILE"] = str(own)  # podman's variable: read and written there
    uf("pull", f"{host}/t/app:2", "--tls-verify=false")
    assert uf("logout", "-a").stdout == "Removed login credentials for all registries\n"
    assert json.loads(own.read_text())["auths"] == {}
    no_tty = uf("login", host, ok=False)
    assert "stdin is not a terminal" in no_tty.stderr


def test_short_names_and_insecure_registries_come_from_registries_conf(
    uf: Uf, env: dict[str, str], image: str, registry: Registry  # noqa: F811
) -> None:
    host = registry.host
    uf("push", image, f"{host}/unionfs-short:1", "--tls-verify=false")
    # Without the config: TLS is verified, and a short name has nowhere to go.
    assert "tls-verify" in uf("pull", f"{host}/unionfs-short:1", ok=False).stderr
    assert "no unqualified-search registries" in uf("pull", "unionfs-short:1", ok=False).stderr
    Path(env["CONTAINERS_REGISTRIES_CONF"]).write_text(
        f'unqualified-search-registries = ["{host}"]\n'
        f'[[registry]]\nlocation = "{host}"\ninsecure = true\n'
    )
    out = uf("pull", "unionfs-short:1").stdout
    assert out.startswith(f"pulled {host}/unionfs-short:1 as {host}/unionfs-short:1:")
    listed = uf("images", "--format", "{{.Repository}}:{{.Tag}}", f"{host}/unionfs-short")
    assert f"{host}/unionfs-short:1\n" in listed.stdout
    assert uf("push", "-q", image, f"{host}/unionfs-short:2").stdout == ""  # nor --tls-verify
    Path(env["CONTAINERS_REGISTRIES_CONF"]).write_text(
        f'[[registry]]\nlocation = "{host}"\nblocked = true\n'
    )
    assert "is blocked in registries.conf" in uf("pull", f"{host}/unionfs-short:1",
                                                  ok=False).stderr  # fmt: skip


def test_push_and_pull_through_archive_transports(uf: Uf, tmp_path: Path, image: str) -> None:
    image_id = uf("images", "--format", "{{.Id}}").stdout
    cases = ((f"oci-archive:{tmp_path}/a.tar", "localhost/app:1"),
             (f"docker-archive:{tmp_path}/d.tar:copy:2", "localhost/copy:2"),
             (f"oci:{tmp_path}/layout:copy:3", "localhost/copy:3"))  # fmt: skip
    for i, (dest, name) in enumerate(cases):
        other = tmp_path / f"other{i}"
        uf("push", image, dest)
        uf("pull", dest, root=other)
        got = uf("images", "--format", "{{.Id}} {{.Repository}}:{{.Tag}}", name, root=other)
        assert got.stdout == f"{image_id.strip()} {name}\n", dest
    assert "transport is not supported" in uf("pull", "dir:/tmp/x", ok=False).stderr


def test_save_formats_and_load_from_a_file_or_stdin(uf: Uf, tmp_path: Path, image: str) -> None:
    image_id = uf("images", "--format", "{{.Id}}").stdout
    other = tmp_path / "other"
    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"{fmt}.tar"
        uf("save", "--format", fmt, "-o", str(archive), image)
        streamed = subprocess.run(
            [sys.executable, "-m", "unionfs", "save", "--format", fmt, image],
            env={**os.environ, "UNIONFS_HOME": str(tmp_path / "s")}, capture_output=True,
            check=True,
        ).stdout  # fmt: skip
        assert streamed == archive.read_bytes()  # reproducible, and the same through a pipe
        loaded = subprocess.run([sys.executable, "-m", "unionfs", "--root", str(other), "load"],
                                input=streamed, capture_output=True, check=True).stdout  # fmt: skip
        assert loaded == b"Loaded image: localhost/app:1\n"
        assert uf("images", "--format", "{{.Id}}", root=other).stdout == image_id
        uf("rmi", "app:1", root=other)
        assert uf("load", "-i", str(archive), root=other).stdout == \
            "Loaded image: localhost/app:1\n"  # fmt: skip
        uf("rmi", "app:1", root=other)
    uf("save", "--format", "oci-dir", "-o", str(tmp_path / "dir"), image)
    assert (tmp_path / "dir" / "index.json").exists()
    assert "give -o DIR" in uf("save", "--format", "oci-dir", image, ok=False).stderr
    subprocess.run(["tar", "-C", str(tmp_path / "rootfs"), "-cf", str(tmp_path / "rootfs.tar"),
                    "."], check=True)  # fmt: skip
    assert "not an image archive" in uf("load", "-i", str(tmp_path / "rootfs.tar"),
                                        ok=False).stderr  # fmt: skip
    assert "is a directory" in uf("load", "-i", str(tmp_path / "dir"), ok=False).stderr
