"""A listing answered between our answer to an unlink and the kernel's own bookkeeping of
it leaves the link count of the file's other name right (issue 19.9, pjdfstest link/03.t
under load).

The kernel's FUSE client drops the link count of an unlinked name's inode itself once our
answer comes (fuse_entry_unlinked). Attributes of that inode that we read after the unlink
and that it applies before that drop (a READDIRPLUS of another process) count the unlink
twice: nlink 0, and link(2) of the other name fails with ENOENT. On a busy machine the
window is wide enough for ``tools/longpath_race.py``; here a daemon with a gate
(``gated_unlink.py``) holds the unlink's answer until the listing is done: no timing.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import mountutil
import pytest
from mountutil import tree
from writeutil import outcome, writable

GATED = Path(__file__).with_name("gated_unlink.py")
LAYERS = [tree({"low": {"f": b"x", "g": b"y"}, "other": {}})]


def test_a_listing_during_an_unlink_keeps_the_other_names_link_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mountutil, "unionfs_cmd", lambda *args: [sys.executable, str(GATED), *args])
    with writable(tmp_path, LAYERS) as m:
        victim = m.path("low/f")
        os.link(victim, m.path("other/gated"))
        assert os.lstat(victim).st_nlink == 2
        unlinked: list[object] = []
        remover = threading.Thread(
            target=lambda: unlinked.append(outcome(lambda: os.unlink(m.path("other/gated"))))
        )
        remover.start()
        try:
            # Answered once the unlink is done, while its answer waits.
            assert sorted(os.listdir(m.path("low"))) == ["f", "g"]
        finally:
            os.path.lexists(m.path("release"))  # the daemon answers the unlink now
            remover.join()
        assert unlinked == [("ok", None)]
        assert os.lstat(victim).st_nlink == 1
        assert outcome(lambda: os.link(victim, m.path("other/again"))) == ("ok", None)
        assert os.lstat(victim).st_nlink == 2
