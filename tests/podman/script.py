"""The podman script of issue 11, as data: each step's exit code and (normalized) output.

Run once per mount program; the two transcripts must be equal. Outputs that name ids or
host paths are normalized (ids) or replaced by what they point at (a mounted tree's listing).
"""

from __future__ import annotations

from typing import Protocol

from podmanutil import Result, normalize

# Writes, deletes, replaces a directory, renames and chmods a lower file, makes a link,
# appends to a lower file, makes an opaque directory, and a deep new tree.
WRITE = """set -e
echo new > /data/new
rm /data/gone
rm -rf /data/dir
mkdir /data/dir
echo replaced > /data/dir/a
mv /data/keep /data/moved
chmod 640 /data/moved
ln -s moved /data/newlink
echo appended >> /data/append
rm -rf /data/opaque && mkdir -p /data/opaque/fresh && echo f > /data/opaque/fresh/f
mkdir -p /data/deep/x/y && echo z > /data/deep/x/y/z
"""

# What the container sees: every path below /data with its type, mode, owner, and contents.
SHOW = """cd /data && find . | sort | while read -r p; do stat -c '%n %F %a %u:%g' "$p"; done
find . -type f | sort | xargs md5sum
"""

Transcript = list[tuple[str, int, str]]


class PodmanLike(Protocol):
    """What the script needs: root podman (podmanutil.Podman) or a rootless user's."""

    def __call__(self, *args: str) -> Result: ...

    def mount_and_look(self, mount: tuple[str, ...], change: bool) -> tuple[int, list[str]]:
        """Run ``podman MOUNT...``; if *change*, write ``fromhost`` and delete
        ``data/keepdir/k`` in the mounted tree; return the exit code and ``data``'s listing."""
        ...


class Recorder:
    def __init__(self, pm: PodmanLike) -> None:
        self.pm = pm
        self.steps: Transcript = []

    def step(self, name: str, *args: str, sort: bool = False) -> Result:
        r = self.pm(*args)
        out = normalize(r.out)
        if sort:
            out = "\n".join(sorted(out.splitlines()))
        # stderr is kept only for failures: podman's own warnings are not the mount's doing.
        self.steps.append((name, r.rc, out if r.rc == 0 else out + normalize(r.err)))
        return r

    def note(self, name: str, lines: list[str]) -> None:
        self.steps.append((name, 0, "\n".join(lines)))


def run_script(pm: PodmanLike, image: str) -> Transcript:
    rec = Recorder(pm)
    s = rec.step
    # run --rm: write, delete and replace a directory, then look.
    s("run --rm", "run", "--rm", image, "sh", "-c", WRITE + SHOW)
    # A kept container: its diff, commit, and the committed image run again.
    s("run c1", "run", "--name", "c1", image, "sh", "-c", WRITE)
    s("diff c1", "diff", "c1", sort=True)
    s("export c1", "export", "c1")  # a tar: only its exit code is compared (times differ)
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("commit c1", "commit", "c1", "img2")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")  # prints a fresh image id
    s("diff img2", "diff", "img2", sort=True)
    s("run img2", "run", "--rm", "img2", "sh", "-c", SHOW)
    # Deleting in the next container reads the committed layer's whiteouts and writes more.
    delete = "rm /data/moved /data/new && rm -r /data/deep && echo again > /data/dir/a\n"
    s("run img2 rm", "run", "--rm", "img2", "sh", "-c", delete + SHOW)
    # run -d + exec + stop.
    s("run -d c2", "run", "-d", "--name", "c2", image, "sh", "-c",
      "trap 'exit 3' TERM; sleep 1000 & wait")  # fmt: skip
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("exec c2", "exec", "c2", "sh", "-c", "echo e > /data/e && rm /data/dir/b\n" + SHOW)
    s("exec c2 again", "exec", "c2", "cat", "/data/e", "/data/append")
    s("diff c2", "diff", "c2", sort=True)
    s("stop c2", "stop", "-t", "30", "c2")
    s("wait c2", "wait", "c2")
    s("rm c2", "rm", "c2")
    # image mount: the read-only mount of an image, read from the host.
    rc, tree = pm.mount_and_look(("image", "mount", "img2"), change=False)
    rec.steps.append(("image mount img2", rc, ""))
    if rc == 0:
        rec.note("image mount tree", tree)
    s("image umount img2", "image", "umount", "img2")
    # mount/umount: write into a stopped container's rootfs from the host, then run it.
    s("create c3", "create", "--name", "c3", image, "sh", "-c", "cat /fromhost\n" + SHOW)
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    rc, tree = pm.mount_and_look(("mount", "c3"), change=True)
    rec.steps.append(("mount c3", rc, ""))
    if rc == 0:
        rec.note("mount tree", tree)
    s("umount c3", "umount", "c3")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    s("start -a c3", "start", "-a", "c3")
    s("diff c3", "diff", "c3", sort=True)
    s("rm c1 c3", "rm", "c1", "c3", sort=True)
    s("rmi img2", "rmi", "img2")
    rec.steps[-1] = (rec.steps[-1][0], rec.steps[-1][1], "")
    return rec.steps
