"""The listing verbs side by side with podman 4.3 on the same image: one OCI archive
loaded into both, then the same commands, the outputs compared field by field (sizes,
ids, digests, history, diff, ps of a created container, dangling images, prune, archives
each reads from the other). Root podman on a private storage root, as tests/podman runs
it; times that depend on the second a command ran are left out of the comparisons.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mountutil import force_unmount, mounts
from patience import scaled
from podman.podmanutil import CgroupParent, Podman, busybox_rootfs, missing_tools

IMAGE = "localhost/bb:latest"


@dataclass
class Pair:
    podman: Podman
    root: Path
    base: Path

    def ours(self, *args: str, stdin: bytes | None = None, ok: bool = True) -> str:
        argv = [sys.executable, "-m", "unionfs", "--root", str(self.root), *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, check=False,
                              timeout=scaled(300))  # fmt: skip
        err = proc.stderr.decode()
        assert "Traceback" not in err, err
        if ok:
            assert proc.returncode == 0, f"unionfs {args}: {err}"
        return proc.stdout.decode()

    def theirs(self, *args: str, stdin: bytes | None = None) -> str:
        return self.podman.ok(*args, stdin=stdin)

    def both(self, *args: str) -> tuple[str, str]:
        return self.ours(*args), self.theirs(*args)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if os.geteuid() != 0:
        pytest.skip("root podman needs root")
    if missing := missing_tools():
        pytest.skip(f"not installed: {', '.join(missing)}")
    base = tmp_path_factory.mktemp("like-podman")
    cgroups = CgroupParent("like-podman")
    podman = Podman(base / "podman", None, cgroups)
    pair = Pair(podman, base / "store", base)
    try:
        podman.import_rootfs(busybox_rootfs(base / "rootfs"), IMAGE)
        podman.ok("save", "--format", "oci-archive", "-o", str(base / "bb.tar"), IMAGE)
        podman.ok("rmi", IMAGE)
        podman.ok("load", "-i", str(base / "bb.tar"))
        pair.ours("load", "-i", str(base / "bb.tar"))
        yield pair
    finally:
        problems = podman.teardown()
        cgroups.cleanup()
        for point, _fs in reversed(mounts()):
            if point.startswith(str(pair.root) + "/"):
                force_unmount(Path(point))
        assert not problems, problems


def test_images_json_has_podmans_values(pair: Pair) -> None:
    ours, theirs = (json.loads(o)[0] for o in pair.both("images", "--format", "json"))
    for key in ("Id", "ParentId", "RepoDigests", "Size", "SharedSize", "VirtualSize", "Labels",
                "Containers", "Names", "Digest", "History", "Created", "CreatedAt"):
        assert ours[key] == theirs[key], key
    assert list(ours) == list(theirs)  # the same keys in the same order


def test_images_table_has_podmans_columns(pair: Pair) -> None:
    ours, theirs = pair.both("images")
    assert ours.splitlines()[0].split() == theirs.splitlines()[0].split()  # widths: the times
    cells = [re.split(r"  +", out.splitlines()[1]) for out in (ours, theirs)]
    assert cells[0][:3] + cells[0][4:] == cells[1][:3] + cells[1][4:]  # but "2 minutes ago"
    fmt = "{{.ID}} {{.Id}} {{.Repository}}:{{.Tag}} {{.Size}} {{.VirtualSize}} {{.Digest}} " \
          "{{.Names}} {{.Dangling}} {{.Labels}} {{.Containers}} {{json .RepoDigests}}"  # fmt: skip
    assert pair.ours("images", "--format", fmt) == pair.theirs("images", "--format", fmt)
    table = r"table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.VirtualSize}}"
    assert pair.ours("images", "--format", table) == pair.theirs("images", "--format", table)
    assert pair.ours("images", "-q") == pair.theirs("images", "-q")
    assert pair.ours("images", "--no-trunc", "-q") == pair.theirs("images", "--no-trunc", "-q")


def test_system_df_sizes_are_podmans(pair: Pair) -> None:
    fmt = "{{.Type}} {{.Total}} {{.Active}} {{.Size}} {{.Reclaimable}}"
    ours = pair.ours("system", "df", "--format", fmt).splitlines()
    theirs = pair.theirs("system", "df", "--format", fmt).splitlines()
    assert ours[0] == theirs[0]  # images
    assert ours[2] == theirs[2]  # volumes (none)
    assert pair.ours("system", "df").splitlines()[0] == pair.theirs("system", "df").splitlines()[0]


def test_history_is_podmans(pair: Pair) -> None:
    assert pair.ours("history", "--format", "json", IMAGE) == \
        pair.theirs("history", "--format", "json", IMAGE)  # fmt: skip
    fmt = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}|{{.Tags}}"
    assert pair.ours("history", "--format", fmt, IMAGE) == pair.theirs("history", "--format", fmt,
                                                                       IMAGE)  # fmt: skip
    assert pair.ours("history", "-q", "--no-trunc", IMAGE) == \
        pair.theirs("history", "-q", "--no-trunc", IMAGE)  # fmt: skip
    ours, theirs = pair.both("history", IMAGE)
    assert ours.splitlines()[0].split() == theirs.splitlines()[0].split()


def test_image_inspect_fields_are_podmans(pair: Pair) -> None:
    fmt = "{{.Id}} {{.Digest}} {{.Size}} {{json .RootFS}} {{.Os}} {{.Architecture}} " \
          "{{json .RepoTags}} {{json .RepoDigests}} {{.Comment}} {{json .Config}}"  # fmt: skip
    assert pair.ours("inspect", "--format", fmt, IMAGE) == \
        pair.theirs("inspect", "--format", fmt, IMAGE)  # fmt: skip
    assert pair.ours("image", "inspect", "--format", "{{.Id}}", "bb") == \
        pair.theirs("image", "inspect", "--format", "{{.Id}}", "bb")  # fmt: skip
    ours = json.loads(pair.ours("inspect", IMAGE))[0]
    theirs = json.loads(pair.theirs("inspect", IMAGE))[0]
    assert set(theirs) - {"GraphDriver"} <= set(ours)


def test_a_created_container_lists_and_diffs_as_podmans(pair: Pair) -> None:
    name = "like-podman-c1"
    pair.ours("create", "--name", name, IMAGE, "sh", "-c", "echo hi")
    pair.theirs("create", "--name", name, IMAGE, "sh", "-c", "echo hi")
    try:
        fmt = ("{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Status}}|{{.Ports}}|{{.Labels}}"
               "|{{.Mounts}}|{{.Pid}}|{{.ExitCode}}|{{.Exited}}|{{.AutoRemove}}")
        assert pair.ours("ps", "-a", "--format", fmt) == pair.theirs("ps", "-a", "--format", fmt)
        ours = json.loads(pair.ours("ps", "-a", "--format", "json"))[0]
        theirs = json.loads(pair.theirs("ps", "-a", "--format", "json"))[0]
        for key in ("AutoRemove", "Command", "Exited", "ExitedAt", "ExitCode", "Image", "ImageID",
                    "Labels", "Mounts", "Names", "Pid", "Ports", "StartedAt", "State", "Status"):
            assert ours[key] == theirs[key], key
        assert set(theirs) <= set(ours)
        assert pair.ours("ps", "--filter", "status=created", "--format", "{{.Names}}") == \
            pair.theirs("ps", "--filter", "status=created", "--format", "{{.Names}}")  # fmt: skip
        fmt = "{{.State.Status}} {{.Name}} {{.Config.Cmd}} {{.ImageName}} {{.Path}} {{.Args}}"
        assert pair.ours("inspect", "--format", fmt, name) == \
            pair.theirs("inspect", "--format", fmt, name)  # fmt: skip
        for side in ("ours", "theirs"):
            root = Path((pair.ours if side == "ours" else pair.theirs)("mount", name).strip())
            (root / "newfile").write_text("x\n")
            (root / "bin" / "sh").unlink()
            (root / "etc" / "d").mkdir()
            (pair.ours if side == "ours" else pair.theirs)("umount", name)
        assert pair.ours("diff", name) == pair.theirs("diff", name)
        assert pair.ours("diff", "--format", "json", name) == \
            pair.theirs("diff", "--format", "json", name)  # fmt: skip
    finally:
        pair.ours("rm", name)
        pair.theirs("rm", name)


def test_a_dangling_image_is_found_and_pruned_as_by_podman(pair: Pair) -> None:
    rootfs = busybox_rootfs(pair.base / "rootfs2")
    (rootfs / "etc" / "motd").write_text("second\n")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    pair.theirs("import", "-", "localhost/bb2", stdin=tar.stdout)
    (pair.base / "bb2.tar").write_bytes(tar.stdout)
    # The same second image in our store: theirs, saved and loaded (the same id then).
    pair.theirs("save", "--format", "oci-archive", "-o", str(pair.base / "bb2-oci.tar"), "bb2")
    pair.ours("load", "-i", str(pair.base / "bb2-oci.tar"))
    for run in (pair.ours, pair.theirs):  # bb:latest moves to bb2: the old image dangles
        run("tag", "localhost/bb2", IMAGE)
        run("rmi", "localhost/bb2")
    dangling = pair.ours("images", "--filter", "dangling=true", "-q")
    assert dangling and dangling == pair.theirs("images", "--filter", "dangling=true", "-q")
    kept = pair.ours("images", "--filter", "dangling=false", "--format", "{{.ID}}")
    assert kept == pair.theirs("images", "--filter", "dangling=false", "--format", "{{.ID}}")
    ref = "table {{.Repository}}\t{{.Tag}}"
    assert pair.ours("images", "--filter", "reference=localhost/bb*", "--format", ref) == \
        pair.theirs("images", "--filter", "reference=localhost/bb*", "--format", ref)  # fmt: skip
    assert pair.ours("image", "prune", "-f") == pair.theirs("image", "prune", "-f")
    assert pair.ours("images", "-q") == pair.theirs("images", "-q")


def test_archives_go_both_ways(pair: Pair) -> None:
    """Our docker and OCI archives load into podman and podman's into our store, with the
    same image id and history."""
    image_id = pair.ours("images", "--format", "{{.Id}}", IMAGE).strip()
    for fmt in ("docker-archive", "oci-archive"):
        archive = pair.base / f"ours-{fmt}.tar"
        pair.ours("save", "--format", fmt, "-o", str(archive), IMAGE)
        loaded = pair.theirs("load", "-i", str(archive))
        assert f"Loaded image: {IMAGE}" in loaded
        assert pair.theirs("images", "--format", "{{.Id}}", IMAGE).strip() == image_id
        theirs_archive = pair.base / f"theirs-{fmt}.tar"
        pair.theirs("save", "--format", fmt, "-o", str(theirs_archive), IMAGE)
        pair.ours("rmi", IMAGE)
        assert pair.ours("load", "-i", str(theirs_archive)) == f"Loaded image: {IMAGE}\n"
        assert pair.ours("images", "--format", "{{.Id}}", IMAGE).strip() == image_id
        assert pair.ours("history", "--format", "json", IMAGE) == \
            pair.theirs("history", "--format", "json", IMAGE)  # fmt: skip


def test_volumes_are_made_listed_inspected_and_removed_as_by_podman(pair: Pair) -> None:
    for side in (pair.ours, pair.theirs):
        assert side("volume", "create", "clidaily-v") == "clidaily-v\n"
        assert side("volume", "create", "--label", "a=b", "clidaily-w") == "clidaily-w\n"
    assert pair.ours("volume", "ls") == pair.theirs("volume", "ls")
    assert pair.ours("volume", "ls", "-q") == pair.theirs("volume", "ls", "-q")
    template = "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}"
    assert pair.ours("volume", "inspect", "--format", template, "clidaily-w") == \
        pair.theirs("volume", "inspect", "--format", template, "clidaily-w")  # fmt: skip
    ours, theirs = (json.loads(o) for o in pair.both("volume", "ls", "--format", "json"))
    for entry in (*ours, *theirs):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", entry.pop("CreatedAt"))
        entry["Mountpoint"] = entry["Mountpoint"].split("/volumes/", 1)[1]
    assert ours == theirs
    assert pair.ours("volume", "rm", "clidaily-v", "clidaily-w") == \
        pair.theirs("volume", "rm", "clidaily-v", "clidaily-w")  # fmt: skip
