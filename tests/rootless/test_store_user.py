"""The store as an ordinary user (``~/.local/share/unionfs``): an image whose files belong
to root (and one to uid 1000) inside is stored with the host ids of the user's mapping,
shows its container owners in a container, through ``unionfs mount C`` and inside
``unionfs unshare``, and commits and saves with container ids; without subordinate ranges,
a single mapping with a one-line notice. Nothing is left behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from patience import scaled
from registry.regutil import REGISTRY_BIN, start_registry
from rootlessutil import PATH, TIMEOUT, RootlessUser
from skopeoutil import skopeo

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "id", "cat", "echo", "chown", "rm", "true", "stat")


def _image_tar(path: Path) -> Path:
    """A busybox rootfs tarball: everything root's, /etc/owned uid/gid 1000."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, data: bytes = b"", mode: int = 0o755, owner: int = 0,
                link: str = "") -> None:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, owner, owner
            info.linkname, info.size, info.mtime = link, len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ("bin", "etc", "proc", "dev", "sys", "tmp"):
            add(d, tarfile.DIRTYPE)
        add("bin/busybox", tarfile.REGTYPE, Path(BUSYBOX).read_bytes())
        for applet in APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
        add("etc/owned", tarfile.REGTYPE, b"mine\n", mode=0o644, owner=1000)
    os.chmod(path, 0o644)
    return path


def _sub_start(path: str, name: str) -> int:
    with open(path, encoding="utf-8") as f:
        return next(int(ln.split(":")[1]) for ln in f if ln.split(":")[0] == name)


def _owners(ls_output: str) -> dict[str, str]:
    """``ls -ln`` lines -> {name: "uid:gid"}."""
    found = {}
    for line in ls_output.splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[0][0] in "-lcd":
            found[os.path.basename(fields[8])] = f"{fields[2]}:{fields[3]}"
    return found


def _layer_with(store: Path, name: str) -> list[Path]:
    layers = store / "layers"
    return [p for p in layers.iterdir() if (p / name).exists()] if layers.is_dir() else []


def _top_layer_owners(archive: Path) -> dict[str, tuple[int, int]]:
    with tarfile.open(archive) as outer:

        def blob(digest: str) -> bytes:
            member = outer.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert member is not None
            return member.read()

        index = json.loads(outer.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        data = blob(manifest["layers"][-1]["digest"])
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        return {m.name.removeprefix("./").rstrip("/"): (m.uid, m.gid) for m in layer}


@pytest.fixture
def image_tar(rootless_user: RootlessUser) -> Path:
    for tool in (BUSYBOX, REGISTRY_BIN, shutil.which("skopeo") or "/skopeo"):
        if not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed")
    return _image_tar(rootless_user.base / f"image-{secrets.token_hex(4)}.tar")


def test_user_store_keeps_host_ids_and_shows_container_ids(
    rootless_user: RootlessUser, image_tar: Path
) -> None:
    user = rootless_user
    store = user.home / ".local" / "share" / "unionfs"
    tok = secrets.token_hex(3)
    img, img2, cname = f"ustore-{tok}", f"ustore-{tok}-c", f"usc-{tok}"
    subuid, subgid = _sub_start("/etc/subuid", user.name), _sub_start("/etc/subgid", user.name)

    user.unionfs("import", str(image_tar), img)
    (layer,) = _layer_with(store, "etc/owned")
    busybox, owned = (layer / "bin" / "busybox").stat(), (layer / "etc" / "owned").stat()
    assert (busybox.st_uid, busybox.st_gid) == (user.uid, user.gid)  # root inside
    assert (owned.st_uid, owned.st_gid) == (subuid + 999, subgid + 999)  # 1000 inside
    assert (layer / "etc").stat().st_uid == user.uid

    proc = user.unionfs("run", "--rm", img, "ls", "-ln", "/etc/owned", "/bin/busybox")
    assert _owners(proc.stdout) == {"owned": "1000:1000", "busybox": "0:0"}

    cid = user.unionfs("create", "--name", cname, img).stdout.strip()
    py = f'"{user.python}" -m unionfs'
    # Outside the namespace, `unionfs mount C` shows the container's owners (uidmapping).
    outside = f'm=$({py} mount {cname}) && ls -ln "$m/etc/owned" "$m/bin/busybox"; ' \
              f"{py} umount {cname}"  # fmt: skip
    proc = user.run(["sh", "-c", outside])
    assert _owners(proc.stdout) == {"owned": "1000:1000", "busybox": "0:0"}
    # Inside `unionfs unshare`, a mount keeps every owner on writes.
    inside = (f'set -e; m=$({py} mount {cname}); echo new > "$m/etc/added"; '
              f'chown 1000:1000 "$m/etc/added"; echo more >> "$m/etc/owned"; rm "$m/bin/ls"; '
              f'mkdir -p "$m/srv/d"; echo f > "$m/srv/d/f"; chown -R 1000:1000 "$m/srv"; '
              f'ls -ln "$m/etc"; {py} umount {cname}')  # fmt: skip
    proc = user.unionfs("unshare", "sh", "-c", inside)
    assert _owners(proc.stdout) == {"added": "1000:1000", "owned": "1000:1000"}
    upper = store / "containers" / cid / "upper"
    assert (upper / "etc" / "added").stat().st_uid == subuid + 999
    diff = user.unionfs("diff", cname).stdout.split("\n")
    assert {"A /etc/added", "C /etc/owned", "D /bin/ls"} <= set(diff)

    user.unionfs("commit", cname, img2)
    archive = user.home / f"saved-{tok}.tar"
    user.unionfs("save", img2, "-o", str(archive))
    owners = _top_layer_owners(archive)
    assert owners["etc/added"] == (1000, 1000)  # container ids, not host ids
    assert owners["etc/owned"] == (1000, 1000)
    assert owners["etc"] == (0, 0)
    info = subprocess.run(skopeo("inspect", f"oci-archive:{archive}"), check=True,
                          capture_output=True, text=True, timeout=scaled(TIMEOUT))  # fmt: skip
    assert len(json.loads(info.stdout)["Layers"]) == 2

    user.unionfs("rm", cname)  # its upper holds a directory of container uid 1000
    user.unionfs("rmi", img2)
    user.unionfs("rmi", img)
    assert not (store / "containers" / cid).exists()
    assert _layer_with(store, "etc/owned") == [] and _layer_with(store, "etc/added") == []

    # The same image through a registry: pulled into the user's store with host ids.
    with registry_with(archive, f"ustore/{tok}:v1") as host:
        user.unionfs("pull", "--tls-verify=false", f"{host}/ustore/{tok}:v1", img)
    (top,) = _layer_with(store, "etc/added")
    assert (top / "etc" / "added").stat().st_uid == subuid + 999
    whiteout = (top / "bin" / "ls").lstat()  # the store's marker form in the namespace
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    proc = user.unionfs("run", "--rm", img, "busybox", "ls", "-ln", "/etc/added", "/bin/busybox")
    assert _owners(proc.stdout) == {"added": "1000:1000", "busybox": "0:0"}
    user.unionfs("rmi", img)
    archive.unlink()
    leftovers = [p.name for p in (store / "layers").iterdir()]
    assert leftovers == [], leftovers
    assert not [p for p in (store / "containers").iterdir() if p.is_dir()]


@contextlib.contextmanager
def registry_with(archive: Path, name: str) -> Iterator[str]:
    """A registry on loopback holding the OCI archive as *name*; its host:port."""
    work = Path(tempfile.mkdtemp(prefix="ustore-reg-"))
    reg = start_registry(work)
    try:
        subprocess.run(skopeo("copy", "--quiet", "--dest-tls-verify=false",
                        f"oci-archive:{archive}", f"docker://{reg.host}/{name}"),
                       check=True, capture_output=True, timeout=scaled(TIMEOUT))  # fmt: skip
        yield reg.host
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _run_without_ranges(user: RootlessUser, argv: list[str], store: Path) -> str:
    """*argv* as *user*, with /etc/subuid and /etc/subgid empty in a private mount
    namespace (the machine's files are not touched); its stderr."""
    empty = user.base / "empty-sub"
    empty.write_text("")
    script = ('mount --bind "$0" /dev/fuse && mount --bind "$1" /etc/subuid && '
              'mount --bind "$1" /etc/subgid && shift && exec "$@"')  # fmt: skip
    inner = ["runuser", "-u", user.name, "--",
             *user.env({"UNIONFS_HOME": str(store), "PATH": PATH}), *argv]  # fmt: skip
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           str(user.fuse_node), str(empty), *inner],
                          capture_output=True, text=True, timeout=scaled(TIMEOUT), check=False,
                          cwd=user.base)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + "\0" + proc.stderr


def test_single_mapping_stores_other_owners_as_the_user(
    rootless_user: RootlessUser, image_tar: Path
) -> None:
    user = rootless_user
    store = user.home / f"single-{secrets.token_hex(3)}"
    py = [user.python, "-m", "unionfs"]
    out, err = _run_without_ranges(user, [*py, "import", str(image_tar), "one"], store).split("\0")
    notices = err.strip().splitlines()
    assert len(notices) == 1 and "stored as yours" in notices[0], err
    assert "/etc/subuid" in notices[0]
    (layer,) = _layer_with(store, "etc/owned")
    owned = (layer / "etc" / "owned").stat()
    assert (owned.st_uid, owned.st_gid) == (user.uid, user.gid)
    out, err = _run_without_ranges(user, [*py, "run", "--rm", "one", "ls", "-ln", "/etc/owned"],
                                   store).split("\0")  # fmt: skip
    assert _owners(out) == {"owned": "0:0"}
    _run_without_ranges(user, [*py, "rmi", "one"], store)
    assert _layer_with(store, "etc/owned") == []


def test_a_user_creates_a_container_with_a_command_and_starts_it_twice(
    rootless_user: RootlessUser, image_tar: Path
) -> None:
    user = rootless_user
    store = user.home / ".local" / "share" / "unionfs"
    tok = secrets.token_hex(3)
    img, cname = f"ustart-{tok}", f"ustart-c-{tok}"
    user.unionfs("import", str(image_tar), img)
    script = "echo x >> /etc/owned; cat /etc/owned; id -u"
    cid = user.unionfs("create", "--name", cname, "-u", "1000", img, "sh", "-c", script)
    first, second = user.unionfs("start", "-a", cname), user.unionfs("start", "-a", cname)
    assert first.stdout == "mine\nx\n1000\n" and second.stdout == "mine\nx\nx\n1000\n"
    upper_file = store / "containers" / cid.stdout.strip() / "upper" / "etc" / "owned"
    assert upper_file.stat().st_uid == _sub_start("/etc/subuid", user.name) + 999
    user.unionfs("rm", cname)
    user.unionfs("rmi", img)
    assert not [p for p in (store / "containers").iterdir() if p.is_dir()]
