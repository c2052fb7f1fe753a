"""Root podman with unionfs as its overlay ``mount_program``, next to fuse-overlayfs.

The issue's script (run --rm, run -d + exec + stop, diff, commit + run, image mount,
mount/umount) runs once per program; every step's exit code and output must match. Where
fuse-overlayfs 1.10 is wrong here, the kernel's overlayfs (podman's native driver) decides:
unionfs must then show what the kernel shows, and the difference is written down below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from podmanutil import Podman, whiteout_files
from script import Transcript, run_script

from unionfs import __version__

UNIONFS = str(Path(sys.executable).with_name("unionfs"))  # absolute: podman runs it by path
FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"
IMAGE = "localhost/unionfs-test-busybox"

# Where fuse-overlayfs 1.10 differs, step -> (lines only fuse-overlayfs shows, only unionfs).
# (1) `chmod 640` of a renamed lower file that has a hard link reads back 644 on
#     fuse-overlayfs; the kernel shows 640, as does unionfs.
# (2) A directory removed and made again in a container (opaque in the upper) loses its
#     opacity in `podman commit` with fuse-overlayfs: the committed image shows the old
#     children again (dir/b, dir/sub) and `podman diff` does not report them deleted. The
#     kernel driver and unionfs show the directory as replaced.
MOVED_644 = "./moved regular file 644 0:0"
MOVED_640 = "./moved regular file 640 0:0"
OLD_DIR = ["./dir/b regular file 644 0:0", "./dir/sub directory 755 0:0",
           "./dir/sub/c regular file 644 0:0",
           "3b5d5c3712955042212316173ccf37be  ./dir/b",
           "2cd6ee2c70b0bde53fbe6cac3c8b8bb1  ./dir/sub/c"]  # fmt: skip
OLD_DIR_IN_TREE = ["dir/b -rw-r--r-- 0:0 0263829989b6fd95", "dir/sub drwxr-xr-x 0:0",
                   "dir/sub/c -rw-r--r-- 0:0 a3a5e715f0cc574a"]  # fmt: skip
FUSE_OVERLAYFS_DIFFERS = {
    "run --rm": ([MOVED_644], [MOVED_640]),
    "diff c1": ([], ["D /data/dir/b", "D /data/dir/sub"]),
    "diff img2": ([], ["D /data/dir/b", "D /data/dir/sub"]),
    "run img2": (sorted([MOVED_644, *OLD_DIR]), [MOVED_640]),
    "run img2 rm": (OLD_DIR[:3] + OLD_DIR[3:], []),
    "image mount tree": (
        sorted(["moved -rw-r--r-- 0:0 f660a7996deacfbc", *OLD_DIR_IN_TREE]),
        ["moved -rw-r----- 0:0 f660a7996deacfbc"],
    ),
}


def differences(a: Transcript, b: Transcript) -> dict[str, tuple[list[str], list[str]]]:
    """step -> (lines only in *a*, lines only in *b*); exit codes compared as lines too."""
    assert [s[0] for s in a] == [s[0] for s in b]
    found = {}
    for (name, rc_a, out_a), (_name, rc_b, out_b) in zip(a, b, strict=True):
        lines_a = [f"exit {rc_a}", *out_a.splitlines()]
        lines_b = [f"exit {rc_b}", *out_b.splitlines()]
        if lines_a != lines_b:
            only_a = sorted(set(lines_a) - set(lines_b))
            only_b = sorted(set(lines_b) - set(lines_a))
            found[name] = (only_a, only_b)
    return found


def test_podman_script_on_unionfs_as_on_fuse_overlayfs(podman: Callable[..., Podman]) -> None:
    ours = podman(UNIONFS, "unionfs")
    # `podman info` runs `unionfs --version` and shows what it printed.
    info = json.loads(ours.ok("info", "--format", "{{json .Store.GraphOptions}}"))
    assert info["overlay.mount_program"]["Version"] == f"unionfs {__version__}"
    on_unionfs = run_script(ours, IMAGE)
    assert all(rc == 0 for _name, rc, _out in on_unionfs), on_unionfs
    # The committed layer podman wrote holds .wh. whiteouts, and unionfs read them right.
    peer = run_script(podman(FUSE_OVERLAYFS, "fuse-overlayfs"), IMAGE)
    kernel = run_script(podman(None, "kernel"), IMAGE)
    assert differences(peer, on_unionfs) == {
        k: (sorted(v[0]), sorted(v[1])) for k, v in FUSE_OVERLAYFS_DIFFERS.items()
    }
    # podman computes `diff` from the upper directory with the kernel driver and by
    # walking two mounts with a mount program: those lines differ in form, not in truth.
    content = {name for name, _rc, _out in kernel if not name.startswith("diff ")}
    assert {k: v for k, v in differences(kernel, on_unionfs).items() if k in content} == {}


def test_podman_wrote_whiteout_files_into_its_layers(podman: Callable[..., Podman]) -> None:
    """A committed layer's deletions are ``.wh.`` files podman wrote itself (as the script
    relies on; a replaced directory becomes one per old child), and the next mount reads
    them right."""
    pm = podman(UNIONFS, "unionfs")
    pm.ok(
        "run",
        "--name",
        "w1",
        IMAGE,
        "sh",
        "-c",
        "rm /data/gone && rm -r /data/dir && mkdir /data/dir",
    )
    pm.ok("commit", "w1", "img-w")
    assert sorted(p.name for p in whiteout_files(pm.graphroot)) == [
        ".wh.a",
        ".wh.b",
        ".wh.gone",
        ".wh.sub",
    ]
    listing = pm.ok("run", "--rm", "img-w", "sh", "-c", "ls -A /data; echo --; ls -A /data/dir")
    assert "gone" not in listing.split() and listing.endswith("--\n")
    pm.ok("rm", "w1")


def test_podman_shows_the_mount_programs_error_verbatim(podman: Callable[..., Podman]) -> None:
    pm = podman(UNIONFS, "unionfs")
    r = pm("--storage-opt", "overlay.mountopt=frobnicate", "run", "--rm", IMAGE, "true")
    assert r.rc != 0
    assert f"using mount program {UNIONFS}: unionfs: unknown option 'frobnicate'\n" in r.err
