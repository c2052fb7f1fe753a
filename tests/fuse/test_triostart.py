"""``fuse.triostart``: importing the FUSE stack starts no process (trio's own import ran
``ldconfig -p``), and trio still names its worker threads."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
started = []
sys.addaudithook(lambda ev, args: started.append(args[0]) if ev == "subprocess.Popen" else None)
import unionfs.fuse.mount
from trio._core import _thread_cache
print(started, _thread_cache.set_os_thread_name is not None)
"""


def test_importing_the_fuse_stack_starts_no_process() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         check=True).stdout.split("\n")[0]  # fmt: skip
    assert out == "[] True"
