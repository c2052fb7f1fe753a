"""The real ``lsattr`` and ``chattr`` (e2fsprogs) through unionfs answer as through kernel
overlayfs, on an ext4 upper: flags of a lower file and directory, ``chattr`` copying the
entry up first (its metadata only with ``metacopy=on``), ``+i`` refusing writes and removal
until ``-i``, and what the kernel refuses (a project id on ext4 without quota).

Needs the patched pyfuse3 (its ioctl handler): without it both tools fail with ENOTTY.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mountutil import tree
from writeutil import Mounted, writable

from unionfs.fuse import features

pytestmark = pytest.mark.skipif(
    "ioctl" not in features.available(), reason="pyfuse3 without the ioctl patch"
)

LAYERS = [tree({"f": b"x", "d": {"a": b"a", "b": b"b"}, "e": {}})]

STEPS = [
    ("lsattr", "f"),
    ("lsattr", "-d", "d"),
    ("chattr", "+d", "f"),
    ("lsattr", "f"),
    ("chattr", "+i", "d/a"),
    ("lsattr", "d/a"),
    ("sh", "-c", "echo y >> d/a"),
    ("rm", "d/a"),
    ("mv", "d/a", "d/c"),
    ("chattr", "-i", "d/a"),
    ("lsattr", "d/a"),
    ("rm", "d/a"),
    ("chattr", "+a", "d/b"),
    ("sh", "-c", "echo y > d/b"),
    ("sh", "-c", "echo y >> d/b"),  # APPEND_ONLY_WRITE
    ("chattr", "-a", "d/b"),
    ("chattr", "+A", "e"),
    ("lsattr", "-d", "e"),
    ("touch", "e/new"),
    ("lsattr", "e/new"),
    ("lsattr", "-p", "f"),
    ("chattr", "-p", "5", "f"),
    ("chattr", "+j", "nosuch"),
]


# A known difference: appending to an append-only (+a) file. The upper file is opened
# without O_APPEND (the write-back cache writes whole pages at their offsets, which
# O_APPEND would put at the end), and ext4 refuses any other write open of it: EPERM.
APPEND_ONLY_WRITE = STEPS.index(("sh", "-c", "echo y >> d/b"))


def run_steps(m: Mounted) -> list[tuple[int, str, str]]:
    results = []
    for argv in STEPS:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=m.mnt, check=False)
        results.append((done.returncode, done.stdout, done.stderr))
    return results


def unlock(upper: Path) -> None:
    """Take +i and +a off whatever a failed run left in *upper* (or pytest cannot remove it)."""
    for name in ("d/a", "d/b"):
        if (upper / name).exists():
            subprocess.run(["chattr", "-i", "-a", str(upper / name)], check=False)


@pytest.mark.parametrize("opts", ["", "metacopy=on"])
def test_lsattr_and_chattr_as_on_the_kernel(tmp_path: Path, opts: str) -> None:
    results = []
    uppers = {}
    for kernel in (True, False):
        with writable(tmp_path, LAYERS, kernel=kernel, opts=opts) as m:
            try:
                results.append(run_steps(m))
            finally:
                unlock(m.upper)
            uppers[kernel] = sorted(
                os.path.relpath(os.path.join(d, n), m.upper)
                for d, dirs, files in os.walk(m.upper)
                for n in dirs + files
            )
    kernel, union = results
    assert kernel[APPEND_ONLY_WRITE][0] == 0
    assert "Operation not permitted" in union[APPEND_ONLY_WRITE][2]
    problems = [
        f"{' '.join(argv)}: kernel={k!r} unionfs={u!r}"
        for i, (argv, k, u) in enumerate(zip(STEPS, kernel, union, strict=True))
        if k != u and i != APPEND_ONLY_WRITE
    ]
    assert not problems, "\n".join(problems)
    assert uppers[True] == uppers[False]
    assert "f" in uppers[False]  # chattr copied it up


def test_chattr_sets_the_flag_on_the_upper_copy(tmp_path: Path) -> None:
    with writable(tmp_path, LAYERS, opts="metacopy=on") as m:
        subprocess.run(["chattr", "+d", str(m.path("f"))], check=True)
        shown = subprocess.run(
            ["lsattr", str(m.upper / "f")], capture_output=True, text=True, check=True
        )
        assert shown.stdout.split()[0][6] == "d"
        assert os.getxattr(m.upper / "f", "trusted.overlay.metacopy") == b""
        # The lower file is untouched.
        below = subprocess.run(
            ["lsattr", str(m.lowers[0] / "f")], capture_output=True, text=True, check=True
        )
        assert below.stdout.split()[0][6] == "-"
