"""Every kind of copy-up keeps a file's capabilities, as kernel overlayfs does (issue 16.3).

A lower file has ``security.capability`` (``setcap cap_net_raw+ep``, as a container
image's ``ping``). A change of its metadata through the mount (``touch -m``, ``chmod``, an
xattr) copies it up: all of it (data), only its metadata (``metacopy=on``), into the index
(``index=on``, a file with several links), or as a renamed metacopy file (its data found
through ``overlay.redirect``). ``getcap`` must then show the capability still there. The
kernel copies the owner before the xattrs, since a chown clears capabilities. (setcap and
getcap come from libcap2-bin, which ``dev.sh`` installs.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mountutil import File, tree
from writeutil import writable

CAP = "cap_net_raw=ep"

LAYERS = [
    tree(
        {
            "bin": {
                "ping": File(b"\x7fELF not really\n", mode=0o755),
                "linked": File(b"two names\n", mode=0o755, link=1),
                "other_name": File(b"two names\n", mode=0o755, link=1),
            }
        }
    )
]

KINDS = {  # kind of copy-up: (mount options, the file, a rename before the change)
    "data": ("", "bin/ping", None),
    "metacopy": ("redirect_dir=on,metacopy=on", "bin/ping", None),
    "index": ("index=on", "bin/linked", None),
    "redirect": ("redirect_dir=on,metacopy=on", "bin/ping", "bin/renamed"),
}
CHANGES = {
    "touch -m": ["touch", "-m", "-d", "2020-01-01"],
    "chmod": ["chmod", "0750"],
    "setxattr": ["setfattr", "-n", "user.x", "-v", "1"],
}


def getcap(path: Path) -> str:
    out = subprocess.run(["getcap", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.strip().rpartition(" ")[2]


def set_capability(lowers: list[Path]) -> None:
    for name in ("bin/ping", "bin/linked"):
        subprocess.run(["setcap", "cap_net_raw+ep", str(lowers[0] / name)], check=True)
        assert getcap(lowers[0] / name) == CAP


def copied_up(tmp_path: Path, kernel: bool, kind: str, change: str) -> tuple[str, str]:
    """(getcap through the mount, getcap of the upper's copy) after *change*."""
    opts, name, renamed = KINDS[kind]
    with writable(tmp_path, LAYERS, kernel, prepare=set_capability, opts=opts) as m:
        if renamed is not None:
            m.path(name).rename(m.path(renamed))
            name = renamed
        subprocess.run([*CHANGES[change], str(m.path(name))], check=True)
        return getcap(m.path(name)), getcap(m.upper / name)


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kernel_overlayfs_keeps_capabilities_on_copy_up(
    tmp_path: Path, kind: str, change: str
) -> None:
    """The oracle's behaviour, so the test below compares with something known."""
    assert copied_up(tmp_path, True, kind, change) == (CAP, CAP)


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_copy_up_keeps_capabilities_as_on_the_kernel(
    tmp_path: Path, kind: str, change: str
) -> None:
    assert copied_up(tmp_path, False, kind, change) == (CAP, CAP)
