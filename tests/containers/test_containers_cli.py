"""Containers on the store end to end through the CLI: create, mount, diff, commit,
history, ps -a, rm; commit while mounted or after a run has exited."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mountutil import is_mounted
from store.conftest import Run
from store.storeutil import rootfs


def inspect(uf: Run, ref: str) -> dict[str, object]:
    out: list[dict[str, object]] = json.loads(uf("inspect", ref).stdout)
    return out[0]


def test_import_mount_diff_commit_history(uf: Run, tmp_path: Path, store_root: Path) -> None:
    src = rootfs(tmp_path / "rootfs")
    assert uf("import", str(src), "base:1").stdout.startswith("localhost/base:1 sha256:")
    assert "base" in uf("images").stdout
    cid = uf("create", "base:1", "--name", "c-flow").stdout.strip()
    mnt = Path(uf("mount", "c-flow").stdout.strip())
    assert mnt == store_root / "containers" / cid / "rootfs" and is_mounted(mnt)
    assert (mnt / "etc/motd").read_text() == "hello\n"
    (mnt / "etc/motd").write_text("changed\n")
    (mnt / "etc/app.conf").unlink()
    (mnt / "new").mkdir()
    (mnt / "new/file").write_text("added\n")
    shutil.rmtree(mnt / "usr/share/doc")
    (mnt / "usr/share/doc").mkdir()
    (mnt / "usr/share/doc/README").write_text("replaced\n")
    lines = uf("diff", "c-flow").stdout.splitlines()
    for line in ("C /etc", "C /etc/motd", "D /etc/app.conf", "A /new", "A /new/file"):
        assert line in lines
    assert {"A /usr/share/doc/README", "C /usr/share/doc/README"} & set(lines)
    assert lines == sorted(lines, key=lambda line: line[2:])
    # while mounted: flushed first, so the commit holds the data just written
    uf("commit", "c-flow", "derived:2", "-m", "my change")
    again = uf("commit", "c-flow", "derived:3").stdout
    one, two = inspect(uf, "derived:2"), inspect(uf, "derived:3")
    assert one["Layers"][-1] == two["Layers"][-1], "the same upper gives the same layer"  # type: ignore[index]
    assert again.strip() == two["Id"] or again.strip().endswith(str(two["Id"]))
    history = uf("history", "derived:2").stdout.splitlines()
    assert history[0].split()[:2] == ["ID", "CREATED"]  # podman's header
    assert "my change" in history[1] and "unionfs commit c-flow" in history[1]
    assert "unionfs import" in history[2]
    uf("umount", "c-flow")
    assert not is_mounted(mnt)
    uf("create", "derived:2", "--name", "c-derived")
    view = Path(uf("mount", "c-derived").stdout.strip())
    assert (view / "etc/motd").read_text() == "changed\n"
    assert not (view / "etc/app.conf").exists()
    assert sorted(os.listdir(view / "usr/share/doc")) == ["README"]
    assert (view / "new/file").read_text() == "added\n"
    ps = uf("ps", "-a").stdout
    assert "c-derived" in ps and "Created" in ps
    uf("rm", "c-derived", "c-flow")
    assert not is_mounted(view) and "c-derived" not in uf("ps", "-a").stdout


def test_mount_of_an_unknown_container_says_how_to_mount_layers(uf: Run) -> None:
    proc = uf("mount", "nosuch", ok=False)
    assert proc.returncode == 1 and "no such container: nosuch" in proc.stderr
    assert "lowerdir=" in proc.stderr


def test_diff_and_commit_of_an_exited_run(uf: Run, tmp_path: Path) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    root = rootfs(tmp_path / "bb", {"etc/motd": b"v1\n", "bin/": ""})
    shutil.copy(busybox, root / "bin/busybox")
    uf("import", str(root), "bbox")
    uf("run", "--name", "r-exit", "bbox", "/bin/busybox", "sh", "-c",
       "echo v2 > /etc/motd; /bin/busybox rm /bin/busybox")  # fmt: skip
    lines = uf("diff", "r-exit").stdout.splitlines()
    assert "C /etc/motd" in lines and "D /bin/busybox" in lines
    uf("commit", "r-exit", "bbox:v2")
    uf("create", "bbox:v2", "--name", "c-v2")
    mnt = Path(uf("mount", "c-v2").stdout.strip())
    assert (mnt / "etc/motd").read_text() == "v2\n" and not (mnt / "bin/busybox").exists()
    uf("rm", "r-exit", "c-v2")


def test_commit_while_a_file_is_open_for_writing_holds_what_was_written(
    uf: Run, tmp_path: Path
) -> None:
    uf("import", str(rootfs(tmp_path / "rootfs")), "base")
    uf("create", "base", "--name", "c-open")
    mnt = Path(uf("mount", "c-open").stdout.strip())
    data = os.urandom(100_000)
    with open(mnt / "written", "wb") as f:
        f.write(data)
        f.flush()  # handed to the kernel (writeback cache), not closed: commit syncs first
        uf("commit", "c-open", "snap")
    uf("create", "snap", "--name", "c-snap")
    view = Path(uf("mount", "c-snap").stdout.strip())
    assert (view / "written").read_bytes() == data
