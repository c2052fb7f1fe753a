"""Commit and diff of uppers holding redirect and metacopy records: the records are spelled
out (``unionfs.store.spellout``), so the layer holds what a consumer without them needs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from layers import LayerFactory, layer_factory  # noqa: F401 -- the ``layers`` fixture
from mountutil import is_mounted

from store.conftest import Run
from store.storeutil import listing, rootfs
from unionfs.layerfmt import ROOTLESS_STYLE
from unionfs.store import layertar
from unionfs.store.spellout import has_records, spelled_out
from unionfs.union import attrs
from unionfs.union import rename as rename_rules
from unionfs.union.lookup import resolve_path
from unionfs.union.stack import Features


def test_a_plain_upper_is_used_as_it_is(tmp_path: Path) -> None:
    upper = rootfs(tmp_path / "upper")
    assert not has_records(str(upper))
    with spelled_out(str(upper), [str(rootfs(tmp_path / "lower"))]) as seen:
        assert seen == str(upper)


def test_renamed_dir_and_metacopy_file_are_spelled_out(layers: LayerFactory) -> None:
    lower = {"d/": {"f": "one", "s/": {"g": "two"}}, "m": "data", "keep": "k"}
    stack = layers.stack(lower, upper={})
    stack.features = Features("on", metacopy=True)
    rename_rules.rename(stack, stack.root(), b"d", stack.root(), b"e", 0)
    m = resolve_path(stack, b"m")
    assert m is not None
    attrs.set_attributes(stack, m, attrs.Changes(mode=0o600))
    dirs = layers.dirs(stack)
    assert dirs.upper is not None
    upper, low = str(dirs.upper), str(dirs.lowers[0])
    assert os.stat(os.path.join(upper, "m")).st_blocks == 0, "metacopy: no data above"
    assert has_records(upper)
    with spelled_out(upper, [low]) as out:
        assert out != upper
        assert Path(out, "e/f").read_text() == "one"
        assert Path(out, "e/s/g").read_text() == "two"
        assert Path(out, "e/.wh..wh..opq").exists()
        assert Path(out, "m").read_text() == "data"
        assert Path(out, "m").stat().st_mode & 0o777 == 0o600
        changes = layertar.changes(out, [low])
        assert ("D", "/d") in changes and ("A", "/e/s/g") in changes
        assert ("C", "/m") in changes and not any(p.startswith("/keep") for _, p in changes)
        scratch = os.path.dirname(out)
    assert not os.path.exists(scratch), "the spelled-out copy is removed afterwards"


def test_commit_of_a_renamed_lower_dir_keeps_its_contents(
    uf: Run, tmp_path: Path, store_root: Path
) -> None:
    uf("import", str(rootfs(tmp_path / "rootfs")), "base")
    cid = uf("create", "base", "--name", "c-mv").stdout.strip()
    mnt = Path(uf("mount", "c-mv").stdout.strip())
    os.rename(mnt / "usr/share", mnt / "usr/moved")  # a lower dir: a redirect, no copy
    upper = store_root / "containers" / cid / "upper"
    assert os.getxattr(upper / "usr/moved", "trusted.overlay.redirect")
    lines = uf("diff", "c-mv").stdout.splitlines()
    assert "D /usr/share" in lines and "A /usr/moved/doc/README" in lines
    uf("commit", "c-mv", "moved")
    expected = listing(mnt)
    uf("create", "moved", "--name", "c-moved")
    view = Path(uf("mount", "c-moved").stdout.strip())
    assert listing(view) == expected
    assert (view / "usr/moved/doc/README").read_text() == "docs\n"
    assert not (view / "usr/share").exists()
    out = tmp_path / "unpacked"
    layer = tmp_path / "layer.tgz"
    diff_id = json.loads(uf("inspect", "moved").stdout)[0]["RootFS"]["Layers"][-1]
    uf("export-layer", diff_id[7:19], "-o", str(layer))
    with layertar.open_layer(str(layer)) as stream:
        out.mkdir()
        layertar.extract_layer(stream, str(out), ROOTLESS_STYLE, warn=lambda _: None)
    assert (out / "usr/moved/doc/README").read_text() == "docs\n"
    assert (out / "usr/.wh.share").exists()
    uf("rm", "c-mv", "c-moved")
    assert not is_mounted(mnt) and not is_mounted(view)
    shutil.rmtree(out)
