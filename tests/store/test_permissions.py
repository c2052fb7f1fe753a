"""The store is closed to other users: its root and ``layers/`` are 0700 (as docker's and
containers/storage's), a layer's root is never more open than 0755 whatever its ``./``
entry says, and a store made before is fixed the next time it is opened. (A user trying
to plant a file: tests/rootless/test_store_tamper.py.)"""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

from store.conftest import Run
from unionfs.store.images import ImageStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tar(path: Path, root_mode: int) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, mode in ((".", root_mode), ("./tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        info = tarfile.TarInfo("./tmp/x")
        tar.addfile(info, io.BytesIO(b""))
    return path


def test_a_new_store_is_closed_and_a_layer_root_is_at_most_0755(
    uf: Run, store_root: Path, tmp_path: Path
) -> None:
    uf("import", str(_tar(tmp_path / "open.tar", 0o7777)), "open:1")
    assert _mode(store_root) == 0o700 and _mode(store_root / "layers") == 0o700
    (layer,) = [p for p in (store_root / "layers").iterdir() if not p.name.startswith(".")]
    assert _mode(layer) == 0o755  # not 07777: no set-id, nobody else may write
    assert _mode(layer / "tmp") == 0o1777  # the image's own /tmp stays as it was


def test_a_store_from_before_is_closed_when_next_opened(store_root: Path) -> None:
    store_root.mkdir(mode=0o711)
    store_root.chmod(0o711)  # as this version's predecessors made it
    layers = store_root / "layers"
    layers.mkdir()
    layers.chmod(0o755)
    old = layers / ("ab" * 32)
    old.mkdir()
    old.chmod(0o7777)
    with ImageStore(str(store_root)):
        pass
    assert (_mode(store_root), _mode(layers), _mode(old)) == (0o700, 0o700, 0o755)
