"""Writes through unionfs have the same results as the same writes through kernel overlayfs.

Each example builds one random lower stack twice (kernel markers for ``mount -t overlay``;
for unionfs either the same or randomly chosen marker forms), mounts kernel overlayfs and
unionfs over them, each with its own empty upper and workdir, and applies one random
sequence of operations to both. After every step the results (or errnos) must be equal. At
the end the merged trees must be equal; then both are unmounted and kernel overlayfs is
mounted over the kernel copy of the lowers with *unionfs's* upper and a fresh workdir: it
must show what unionfs showed, which proves the upper is a valid overlayfs upper.

Nothing here follows a symlink or opens a fifo or device node (see ``writeutil``): random
stacks hold links to ``/etc`` and device numbers of real disks.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from layer_strategies import layer_paths, stacks
from mountutil import (
    Dir,
)
from write_pairs import (
    BLOBS,
    DEFAULT_FEATURES,
    FRESH,
    HOLD_FLAGS,
    IDS,
    LINK_TARGETS,
    MODES,
    NODES,
    OFFSETS,
    XATTR_NAMES,
    Op,
    Pair,
    op_as_user,
    op_chmod,
    op_chown,
    op_chown_unchanged,
    op_create,
    op_getxattr,
    op_link,
    op_listdir,
    op_mkdir,
    op_mkfifo,
    op_mknod,
    op_open,
    op_open_unlink_io,
    op_read,
    op_removexattr,
    op_rename,
    op_rmdir,
    op_setxattr,
    op_stat,
    op_symlink,
    op_truncate,
    op_unlink,
    op_utime,
    op_write,
    rich_stack,
)
from writeutil import (
    Outcome,
    summary,
)

from unionfs.safecalls import RENAME_EXCHANGE, RENAME_NOREPLACE


class WriteMachine(RuleBasedStateMachine):
    """Random operations on paths that exist, existed, are hidden or are fresh."""

    features = DEFAULT_FEATURES  # the overlay feature options of both mounts
    unionfs_extra = ""  # options of the unionfs mount alone

    def __init__(self) -> None:
        super().__init__()
        self.pair: Pair | None = None
        self.paths: set[bytes] = {b""}
        self.names: list[bytes] = list(FRESH)
        self.stepping = False

    # -- choosing paths
    def _path(self, data: st.DataObject, label: str, want: str = "any") -> bytes:
        """A path: one that exists now (on the kernel mount; of kind *want* first, "file" or
        "dir"), one that existed or is hidden (whited out in a lower layer, removed, renamed
        away), or a fresh name in an existing directory ("fresh" puts these first)."""
        assert self.pair is not None
        entries = self.pair.current_tree()
        dirs = sorted(path for path, k in entries.items() if k == "dir")
        groups = {
            "file": sorted(path for path, k in entries.items() if k == "file"),
            "dir": [path for path in dirs if path],
            "any": sorted(path for path in entries if path),
        }
        new = st.tuples(st.sampled_from(dirs), st.sampled_from(self.names)).map(
            lambda pn: pn[0] + b"/" + pn[1] if pn[0] else pn[1]
        )
        choices = [st.sampled_from(groups[want])] if groups.get(want) else []
        if want != "any" and groups["any"]:
            choices.append(st.sampled_from(groups["any"]))
        choices += [st.sampled_from(sorted(self.paths)), new]
        if want == "fresh":
            choices.insert(0, new)
        path = data.draw(st.one_of(*choices), label=label)
        if path.count(b"/") < 6 and len(path) < 3000:
            self.paths.add(path)
        return path

    def _run(self, what: str, op: Op) -> Outcome:
        assert self.pair is not None
        self.stepping = True
        result = self.pair.apply(what, op)
        self.stepping = False
        return result

    @initialize(
        layers=st.one_of(stacks(max_layers=3, max_depth=3), st.builds(rich_stack)),
        unionfs_forms=st.booleans(),
    )
    def mount(self, layers: list[Dir], unionfs_forms: bool) -> None:
        self.stepping = True
        base = Path(tempfile.mkdtemp(prefix="unionfs-write-"))
        self.pair = Pair(base, layers, unionfs_forms, self.features, self.unionfs_extra)
        self.pair.mount()
        for layer in layers:
            self.paths.update(layer_paths(layer))
            self.names.extend(n for n in layer.children if n not in self.names)
        self.stepping = False

    @rule(data=st.data(), mode=MODES, excl=st.booleans(), trunc=st.booleans(), blob=BLOBS)
    def create(self, data: st.DataObject, mode: int, excl: bool, trunc: bool,
               blob: bytes) -> None:  # fmt: skip
        path = self._path(data, "path", "fresh")
        flags = (os.O_EXCL if excl else 0) | (os.O_TRUNC if trunc else 0)
        self._run(f"create {path!r} {mode:o} flags={flags:o} +{len(blob)}",
                  op_create(path, mode, flags, blob))  # fmt: skip

    @rule(data=st.data(), offset=OFFSETS, blob=BLOBS, append=st.booleans())
    def write(self, data: st.DataObject, offset: int, blob: bytes, append: bool) -> None:
        path = self._path(data, "path", "file")
        what = f"write {path!r} at {'end' if append else offset} +{len(blob)}"
        self._run(what, op_write(path, offset, blob, append))

    @rule(data=st.data(), offset=OFFSETS, size=st.integers(0, 200))
    def read(self, data: st.DataObject, offset: int, size: int) -> None:
        path = self._path(data, "path", "file")
        self._run(f"read {path!r} {offset}+{size}", op_read(path, offset, size))

    @rule(data=st.data(), size=OFFSETS, through_fd=st.booleans())
    def truncate(self, data: st.DataObject, size: int, through_fd: bool) -> None:
        path = self._path(data, "path", "file")
        self._run(f"truncate {path!r} {size} fd={through_fd}",
                  op_truncate(path, size, through_fd))  # fmt: skip

    @rule(data=st.data())
    def look(self, data: st.DataObject) -> None:
        path = self._path(data, "path")
        self._run(f"lstat {path!r}", op_stat(path))
        self._run(f"listdir {path!r}", op_listdir(path))

    @rule(data=st.data(), mode=MODES)
    def chmod(self, data: st.DataObject, mode: int) -> None:
        path = self._path(data, "path")
        self._run(f"chmod {path!r} {mode:o}", op_chmod(path, mode))

    @rule(data=st.data(), uid=st.sampled_from(IDS), gid=st.sampled_from(IDS))
    def chown(self, data: st.DataObject, uid: int, gid: int) -> None:
        path = self._path(data, "path")
        self._run(f"chown {path!r} {uid}:{gid}", op_chown(path, uid, gid))

    @rule(data=st.data(), atime=st.integers(0, 2**33 * 10**9), mtime=st.integers(0, 2**33 * 10**9))
    def utime(self, data: st.DataObject, atime: int, mtime: int) -> None:
        path = self._path(data, "path")
        self._run(f"utime {path!r} {atime} {mtime}", op_utime(path, atime, mtime))

    @rule(data=st.data(), name=st.sampled_from(XATTR_NAMES),
          value=st.one_of(st.binary(max_size=40), st.just(b"v" * 3000)))  # fmt: skip
    def setxattr(self, data: st.DataObject, name: bytes, value: bytes) -> None:
        path = self._path(data, "path")
        self._run(f"setxattr {path!r} {name!r} +{len(value)}", op_setxattr(path, name, value))

    @rule(data=st.data(), name=st.sampled_from(XATTR_NAMES))
    def removexattr(self, data: st.DataObject, name: bytes) -> None:
        path = self._path(data, "path")
        self._run(f"removexattr {path!r} {name!r}", op_removexattr(path, name))

    @rule(data=st.data(), name=st.sampled_from(XATTR_NAMES))
    def getxattr(self, data: st.DataObject, name: bytes) -> None:
        path = self._path(data, "path")
        self._run(f"getxattr {path!r} {name!r}", op_getxattr(path, name))

    @rule(data=st.data(), mode=MODES)
    def mkdir(self, data: st.DataObject, mode: int) -> None:
        path = self._path(data, "path", "fresh")
        self._run(f"mkdir {path!r} {mode:o}", op_mkdir(path, mode))

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        path = self._path(data, "path", "dir")
        self._run(f"rmdir {path!r}", op_rmdir(path))

    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = self._path(data, "path", "file")
        self._run(f"unlink {path!r}", op_unlink(path))

    @rule(data=st.data(), flags=st.sampled_from([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, data: st.DataObject, flags: int) -> None:
        src = self._path(data, "src")
        dst = self._path(data, "dst", "fresh")
        self._run(f"rename {src!r} {dst!r} flags={flags}", op_rename(src, dst, flags))

    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        src = self._path(data, "src")
        dst = self._path(data, "dst", "fresh")
        self._run(f"link {src!r} {dst!r}", op_link(src, dst))

    @rule(data=st.data(), link_to=st.sampled_from(LINK_TARGETS))
    def symlink(self, data: st.DataObject, link_to: bytes) -> None:
        path = self._path(data, "path", "fresh")
        self._run(f"symlink {path!r} -> {link_to!r}", op_symlink(path, link_to))

    @rule(data=st.data(), mode=MODES)
    def mkfifo(self, data: st.DataObject, mode: int) -> None:
        path = self._path(data, "path", "fresh")
        self._run(f"mkfifo {path!r} {mode:o}", op_mkfifo(path, mode))

    # No fallocate rule: pyfuse3 3.5 has no fallocate handler, so unionfs answers
    # EOPNOTSUPP where the kernel succeeds (pinned in tests/mounted/test_write_misc.py);
    # the rule would stop every sequence at its first fallocate.

    @rule(data=st.data(), node=st.sampled_from(NODES))
    def mknod(self, data: st.DataObject, node: tuple[int, int]) -> None:
        path = self._path(data, "path", "fresh")
        mode, device = node
        self._run(f"mknod {path!r} {mode:o} {os.major(device)}:{os.minor(device)}",
                  op_mknod(path, mode, device))  # fmt: skip

    @rule(data=st.data(), offset=OFFSETS, blob=st.binary(min_size=1, max_size=64))
    def open_unlink_io(self, data: st.DataObject, offset: int, blob: bytes) -> None:
        path = self._path(data, "path", "file")
        self._run(f"open-unlink-io {path!r} at {offset} +{len(blob)}",
                  op_open_unlink_io(path, offset, blob))  # fmt: skip

    @rule(data=st.data(), flags=st.sampled_from(HOLD_FLAGS))
    def hold(self, data: st.DataObject, flags: int) -> None:
        """Keep a descriptor open across later steps (they may copy up, rename, unlink)."""
        assert self.pair is not None
        path = self._path(data, "path", "file")
        self.stepping = True
        self.pair.hold(path, flags)
        self.stepping = False

    @precondition(lambda self: self.pair is not None and self.pair.held)
    @rule(
        data=st.data(),
        action=st.sampled_from(
            ["pread", "pread uncached", "pwrite", "fstat", "ftruncate", "fchmod", "fsync"]
        ),
        offset=OFFSETS,
        blob=st.binary(min_size=1, max_size=64),
        mode=MODES,
    )
    def use_held(self, data: st.DataObject, action: str, offset: int, blob: bytes,
                 mode: int) -> None:  # fmt: skip
        assert self.pair is not None
        index = data.draw(st.integers(0, len(self.pair.held) - 1), label="held")
        calls: dict[str, Callable[[int], object]] = {
            "pread": lambda fd: os.pread(fd, 200, offset),
            # as after memory pressure: the page cache no longer holds the data
            "pread uncached": lambda fd: (
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED),
                os.pread(fd, 200, offset),
            ),
            "pwrite": lambda fd: os.pwrite(fd, blob, offset),
            "fstat": lambda fd: summary(os.fstat(fd)),
            "ftruncate": lambda fd: (os.ftruncate(fd, offset), summary(os.fstat(fd))),
            "fchmod": lambda fd: (os.fchmod(fd, mode), summary(os.fstat(fd))),
            "fsync": lambda fd: (os.fsync(fd), summary(os.fstat(fd))),
        }
        self.stepping = True
        what = f"{action} at {offset} +{len(blob)} mode {mode:o}"
        self.pair.apply_held(what, index, calls[action])
        self.stepping = False

    def teardown(self) -> None:
        if self.pair is None:
            return
        try:
            if not self.stepping:
                self.pair.finish()
        finally:
            self.pair.close()


COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)  # fmt: skip


class TestWritesMatchKernel(WriteMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=60, stateful_step_count=20, **COMMON)  # slow tier: 2000


@pytest.mark.slow
class TestManyWritesMatchKernel(WriteMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=2000, stateful_step_count=40, **COMMON)


class PassthroughWriteMachine(WriteMachine):
    unionfs_extra = "passthrough"  # open files of the upper served by FUSE passthrough


class TestWritesMatchKernelPassthrough(PassthroughWriteMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(max_examples=15, stateful_step_count=20, **COMMON)


# -- fixed sequences every run checks --------------------------------------------------------

# system.posix_acl_access: version 2, then (tag, perm, id) sorted: owner rw, user 65533 rw,
# owning group none, mask rw, others none.
ACL_65533_RW = struct.pack(
    "<I" + "HHI" * 5,
    2, 0x01, 6, 0xFFFFFFFF, 0x02, 6, 65533, 0x04, 0, 0xFFFFFFFF,
    0x10, 6, 0xFFFFFFFF, 0x20, 0, 0xFFFFFFFF,
)  # fmt: skip

# security.capability of ``setcap cap_net_raw+ep`` (VFS_CAP_REVISION_2, effective).
CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)

SEQUENCES: dict[str, list[tuple[str, Op]]] = {
    "rename of a merged dir is EXDEV, of an upper dir it works": [
        ("rename d e", op_rename(b"d", b"e", 0)),
        ("mkdir n", op_mkdir(b"n", 0o755)),
        ("rename n d/n", op_rename(b"n", b"d/n", 0)),
        ("rename o o2", op_rename(b"o", b"o2", 0)),
        ("listdir d", op_listdir(b"d")),
    ],
    "rmdir of a merged dir emptied by unlinks; mkdir again is opaque": [
        ("unlink d/top", op_unlink(b"d/top")),
        ("rmdir d: not empty", op_rmdir(b"d")),
        ("unlink d/below", op_unlink(b"d/below")),
        ("rmdir d", op_rmdir(b"d")),
        ("mkdir d", op_mkdir(b"d", 0o700)),
        ("listdir d", op_listdir(b"d")),
        ("mkdir gone", op_mkdir(b"gone", 0o755)),
        ("listdir gone", op_listdir(b"gone")),
    ],
    "hard links of a lower file break on copy-up, as without index=on": [
        ("write h1", op_write(b"h1", 0, b"changed", False)),
        ("stat h1", op_stat(b"h1")),
        ("stat h2", op_stat(b"h2")),
        ("link h2 h3", op_link(b"h2", b"h3")),
        ("stat h2", op_stat(b"h2")),
    ],
    "rename flags over lower entries": [
        ("noreplace f d/top", op_rename(b"f", b"d/top", RENAME_NOREPLACE)),
        ("exchange f d/top", op_rename(b"f", b"d/top", RENAME_EXCHANGE)),
        ("exchange f d", op_rename(b"f", b"d", RENAME_EXCHANGE)),
        ("exchange f missing", op_rename(b"f", b"missing", RENAME_EXCHANGE)),
        ("rename d/below gone", op_rename(b"d/below", b"gone", 0)),
        ("noreplace big gone", op_rename(b"big", b"gone", RENAME_NOREPLACE)),
    ],
    "rename between two names of a lower hard link is a real rename": [
        ("rename h1 h2", op_rename(b"h1", b"h2", 0)),
        ("stat h1", op_stat(b"h1")),
        ("stat h2", op_stat(b"h2")),
    ],
    "the other name of a hard link stays usable when one is removed": [
        ("link f f2", op_link(b"f", b"f2")),
        ("unlink f2", op_unlink(b"f2")),
        ("read f", op_read(b"f", 0, 20)),
        ("chmod f", op_chmod(b"f", 0o600)),
    ],
    "a lower dir moved onto a non-empty dir is EXDEV (checked first)": [
        ("rename ld d", op_rename(b"ld", b"d", 0)),
        ("rename ld o", op_rename(b"ld", b"o", RENAME_EXCHANGE)),
    ],
    "a failed rename copies nothing up, and the dirs it touched stay usable": [
        ("rename d/sub d/new (EXDEV)", op_rename(b"d/sub", b"d/new", 0)),
        ("rename d d", op_rename(b"d", b"d", 0)),
        ("mkdir d/new", op_mkdir(b"d/new", 0o755)),
        ("rename d/new new", op_rename(b"d/new", b"new", 0)),
        ("rename ld/lf ld (EISDIR)", op_rename(b"ld/lf", b"ld", 0)),
        ("create ld/n", op_create(b"ld/n", 0o644, 0, b"n")),
        ("listdir d", op_listdir(b"d")),
    ],
    # After unionmount-testsuite's rename-hard-link and hard-link-sym (they pass on both).
    "a link to a lower file and to a lower symlink, renamed about": [
        ("link f f2", op_link(b"f", b"f2")),
        ("rename f2 f3", op_rename(b"f2", b"f3", 0)),
        ("rename f3 f2", op_rename(b"f3", b"f2", 0)),
        ("rename f f4", op_rename(b"f", b"f4", 0)),
        ("stat f2", op_stat(b"f2")),
        ("stat f4", op_stat(b"f4")),
        ("read f2", op_read(b"f2", 0, 20)),
        ("link s s2 (the link itself)", op_link(b"s", b"s2")),
        ("rename s2 s3", op_rename(b"s2", b"s3", 0)),
        ("stat s3", op_stat(b"s3")),
        ("stat s", op_stat(b"s")),
        ("unlink s", op_unlink(b"s")),
        ("stat s3", op_stat(b"s3")),
    ],
    "attributes of the mount root": [
        ("utime root", op_utime(b"", 7, 1_000_000_000)),
        ("chmod root", op_chmod(b"", 0o751)),
        ("setxattr root", op_setxattr(b"", b"user.r", b"1")),
    ],
    "chown to -1, -1 marks every kind of entry changed, lower ones after their copy-up": [
        ("mkfifo p", op_mkfifo(b"p", 0o644)),
        ("mkdir n", op_mkdir(b"n", 0o755)),
        ("symlink l", op_symlink(b"l", b"n")),
        ("chown p -1 -1", op_chown_unchanged(b"p")),
        ("chown n -1 -1", op_chown_unchanged(b"n")),
        ("chown l -1 -1", op_chown_unchanged(b"l")),
        ("chown d -1 -1 (merged dir)", op_chown_unchanged(b"d")),
        ("chown d/sub/deep -1 -1 (lower file)", op_chown_unchanged(b"d/sub/deep")),
        ("chown s -1 -1 (lower symlink)", op_chown_unchanged(b"s")),
        ("chown ld -1 -1 (lower set-gid dir)", op_chown_unchanged(b"ld")),
    ],
    "set-gid without group-execute goes on a write, truncate or chown by a non-member": [
        ("create g", op_create(b"g", 0o666, 0, b"data")),
        ("chmod g 2766", op_chmod(b"g", 0o2766)),
        ("write g as a member", op_as_user(b"g", 65533, 0, "write")),
        ("write g", op_as_user(b"g", 65533, 65533, "write")),
        ("chmod g 2766", op_chmod(b"g", 0o2766)),
        ("ftruncate g", op_as_user(b"g", 65533, 65533, "ftruncate")),
        ("chmod g 2766", op_chmod(b"g", 0o2766)),
        ("truncate g", op_as_user(b"g", 65533, 65533, "truncate")),
        ("chmod g 2766", op_chmod(b"g", 0o2766)),
        ("open g O_TRUNC", op_as_user(b"g", 65533, 65533, "open-trunc")),
        ("chmod g 6766", op_chmod(b"g", 0o6766)),
        ("write g (set-uid too)", op_as_user(b"g", 65533, 65533, "write")),
        ("chown g 65533", op_chown(b"g", 65533, -1)),
        ("chmod g 2766", op_chmod(b"g", 0o2766)),
        ("chown g -1 -1 as its owner", op_as_user(b"g", 65533, 65533, "chown-1")),
        ("chmod f 2666 (lower)", op_chmod(b"f", 0o2666)),
        ("write f", op_as_user(b"f", 65533, 65533, "write")),
        ("mkfifo p", op_mkfifo(b"p", 0o666)),
        ("chmod p 2666", op_chmod(b"p", 0o2666)),
        ("chown p -1 -1", op_as_user(b"p", 65533, 65533, "chown-1")),
    ],
    "a POSIX ACL grants access, on an upper and on a copied-up lower file": [
        ("create a", op_create(b"a", 0o600, 0, b"data")),
        ("write a as 65533, no ACL yet", op_as_user(b"a", 65533, 65533, "write")),
        ("setxattr a ACL", op_setxattr(b"a", b"system.posix_acl_access", ACL_65533_RW)),
        ("write a as 65533", op_as_user(b"a", 65533, 65533, "write")),
        ("write a as 65532", op_as_user(b"a", 65532, 65532, "write")),
        ("setxattr f ACL (lower)", op_setxattr(b"f", b"system.posix_acl_access", ACL_65533_RW)),
        ("write f as 65533", op_as_user(b"f", 65533, 65533, "write")),
        ("chmod f 600 (the mask)", op_chmod(b"f", 0o600)),
        ("write f as 65533, masked", op_as_user(b"f", 65533, 65533, "write")),
    ],
    "set-id bits and the file capability go on a write, truncate or chown (kill-priv)": [
        ("create k", op_create(b"k", 0o666, 0, b"data")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("write k as root (CAP_FSETID)", op_as_user(b"k", 0, 0, "write")),
        ("write k", op_as_user(b"k", 65533, 65533, "write")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("write k again", op_as_user(b"k", 65533, 65533, "write")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("truncate k as root", op_as_user(b"k", 0, 0, "truncate")),
        ("truncate k", op_as_user(b"k", 65533, 65533, "truncate")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("ftruncate k", op_as_user(b"k", 65533, 65533, "ftruncate")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("open k O_TRUNC", op_as_user(b"k", 65533, 65533, "open-trunc")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("open k O_TRUNC as root", op_as_user(b"k", 0, 0, "open-trunc")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("fallocate k", op_as_user(b"k", 65533, 65533, "fallocate")),
        ("chmod k 6777", op_chmod(b"k", 0o6777)),
        ("copy_file_range into k", op_as_user(b"k", 65533, 65533, "copy-range")),
        ("chmod k 4755", op_chmod(b"k", 0o4755)),
        ("chown k as root", op_chown(b"k", 0, 0)),
        ("chmod k 2755", op_chmod(b"k", 0o2755)),
        ("chown k 65533 as root", op_chown(b"k", 65533, -1)),
        ("chmod k 6766 (set-gid without group-execute)", op_chmod(b"k", 0o6766)),
        ("write k as a member", op_as_user(b"k", 65532, 0, "write")),
        ("chmod f 6777 (lower)", op_chmod(b"f", 0o6777)),
        ("write f", op_as_user(b"f", 65533, 65533, "write")),
        ("setxattr k capability", op_setxattr(b"k", b"security.capability", CAP_NET_RAW)),
        ("write k as root, capability", op_as_user(b"k", 0, 0, "write")),
        ("getxattr k capability after a write", op_getxattr(b"k", b"security.capability")),
        ("setxattr k capability again", op_setxattr(b"k", b"security.capability", CAP_NET_RAW)),
        ("truncate k as root, capability", op_as_user(b"k", 0, 0, "truncate")),
        ("getxattr k capability after a truncate", op_getxattr(b"k", b"security.capability")),
        ("setxattr k capability, chown", op_setxattr(b"k", b"security.capability", CAP_NET_RAW)),
        ("chown k 0 as root, capability", op_chown(b"k", 0, -1)),
        ("getxattr k capability after a chown", op_getxattr(b"k", b"security.capability")),
    ],
    "O_RDONLY|O_TRUNC truncates a lower file": [
        ("open d/top O_RDONLY|O_TRUNC", op_open(b"d/top", os.O_RDONLY | os.O_TRUNC)),
        ("read d/top", op_read(b"d/top", 0, 10)),
    ],
    "attributes copy up; overlay xattr names as the kernel (6.7+) escapes them": [
        ("chown f", op_chown(b"f", 0, -1)),
        ("chmod d", op_chmod(b"d", 0o2711)),
        ("utime d/top", op_utime(b"d/top", 5, 1_000_000_007)),
        ("setxattr f user.n", op_setxattr(b"f", b"user.n", b"v")),
        ("removexattr d/top user.a", op_removexattr(b"d/top", b"user.a")),
        ("removexattr f user.none", op_removexattr(b"f", b"user.none")),
        ("setxattr o trusted.overlay.opaque", op_setxattr(b"o", b"trusted.overlay.opaque", b"n")),
        ("getxattr o trusted.overlay.opaque", op_getxattr(b"o", b"trusted.overlay.opaque")),
        ("setxattr d trusted.overlay.opaque=y", op_setxattr(b"d", b"trusted.overlay.opaque", b"y")),
        ("listdir d", op_listdir(b"d")),
        ("setxattr d trusted.overlay.x", op_setxattr(b"d", b"trusted.overlay.x", b"1")),
        ("removexattr d trusted.overlay.x", op_removexattr(b"d", b"trusted.overlay.x")),
        ("chown s (the link itself)", op_chown(b"s", 1000, 1000)),
    ],
}


@pytest.mark.parametrize("title", list(SEQUENCES))
def test_fixed_sequence_matches_kernel(title: str) -> None:
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=True)
    pair.run(SEQUENCES[title])


@pytest.mark.parametrize("extra", ["", "passthrough"])
def test_reader_and_writer_of_one_file_in_every_order(extra: str) -> None:
    """A reader of a lower file, then a writer (copy-up), then a reader of the copy, with
    all three open at once, and again once they are closed: what each descriptor reads is
    the kernel's. Under ``-o passthrough`` the inode changes io modes (page cache while the
    lower's reader is open; passthrough for the copy once it is not), never failing an open."""
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=False,
                unionfs_extra=extra)  # fmt: skip
    try:
        pair.mount()
        pair.hold(b"f", os.O_RDONLY)  # 0: the lower file
        pair.apply_held("pread", 0, lambda fd: os.pread(fd, 20, 0))
        pair.hold(b"f", os.O_RDWR)  # 1: copies up
        pair.apply_held("pwrite", 1, lambda fd: os.pwrite(fd, b"NEW", 1))
        pair.hold(b"f", os.O_RDONLY)  # 2: the copy
        for index in (0, 1, 2):
            pair.apply_held("pread", index, lambda fd: os.pread(fd, 20, 0))
        pair.release_held()
        pair.hold(b"f", os.O_WRONLY | os.O_APPEND)  # 0 again: now alone, passed through
        pair.hold(b"f", os.O_RDONLY)  # 1: shares its backing
        pair.apply_held("append", 0, lambda fd: os.write(fd, b"TAIL"))
        pair.apply_held("pread", 1, lambda fd: os.pread(fd, 40, 0))
        pair.apply_held("fstat", 1, lambda fd: summary(os.fstat(fd)))
        pair.release_held()
        pair.apply("read f", op_read(b"f", 0, 40))  # not a stale page of the cached opens
        pair.finish()
    finally:
        pair.close()


@pytest.mark.parametrize("extra", ["", "passthrough"])
def test_read_only_descriptor_follows_copy_up(extra: str) -> None:
    """Kernel overlayfs (since 4.19) reads through a descriptor opened before the copy-up
    from the copied-up file, so it sees later writes."""
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=False,
                unionfs_extra=extra)
    try:
        pair.mount()
        pair.hold(b"f", os.O_RDONLY)
        pair.apply("write f", op_write(b"f", 0, b"NEW", False))
        pair.apply_held("pread", 0, lambda fd: os.pread(fd, 20, 0))
        pair.apply_held("fstat", 0, lambda fd: summary(os.fstat(fd)))
        pair.finish()
    finally:
        pair.close()


@pytest.mark.parametrize("extra", ["", "passthrough"])
def test_unlinked_lower_file_open_read_only_fstat(extra: str) -> None:
    """A lower file open read-only (never copied up) and then unlinked: the kernel's fstat
    still shows the lower file's link count."""
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=False,
                unionfs_extra=extra)
    try:
        pair.mount()
        pair.hold(b"d/top", os.O_RDONLY)
        pair.apply("unlink d/top", op_unlink(b"d/top"))
        pair.apply_held("pread", 0, lambda fd: os.pread(fd, 20, 0))
        pair.apply_held("fstat", 0, lambda fd: summary(os.fstat(fd)))
        pair.finish()
    finally:
        pair.close()


@pytest.mark.parametrize("extra", ["", "passthrough"])
def test_descriptor_opened_before_a_copy_up_and_unlink_says_nlink_0(extra: str) -> None:
    """A lower file held read-only, then copied up, written and unlinked through another
    descriptor that is closed: the held one is the overlay file's, whose count is 0 (the
    write machine found unionfs saying the lower's 1)."""
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=False,
                unionfs_extra=extra)
    try:
        pair.mount()
        pair.hold(b"d/top", os.O_RDONLY)
        pair.apply("open-unlink-io d/top", op_open_unlink_io(b"d/top", 3, b"x"))
        pair.apply_held("fsync", 0, os.fsync)
        pair.apply_held("fstat", 0, lambda fd: summary(os.fstat(fd)))
        pair.finish()
    finally:
        pair.close()


@pytest.mark.parametrize("extra", ["", "passthrough"])
def test_changes_through_a_read_only_descriptor_of_an_unlinked_lower_file(extra: str) -> None:
    """The copy-up these need cannot happen once the name is gone: kernel overlayfs answers
    EEXIST (the whiteout stands where the copy would go)."""
    pair = Pair(Path(tempfile.mkdtemp(prefix="unionfs-write-")), rich_stack(), unionfs_forms=False,
                unionfs_extra=extra)
    try:
        pair.mount()
        pair.hold(b"d/top", os.O_RDONLY)
        pair.apply("unlink d/top", op_unlink(b"d/top"))
        # fsync makes the write-back cache flush the mtime it holds: not a change, no EEXIST
        pair.apply_held("fsync", 0, os.fsync)
        pair.apply_held("fchmod", 0, lambda fd: os.fchmod(fd, 0o600))
        pair.apply_held("fchown", 0, lambda fd: os.fchown(fd, 1000, 1000))
        pair.apply_held("futimens", 0, lambda fd: os.utime(fd, ns=(1, 2)))
        pair.apply_held("fsetxattr", 0, lambda fd: os.setxattr(fd, "user.x", b"1"))
        pair.finish()
    finally:
        pair.close()
