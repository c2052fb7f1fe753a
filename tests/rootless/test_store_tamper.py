"""A local unprivileged user cannot plant a file in a root image's layers: the image's /tmp
is 1777 in its layer, but the store root and ``layers/`` are 0700 (they were 0711 and 0755:
the plant landed in the lower layer of every container of the image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rootlessutil import RootlessUser

BUSYBOX = "/bin/busybox"


def test_a_user_cannot_plant_a_file_in_a_root_images_tmp(rootless_user: RootlessUser) -> None:
    base = Path(tempfile.mkdtemp(prefix="root-store-", dir=rootless_user.base))
    base.chmod(0o755)  # the user may reach the store's root, as /var/lib/unionfs is reachable
    store, src = base / "store", base / "src"
    try:
        for d in ("bin", "tmp", "proc", "dev", "sys"):
            (src / d).mkdir(parents=True)
        (src / "tmp").chmod(0o1777)
        shutil.copy2(BUSYBOX, src / "bin" / "busybox")
        for applet in ("sh", "cat", "ls"):
            os.symlink("busybox", src / "bin" / applet)
        unionfs = [sys.executable, "-m", "unionfs", "--root", str(store)]
        subprocess.run([*unionfs, "import", str(src), "victim"], check=True, capture_output=True)
        (layer,) = [p for p in (store / "layers").iterdir() if not p.name.startswith(".")]
        assert (layer / "tmp").stat().st_mode & 0o7777 == 0o1777
        plant = rootless_user.run(["sh", "-c", f"echo planted > {layer}/tmp/planted"],
                                  fuse=False, check=False)  # fmt: skip
        assert plant.returncode != 0 and "Permission denied" in plant.stderr, plant.stderr
        assert not (layer / "tmp" / "planted").exists()
        seen = subprocess.run([*unionfs, "run", "--rm", "victim", "ls", "/tmp"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert "planted" not in seen.stdout
    finally:
        shutil.rmtree(base)
