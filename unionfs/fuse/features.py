"""Which optional FUSE features the installed pyfuse3 binding offers (third_party/pyfuse3).

Read from the binding itself (its classes' attributes, and for the features that need libfuse
3.17 the libfuse it was compiled against), so a stock pyfuse3 3.5.0 installed by a plain
``pip install .`` reports them missing and unionfs runs without them. It only looks: it never
turns a feature on, and it says nothing about what the kernel offers
(``pyfuse3.kernel_capabilities`` tells that, once mounted).
"""

from __future__ import annotations

from types import ModuleType

import pyfuse3

# Every feature unionfs may use, in the order a message lists them. The last four need a pyfuse3
# compiled against libfuse 3.17 (third_party/libfuse; third_party/pyfuse3/README.md says why).
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
    "killpriv_v2",  # Operations.enable_killpriv_v2, kill_suidgid passed to handlers
    "tmpfile",  # Operations.tmpfile (O_TMPFILE)
    "passthrough",  # Operations.enable_passthrough, passthrough_open, FileInfo.backing_id
    "no_export",  # Operations.no_export_support
    "getattr_fh",  # RequestContext.fh: getattr knows the open file it is asked through
    "parallel_dirops",  # Operations.enable_parallel_dirops (FUSE_PARALLEL_DIROPS)
)


def available(binding: ModuleType = pyfuse3) -> frozenset[str]:
    """The features of ``KNOWN`` that *binding* (pyfuse3, or a stand-in in tests) offers."""
    ops = binding.Operations
    entry = binding.EntryAttributes()
    info = binding.FileInfo()
    # What the libfuse it was compiled against lets it request (patch 0008 of the series).
    libfuse: frozenset[str] = getattr(binding, "libfuse_capabilities", frozenset())
    libfuse_version: tuple[int, int] = getattr(binding, "libfuse_version", (0, 0))
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
        "killpriv_v2": hasattr(ops, "enable_killpriv_v2") and "handle_killpriv_v2" in libfuse,
        "tmpfile": hasattr(ops, "tmpfile") and libfuse_version >= (3, 17),
        "passthrough": hasattr(binding, "passthrough_open") and "passthrough" in libfuse,
        "no_export": hasattr(ops, "no_export_support") and "no_export_support" in libfuse,
        "getattr_fh": hasattr(getattr(binding, "RequestContext", None), "fh"),
        "parallel_dirops": hasattr(ops, "enable_parallel_dirops"),
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
