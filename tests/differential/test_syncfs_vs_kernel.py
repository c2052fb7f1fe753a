"""A deleted file's cached times never poison ``syncfs`` of the mount (issue 16.7).

``echo x > f; chmod 600 f; rm f; sync -f .``, ten times: after the ``rm`` the write-back
cache sends a setattr with its cached mtime for the deleted file; unionfs answered EEXIST
unless that time was the one it had recorded, the kernel recorded the error on the whole
mount, and the next ``syncfs()`` of anything there failed. Kernel overlayfs: never.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mountutil import tree
from writeutil import writable

ROUNDS = "for i in $(seq 10); do echo x > f; chmod 600 f; rm f; sync -f . || echo FAIL; done"


def failed_rounds(tmp_path: Path, kernel: bool) -> tuple[int, str]:
    with writable(tmp_path, [tree({"lower": b"l"})], kernel=kernel) as m:
        out = subprocess.run(
            ["bash", "-c", f'cd "$1" && {ROUNDS}', "bash", str(m.mnt)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.count("FAIL"), out.stderr


def test_kernel_overlayfs_syncs_every_round(tmp_path: Path) -> None:
    assert failed_rounds(tmp_path, kernel=True) == (0, "")


def test_syncfs_never_fails_after_a_deleted_files_flush(tmp_path: Path) -> None:
    assert failed_rounds(tmp_path, kernel=False) == (0, "")
