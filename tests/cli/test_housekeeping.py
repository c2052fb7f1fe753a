"""Housekeeping verbs as a user runs them: ``mount`` with no arguments lists containers' and
hand mounts with their layers; ``image prune`` (orphan layers of ``import-layer`` too),
``container prune``, ``system prune`` (stale index entries too), ``system df``; ``info``,
``version``; the bash completion and the man pages generated from the parser."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mountutil import is_mounted
from store.conftest import Run
from store.storeutil import layer_tar, rootfs

from unionfs import __version__
from unionfs.cli import build_parser, parsertree
from unionfs.cli.man import page
from unionfs.index.env import IndexEnv


@pytest.fixture
def image(uf: Run, tmp_path: Path) -> str:
    uf("import", str(rootfs(tmp_path / "rootfs")), "base:1")
    return "base:1"


def test_mount_lists_containers_and_hand_mounts_with_their_layers(
    uf: Run, image: str, tmp_path: Path, store_root: Path
) -> None:
    header = uf("mount").stdout.splitlines()[0]
    assert header.split() == ["CONTAINER", "ID", "NAMES", "MOUNTPOINT", "LAYERS"]
    cid = uf("create", "--name", "c-listed", image).stdout.strip()
    root = uf("mount", "c-listed").stdout.strip()
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    uf("mount", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(mnt))
    try:
        # (other unionfs mounts of this machine are listed too: only ours are looked at)
        listed = json.loads(uf("mount", "--format", "json").stdout)
        by_point = {m["mountpoint"]: m for m in listed}
        assert by_point[root]["id"] == cid and by_point[root]["Names"] == ["c-listed"]
        assert by_point[root]["lowerdir"][0].startswith(str(store_root / "layers"))
        assert by_point[str(mnt)] | {"source": None} == {
            "id": "", "Names": [], "mountpoint": str(mnt), "source": None,
            "lowerdir": [str(lower)], "upperdir": str(upper), "workdir": str(work), "image": ""}
        table = uf("mount", "--notruncate").stdout
        assert f"{cid}  c-listed" in table and f"{lower} (upper {upper})" in table
        lines = uf("mount", "--format", "{{.ID}} {{.Mountpoint}}").stdout.splitlines()
        assert f"{cid[:12]} {root}" in lines and f"- {mnt}" in lines
    finally:
        uf("umount", str(mnt))
        uf("umount", "c-listed")
    assert not is_mounted(mnt)
    left = uf("mount", "--format", "{{.Mountpoint}}").stdout.splitlines()
    assert str(mnt) not in left and root not in left
    records = Path(os.environ["XDG_RUNTIME_DIR"]) / "unionfs" / "mounts"
    assert not [p for p in records.glob("*.json")
                if str(mnt) in p.read_text()]  # the daemon removed its record  # fmt: skip


def test_image_prune_removes_dangling_images_and_orphan_layers(
    uf: Run, image: str, tmp_path: Path, store_root: Path
) -> None:
    uf("import", str(rootfs(tmp_path / "other", {"x": b"1"})), "other:1")
    old_id = uf("images", "--format", "{{.Id}}", "base:1").stdout.strip()
    uf("tag", "other:1", "base:1")  # base's image loses its only name: it dangles
    assert uf("images", "--filter", "dangling=true", "--format", "{{.Id}}").stdout == old_id + "\n"
    orphan = tmp_path / "orphan.tar"
    orphan.write_bytes(layer_tar([("orphan-file", "file", "o")]))
    diff_id, blob = uf("import-layer", str(orphan)).stdout.split()
    layer_dir = store_root / "layers" / diff_id.removeprefix("sha256:")
    assert layer_dir.is_dir()
    said = uf("image", "prune", ok=False)  # stdin is /dev/null: no answer
    assert said.returncode == 1
    assert said.stderr == "unionfs: no answer on stdin: give -f to go ahead without asking\n"
    assert uf("image", "prune", "-f").stdout == old_id + "\n"
    assert not layer_dir.exists()
    assert not (store_root / "blobs" / "sha256" / blob.removeprefix("sha256:")).exists()
    assert uf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == \
        "localhost/base:1\nlocalhost/other:1\n"  # fmt: skip
    uf("create", "--name", "c-keeps", "other:1")
    assert uf("image", "prune", "-a", "-f").stdout == ""  # the one image is in use
    uf("rm", "c-keeps")
    ids = sorted(set(uf("images", "--format", "{{.Id}}").stdout.split()))
    assert sorted(uf("image", "prune", "-a", "-f").stdout.split()) == ids
    assert uf("images", "-q").stdout == ""
    assert [n for n in os.listdir(store_root / "layers") if not n.startswith(".")] == []


def test_container_prune_asks_then_removes_what_is_not_running(uf: Run, image: str) -> None:
    ids = [uf("create", "--name", f"c-p{i}", image).stdout.strip() for i in range(2)]
    proc = subprocess.run([sys.executable, "-m", "unionfs", "container", "prune"], input="n\n",
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "Are you sure you want to continue? [y/N]" in proc.stdout
    assert uf("ps", "-a", "-q").stdout.count("\n") == 2
    proc = subprocess.run([sys.executable, "-m", "unionfs", "container", "prune"], input="y\n",
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert sorted(proc.stdout.split("[y/N] ", 1)[1].split()) == sorted(ids)
    assert uf("ps", "-a", "-q").stdout == ""


def test_system_prune_drops_index_entries_of_layers_that_are_gone(
    uf: Run, image: str, tmp_path: Path
) -> None:
    lower, mnt = tmp_path / "gone-layer", tmp_path / "mnt"
    lower.mkdir()
    (lower / "f").write_text("x")
    mnt.mkdir()
    uf("mount", "-o", f"lowerdir={lower}", str(mnt))
    try:
        assert (mnt / "f").read_text() == "x"
    finally:
        uf("umount", str(mnt))
    index = os.environ["UNIONFS_INDEX_DIR"]
    assert str(lower) in _index_roots(index)
    shutil.rmtree(lower)
    uf("create", "--name", "c-s", image)
    out = uf("system", "prune", "-f").stdout
    assert out.startswith("Deleted Containers\n") and "Dropped" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert str(lower) not in _index_roots(index)


def _index_roots(path: str) -> list[str]:
    env = IndexEnv(path)
    try:
        with env.read() as txn:
            return [str((env.get_record(txn, bytes(k)) or {}).get("root"))
                    for k, _v in txn.cursor(db=env.meta) if bytes(k).startswith(b"L")]  # fmt: skip
    finally:
        env.close()


def test_system_df_counts_images_and_containers(uf: Run, image: str) -> None:
    uf("create", "--name", "c-df", image)
    rows = json.loads(uf("system", "df", "--format", "json").stdout)
    assert [r["Type"] for r in rows] == ["Images", "Containers", "Local Volumes"]
    images, containers, _volumes = rows
    size = int(uf("images", "--format", "{{.VirtualSize}}").stdout)
    assert (images["Total"], images["Active"], images["RawSize"]) == (1, 1, size)
    assert images["RawReclaimable"] == 0  # its one image is in use
    assert (containers["Total"], containers["Active"]) == (1, 0)
    out = uf("system", "df").stdout.splitlines()
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert "Images space usage:" in uf("system", "df", "-v").stdout


def test_system_df_counts_volumes_and_who_binds_them(uf: Run, image: str) -> None:
    for name in ("df-used", "df-idle"):
        uf("volume", "create", name)
        data = Path(uf("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())
        (data / "f").write_bytes(b"x" * (1000 if name == "df-used" else 300))
    uf("create", "--name", "c-vol", "-v", "df-used:/data", image, "true")
    volumes = json.loads(uf("system", "df", "--format", "json").stdout)[2]
    assert (volumes["Total"], volumes["Active"]) == (2, 1)
    assert (volumes["RawSize"], volumes["RawReclaimable"]) == (1300, 300)
    shown = uf("system", "df", "-v").stdout
    volume_lines = shown.split("Local Volumes space usage:\n")[1].split("\n")
    assert [line.split() for line in volume_lines if line.strip()] == \
        [["VOLUME", "NAME", "LINKS", "SIZE"], ["df-idle", "0", "300B"], ["df-used", "1", "1kB"]]
    container_line = next(line for line in shown.splitlines() if "c-vol" in line)
    assert container_line.split()[3] == "1"  # LOCAL VOLUMES of c-vol


def test_info_and_version(uf: Run, store_root: Path) -> None:
    from unionfs.fuse import features

    info = json.loads(uf("info", "--format", "json").stdout)
    assert info["store"]["graphRoot"] == str(store_root)
    assert info["host"]["rootless"] is (os.geteuid() != 0)
    assert info["host"]["cgroupVersion"].startswith("v")
    assert info["host"]["fuse"]["features"] == sorted(features.available())
    assert info["host"]["fuse"]["missing"] == list(features.missing())
    assert uf("info", "--format", "{{.Store.GraphRoot}}").stdout == f"{store_root}\n"
    assert "graphRoot: " in uf("info").stdout
    assert uf("version", "--format", "{{.Client.Version}}").stdout == f"{__version__}\n"
    assert json.loads(uf("version", "--format", "json").stdout)["Client"]["Version"] == __version__
    assert uf("version").stdout.splitlines()[1].split() == ["Version:", __version__]


def _complete(script: str, *words: str) -> list[str]:
    shown = " ".join(shlex.quote(w) for w in words)
    code = (f"source {script}; COMP_WORDS=({shown}); COMP_CWORD={len(words) - 1}; _unionfs; "
            'printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.split()


def test_bash_completion_knows_verbs_groups_flags_and_choices(uf: Run, tmp_path: Path) -> None:
    script = tmp_path / "unionfs.bash"
    script.write_text(uf("completion", "bash").stdout)
    assert _complete(str(script), "unionfs", "ima") == ["images", "image"]
    assert _complete(str(script), "unionfs", "image", "pr") == ["prune"]
    assert _complete(str(script), "unionfs", "container", "list", "--no") == ["--no-trunc",
                                                                               "--noheading"]
    assert _complete(str(script), "unionfs", "save", "--format", "d") == ["docker-archive"]
    assert _complete(str(script), "unionfs", "--root", "/x", "images", "--so") == ["--sort"]
    assert uf("completion", "zsh", ok=False).returncode == 2


def test_a_man_page_per_verb_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.fail("groff is missing: ./dev.sh setup installs groff-base")
    verbs = list(parsertree.walk(build_parser()))
    assert {v.name for v in verbs} >= {"", "images", "image ls", "system prune", "mount"}
    for verb in verbs:
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page(verb),
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert (proc.returncode, proc.stderr) == (0, ""), verb.name
    text = page(next(v for v in verbs if v.name == "images"))
    assert ".SH OPTIONS" in text and "\\-\\-filter" in text and "dangling" in text


def test_man_of_a_verb_through_the_cli(uf: Run) -> None:
    assert uf("man", "image", "ls").stdout.startswith('.TH "UNIONFS-IMAGE-LS" "1"')
    assert uf("man", "nosuch", ok=False).stderr == \
        "unionfs: no manual page for 'nosuch': see unionfs --help\n"  # fmt: skip

