"""Which optional FUSE features the installed pyfuse3 binding offers (third_party/pyfuse3).

Read from the binding itself (its classes' attributes), so a stock pyfuse3 3.5.0 installed by
a plain ``pip install .`` reports them missing and unionfs runs without them. It only looks:
it never turns a feature on, and it says nothing about what the kernel offers
(``pyfuse3.kernel_capabilities`` tells that, once mounted).
"""

from __future__ import annotations

from types import ModuleType

import pyfuse3

# Every feature unionfs may use, in the order a message lists them. "killpriv_v2" and "tmpfile"
# are never offered with libfuse 3.14 (third_party/pyfuse3/README.md says why).
KNOWN = (
    "node_id",  # EntryAttributes.node_id apart from st_ino
    "fallocate",  # Operations.fallocate
    "ioctl",  # Operations.ioctl (FS_IOC_GETFLAGS/SETFLAGS)
    "lseek",  # Operations.lseek (SEEK_DATA/SEEK_HOLE)
    "copy_file_range",  # Operations.copy_file_range
    "cache_readdir",  # FileInfo.cache_readdir, opendir may return a FileInfo
    "noflush",  # FileInfo.noflush
    "cache_symlinks",  # Operations.enable_cache_symlinks
    "dont_mask",  # Operations.enable_dont_mask (+ RequestContext.umask)
    "explicit_inval_data",  # Operations.enable_explicit_inval_data
    "no_open",  # open/opendir may answer ENOSYS; handlers then get the inode as fh
    "no_export",  # Operations.no_export_support: no file handles (FUSE_NO_EXPORT_SUPPORT)
    "getattr_fh",  # RequestContext.fh: getattr knows the open file it is asked through
    "killpriv_v2",  # FUSE_HANDLE_KILLPRIV_V2: not in libfuse 3.14
    "tmpfile",  # FUSE_TMPFILE: not in libfuse 3.14
)


def available(binding: ModuleType = pyfuse3) -> frozenset[str]:
    """The features of ``KNOWN`` that *binding* (pyfuse3, or a stand-in in tests) offers."""
    ops = binding.Operations
    entry = binding.EntryAttributes()
    info = binding.FileInfo()
    found = {
        "node_id": hasattr(entry, "node_id"),
        "fallocate": hasattr(ops, "fallocate"),
        "ioctl": hasattr(ops, "ioctl"),
        "lseek": hasattr(ops, "lseek"),
        "copy_file_range": hasattr(ops, "copy_file_range"),
        "cache_readdir": hasattr(info, "cache_readdir"),
        "noflush": hasattr(info, "noflush"),
        "cache_symlinks": hasattr(ops, "enable_cache_symlinks"),
        "dont_mask": hasattr(ops, "enable_dont_mask"),
        "explicit_inval_data": hasattr(ops, "enable_explicit_inval_data"),
        # The no-open patch adds no attribute of its own: its contract is in open's docstring.
        "no_open": "no-open" in (getattr(ops.open, "__doc__", None) or ""),
        "no_export": hasattr(ops, "no_export_support"),
        "getattr_fh": hasattr(getattr(binding, "RequestContext", None), "fh"),
        "killpriv_v2": hasattr(ops, "enable_killpriv_v2"),
        "tmpfile": hasattr(ops, "tmpfile"),
    }
    return frozenset(name for name in KNOWN if found[name])


def missing(binding: ModuleType = pyfuse3) -> tuple[str, ...]:
    """The features of ``KNOWN`` that *binding* lacks, in ``KNOWN`` order."""
    have = available(binding)
    return tuple(name for name in KNOWN if name not in have)


def missing_line(binding: ModuleType = pyfuse3) -> str | None:
    """One line for the mount log naming what the binding lacks, or None if nothing."""
    lacking = missing(binding)
    if not lacking:
        return None
    version = getattr(binding, "__version__", "?")
    return f"pyfuse3 {version} lacks FUSE features: {', '.join(lacking)}"
