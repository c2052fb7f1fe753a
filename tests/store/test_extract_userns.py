"""Extraction where the kernel refuses what only real root may do: in a user namespace
(``unshare --user --map-root-user``), as a rootless store extracts. Device nodes are
skipped with a warning, owners and trusted xattrs are not kept (one warning each), and
the rest of the layer arrives in the rootless marker style."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from patience import scaled

from store.tarcraft import E, craft

CHILD = """
import json, sys
from unionfs.layerfmt import ROOTLESS_STYLE
from unionfs.store.layertar import extract_layer, open_layer
warnings = []
with open_layer(sys.argv[1]) as stream:
    diff_id = extract_layer(stream, sys.argv[2], ROOTLESS_STYLE, warn=warnings.append)
print(json.dumps({"diff_id": diff_id, "warnings": warnings}))
"""


def test_extract_in_a_user_namespace(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing")
    blob = craft([
        E("dev/null", "chr", dev=(1, 3)),
        E("dev/zero", "chr", dev=(1, 5)),
        E("etc/conf", data=b"c", uid=1234, gid=1234, xattrs={"user.k": b"v", "trusted.t": b"t"}),
        E("etc/.wh.old", data=b""),
        E("var/.wh..wh..opq", data=b""),
        E("var/new", data=b"n"),
    ])  # fmt: skip
    (tmp_path / "layer.tar").write_bytes(blob)
    dest = tmp_path / "dest"
    dest.mkdir()
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", CHILD,
         str(tmp_path / "layer.tar"), str(dest)],
        capture_output=True, text=True, check=False, timeout=scaled(60),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    warnings = result["warnings"]
    assert [w for w in warnings if "skipped device node" in w] == [
        "skipped device node dev/null: Operation not permitted",
        "skipped device node dev/zero: Operation not permitted",
    ]
    assert any(w.startswith("owners are not kept") for w in warnings)
    assert any(w.startswith("xattr trusted.t not kept") for w in warnings)
    assert len(warnings) == 4
    assert os.listdir(dest / "dev") == []
    assert (dest / "etc" / "conf").read_bytes() == b"c"
    assert os.getxattr(dest / "etc" / "conf", "user.k") == b"v"
    assert sorted(os.listdir(dest / "etc")) == [".wh.old", "conf"]
    assert os.getxattr(dest / "var", "user.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "var")) == [".wh..wh..opq", "new"]
