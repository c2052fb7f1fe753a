"""Where ``save`` and ``export-layer`` write (podman's rules): a file is replaced whole; a
FIFO, a character device or a symlink to one (``/dev/stdout`` is one) is written through,
never replaced by a rename; ``-o -`` and a non-terminal stdout get the data; a terminal,
a directory or a dangling symlink is refused in one line."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from patience import scaled

from store.conftest import Run
from store.storeutil import rootfs


@pytest.fixture
def image(uf: Run, tmp_path: Path) -> str:
    uf("import", str(rootfs(tmp_path / "src")), "out:1")
    return "out:1"


def _layer(uf: Run, image: str) -> str:
    diff_id: str = json.loads(uf("inspect", image).stdout)[0]["RootFS"]["Layers"][0]
    return diff_id[7:19]


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as f:
            into.append(f.read())

    reader = threading.Thread(target=read)
    reader.start()
    return reader


@pytest.mark.parametrize("command", ["save", "export-layer"])
def test_a_fifo_and_a_symlink_to_it_are_written_through(
    uf: Run, image: str, tmp_path: Path, command: str
) -> None:
    reference = tmp_path / "ref"
    target = image if command == "save" else _layer(uf, image)
    uf(command, target, "-o", str(reference))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for path in (fifo, link):
        got: list[bytes] = []
        reader = _read_fifo(fifo, got)
        uf(command, target, "-o", str(path))
        reader.join(timeout=scaled(120))
        assert got == [reference.read_bytes()]
    assert fifo.is_fifo() and link.is_symlink() and os.readlink(link) == str(fifo)


def test_a_symlink_like_dev_stdout_is_written_through(
    uf: Run, image: str, tmp_path: Path, store_root: Path
) -> None:
    """/dev/stdout's shape (a symlink into /proc/self/fd), without touching /dev."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    proc = subprocess.run([sys.executable, "-m", "unionfs", "--root", str(store_root), "save",
                           image, "-o", str(link)], capture_output=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and proc.stdout[257:262] == b"ustar"
    uf("save", image, "-o", str(tmp_path / "file"))
    assert proc.stdout == (tmp_path / "file").read_bytes()


@pytest.mark.parametrize("dash", [["-o", "-"], []], ids=["dash", "no-o"])
def test_stdout_gets_the_archive_unless_it_is_a_terminal(
    uf: Run, image: str, tmp_path: Path, store_root: Path, dash: list[str]
) -> None:
    cmd = [sys.executable, "-m", "unionfs", "--root", str(store_root), "save", image, *dash]
    piped = subprocess.run(cmd, capture_output=True, check=False)
    assert piped.returncode == 0, piped.stderr
    uf("save", image, "-o", str(tmp_path / "file"))
    assert piped.stdout == (tmp_path / "file").read_bytes()


def test_a_terminal_without_o_is_refused(uf: Run, image: str, store_root: Path) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "unionfs", "--root", str(store_root),
                               "save", image], stdout=slave, stderr=subprocess.PIPE,
                              text=True, check=False)  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "refusing to write an image archive to a " \
        "terminal" in proc.stderr  # fmt: skip


def test_a_symlink_to_a_file_keeps_the_link_and_replaces_the_file(
    uf: Run, image: str, tmp_path: Path
) -> None:
    real = tmp_path / "real.tar"
    real.write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to(real)
    uf("save", image, "-o", str(link))
    assert link.is_symlink() and real.read_bytes()[257:262] == b"ustar"


@pytest.mark.parametrize(
    ("kind", "message"), [("dir", "is a directory"), ("dangling", "is a symlink to nothing")]
)
def test_what_cannot_be_written_through_is_refused_in_one_line(
    uf: Run, image: str, tmp_path: Path, kind: str, message: str
) -> None:
    path = tmp_path / kind
    if kind == "dir":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "nowhere")
    for command, target in (("save", image), ("export-layer", _layer(uf, image))):
        proc = uf(command, target, "-o", str(path), ok=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert list(tmp_path.glob(".*tmp-*")) == [] and not (tmp_path / "nowhere").exists()
