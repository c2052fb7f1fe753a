"""Importing trio without the subprocess its import starts.

trio's thread cache looks libpthread up with ``ctypes.util.find_library`` when it is
imported, which runs ``ldconfig -p`` in a child process: a fork and an exec in every
mount's start (10-50 ms). Since glibc 2.34 ``pthread_setname_np`` is in ``libc.so.6``,
which trio gets instead; where that fails (older glibc, musl) trio names no threads, as it
does when the lookup fails. Touches nothing but that one lookup, during that one import.
"""

from __future__ import annotations

import ctypes.util
import sys


def import_trio() -> None:
    """Import trio (once per process) without running ``ldconfig``."""
    if "trio" in sys.modules:
        return
    find = ctypes.util.find_library

    def quick(name: str) -> str | None:
        return "libc.so.6" if name == "pthread" else find(name)

    ctypes.util.find_library = quick
    try:
        import trio  # noqa: F401
    finally:
        ctypes.util.find_library = find
