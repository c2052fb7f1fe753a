"""``--filter``, ``--format``, ``-q`` and the other listing flags of images, ps, inspect,
history, stats and diff, through the CLI on a private store. Containers in other states
than "created" are made by writing their state as the runtime would (the printing and
filtering are what is tested here; tests/runtime runs them for real)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from store.conftest import Run
from store.storeutil import layer_tar, oci_layout, rootfs

from unionfs.cli import humanize
from unionfs.runtime.state import ContainerDirs, process_start

LAYER = layer_tar([("hello", "file", "hi\n")])


@pytest.fixture
def images(uf: Run, tmp_path: Path) -> list[str]:
    """Three images, oldest first: plain, labelled, and a third that is later untagged."""
    uf("import", str(rootfs(tmp_path / "a")), "plain:1")
    layout = tmp_path / "labelled"
    oci_layout(layout, [LAYER], settings={"Labels": {"tier": "web", "team": "x"}})
    uf("import", str(layout), "labelled:1")
    uf("import", str(rootfs(tmp_path / "c", {"c": b"c"})), "third:1")
    return ["plain:1", "labelled:1", "third:1"]


def names(uf: Run, *args: str) -> list[str]:
    return uf("images", *args, "--format", "{{.Repository}}:{{.Tag}}").stdout.split()


def test_image_filters(uf: Run, images: list[str]) -> None:
    assert names(uf, "--filter", "label=tier=web") == ["localhost/labelled:1"]
    assert names(uf, "--filter", "label=tier") == ["localhost/labelled:1"]
    assert names(uf, "--filter", "label=tier", "--filter", "label=team=y") == []
    assert names(uf, "--filter", "reference=*/plain*", "--filter", "reference=third") == \
        ["localhost/third:1", "localhost/plain:1"]  # fmt: skip
    plain_id = uf("images", "-q", "plain:1").stdout.strip()
    assert names(uf, "--filter", f"id={plain_id[:6]}") == ["localhost/plain:1"]
    # labelled's config says 2026-01-01: it is the oldest; the others were made just now
    assert names(uf, "--filter", "before=third:1") == ["localhost/plain:1",
                                                       "localhost/labelled:1"]  # fmt: skip
    assert names(uf, "--filter", "since=labelled:1") == ["localhost/third:1", "localhost/plain:1"]
    assert names(uf, "--filter", "since=third:1") == []
    uf("create", "--name", "c-f", "plain:1")
    assert names(uf, "--filter", "containers=true") == ["localhost/plain:1"]
    uf("tag", "plain:1", "third:1")
    dangling = uf("images", "--filter", "dangling=true", "-q").stdout.split()
    assert len(dangling) == 1 and dangling[0] not in (plain_id,)
    assert uf("images", "--filter", "dangling=maybe", ok=False).stderr == \
        "unionfs: invalid filter dangling='maybe': give true or false\n"  # fmt: skip
    bad = uf("images", "--filter", "colour=red", ok=False)
    assert bad.returncode == 2 and bad.stderr.startswith("unionfs: invalid filter 'colour=red'")


def test_image_listing_flags(uf: Run, images: list[str]) -> None:
    uf("tag", "plain:1", "plain:2")
    rows = uf("images").stdout.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert len(rows) == 5  # one row per name
    assert len(uf("images", "-q").stdout.split()) == 3  # one id per image
    plain = uf("images", "--format", "table {{.Repository}}:{{.Tag}}").stdout.splitlines()
    assert uf("images", "--noheading", "--format", "table {{.Repository}}:{{.Tag}}") \
        .stdout.splitlines() == plain[1:]  # fmt: skip
    assert all(len(i) == 71 for i in uf("images", "-q", "--no-trunc").stdout.split())
    assert "DIGEST" in uf("images", "--digests").stdout.splitlines()[0]
    tags = uf("images", "--sort", "tag", "--format", "{{.Tag}}").stdout.split()
    assert tags == sorted(tags)
    out = json.loads(uf("images", "--format", "json").stdout)
    assert sorted(len(i["Names"]) for i in out) == [1, 1, 2]
    labelled = next(i for i in out if i["Names"] == ["localhost/labelled:1"])
    assert labelled["Labels"] == {"tier": "web", "team": "x"}
    assert uf("images", "--format", "{{.Labels.tier}}", "labelled:1").stdout == "web\n"
    bad = uf("images", "--format", "{{.Nope}}", ok=False)
    assert bad.returncode == 2 and bad.stderr == "unionfs: template: can't evaluate field Nope\n"


def _set_state(store_root: Path, name: str, **changes: object) -> None:
    dirs = ContainerDirs(str(store_root))
    state = dirs.find(name)
    dirs.save(dataclasses.replace(state, **changes))


def test_ps_filters_and_flags(uf: Run, images: list[str], store_root: Path) -> None:
    for n in ("c-one", "c-two", "c-three"):
        uf("create", "--name", n, "plain:1" if n != "c-three" else "labelled:1", "true")
    now = time.time()
    _set_state(store_root, "c-one", status="exited", exit_code=3, finished=now - 130)
    me = os.getpid()
    _set_state(store_root, "c-two", status="running", pid=me, pid_start=process_start(me),
               runtime_pid=me, runtime_start=process_start(me))  # fmt: skip

    def ps(*args: str) -> list[str]:
        return uf("ps", *args, "--format", "{{.Names}}").stdout.split()

    assert ps() == ["c-two"]  # running ones only
    assert ps("-a") == ["c-three", "c-two", "c-one"]  # newest first
    assert ps("--filter", "status=exited") == ["c-one"]  # a filter implies -a, as podman
    assert ps("--filter", "exited=3") == ["c-one"] and ps("--filter", "exited=0") == []
    assert ps("--filter", "name=^c-t") == ["c-three", "c-two"]
    assert ps("--filter", "ancestor=labelled") == ["c-three"]
    assert ps("--filter", "since=c-one", "--filter", "before=c-three") == ["c-two"]
    assert ps("-a", "--last", "2") == ["c-three", "c-two"] and ps("-a", "-l") == ["c-three"]
    status = uf("ps", "-a", "--format", "{{.Names}}|{{.State}}|{{.Status}}").stdout.splitlines()
    assert status[0] == "c-three|Created|Created"
    assert status[1].startswith("c-two|Running|Up ")
    assert status[2] == "c-one|Exited|Exited (3) 2 minutes ago"
    assert len(uf("ps", "-a", "-q").stdout.split()) == 3
    assert all(len(i) == 32 for i in uf("ps", "-a", "-q", "--no-trunc").stdout.split())
    table = uf("ps", "-a").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]  # fmt: skip
    js = {c["Names"][0]: c for c in json.loads(uf("ps", "-a", "--format", "json").stdout)}
    assert js["c-one"]["State"] == "exited" and js["c-one"]["ExitCode"] == 3
    assert js["c-two"]["Pid"] == me
    assert uf("ps", "--filter", "status=asleep", ok=False).returncode == 2
    _set_state(store_root, "c-two", status="exited", exit_code=0, finished=now)
    assert uf("inspect", "--type", "container", "--format", "{{.State.Status}} {{.Image}}",
              "c-two").stdout.startswith("exited ")  # fmt: skip


def test_inspect_types_and_missing_names(uf: Run, images: list[str]) -> None:
    uf("tag", "plain:1", "plain")
    uf("create", "--name", "plain", "plain:1")  # a container named like an image
    both = json.loads(uf("inspect", "plain", "plain:1").stdout)
    assert "State" in both[0] and "RootFS" in both[1]  # containers are looked for first
    image = json.loads(uf("inspect", "--type", "image", "plain").stdout)
    assert image[0]["RepoTags"] == ["localhost/plain:1", "localhost/plain:latest"]
    missing = uf("inspect", "plain:1", "nosuch", ok=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)[0]["RepoTags"]
    assert missing.stderr == "unionfs: no such image or container: nosuch\n"
    container = uf("inspect", "--type", "container", "plain:1", ok=False)
    assert container.stderr == "unionfs: no such container: plain:1\n"


def test_history_and_diff_formats(uf: Run, images: list[str]) -> None:
    rows = uf("history", "labelled:1").stdout.splitlines()
    assert rows[0].split() == ["ID", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert uf("history", "-q", "labelled:1").stdout.split()[0] == \
        uf("images", "-q", "labelled:1").stdout.strip()  # fmt: skip
    steps = json.loads(uf("history", "--format", "json", "labelled:1").stdout)
    assert steps[0]["CreatedBy"] == "layer 0" and steps[0]["size"] == len(LAYER)
    assert uf("history", "--format", "{{.CreatedBy}}|{{.Size}}", "labelled:1").stdout == \
        f"layer 0|{humanize.image_size(len(LAYER))}\n"  # fmt: skip
    uf("create", "--name", "c-d", "plain:1")
    root = Path(uf("mount", "c-d").stdout.strip())
    (root / "etc" / "motd").write_text("changed\n")
    (root / "added").write_text("new\n")
    uf("umount", "c-d")
    assert uf("diff", "c-d").stdout == "A /added\nC /etc/motd\n"
    assert json.loads(uf("diff", "--format", "json", "c-d").stdout) == {
        "changed": ["/etc/motd"], "added": ["/added"]}
    assert uf("diff", "--format", "{{.Kind}}:{{.Path}}", "c-d").stdout == "A:/added\nC:/etc/motd\n"


def test_stats_without_running_containers(uf: Run) -> None:
    assert uf("stats", "--no-stream", "--format", "json").stdout == "[]\n"
    header = uf("stats", "--no-stream").stdout.splitlines()
    assert header[0].split()[:4] == ["ID", "NAME", "CPU", "%"]


def test_quiet_flags_print_only_ids(uf: Run, tmp_path: Path) -> None:
    said = uf("import", "-q", str(rootfs(tmp_path / "q")), "quiet:1").stdout
    assert said == uf("images", "-q", "--no-trunc").stdout  # sha256:<id>
    uf("create", "--name", "c-q", "quiet:1")
    assert uf("commit", "-q", "c-q", "quiet:2").stdout.startswith("sha256:")
    assert uf("pull", "-q", f"oci-archive:{_saved(uf, tmp_path)}").stdout.strip() == \
        said.strip().removeprefix("sha256:")  # fmt: skip


def _saved(uf: Run, tmp_path: Path) -> Path:
    archive = tmp_path / "quiet.tar"
    uf("save", "-o", str(archive), "quiet:1")
    return archive
