"""``verify``: the index is a cache of what the rules compute; prove it for one stack.

Walks the merged view twice, once from the index (``IndexedLowers``) and once by the rules
over the layer directories, and lists every difference in names, types, modes, owners,
sizes, link counts, times, link targets and xattrs. Used at the end of the mounted tests
and by ``unionfs index verify``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from unionfs.index.views import IndexedLowers
from unionfs.union.readdir import list_dir
from unionfs.union.stack import DirLayer, Resolved, Stack, StatLike

_FIELDS = ("st_mode", "st_uid", "st_gid", "st_size", "st_nlink", "st_rdev", "st_mtime_ns",
           "st_ino", "st_dev")  # fmt: skip


def _describe(layer_stack: Stack, res: Resolved, nlink: int | None) -> dict[str, object]:
    st: StatLike = res.st
    facts: dict[str, object] = {f: getattr(st, f) for f in _FIELDS}
    if nlink is not None:
        facts["st_nlink"] = nlink
    layer = layer_stack.layers[res.top]
    if (res.st.st_mode & 0o170000) == 0o120000:
        facts["target"] = layer.readlink(res.top_path)
    where = res.top_path
    facts["xattrs"] = sorted((n, layer.getxattr(where, n)) for n in layer.listxattr(where))
    return facts


def _tree(stack: Stack, merged_nlink: bool) -> dict[bytes, dict[str, object]]:
    root = stack.root()
    out: dict[bytes, dict[str, object]] = {}
    pending = [root]
    out[b""] = _describe(stack, root, 1 if merged_nlink and root.is_merged else None)
    while pending:
        directory = pending.pop()
        for _, child in list_dir(stack, directory):
            nlink = 1 if merged_nlink and child.is_dir and child.is_merged else None
            out[child.path] = _describe(stack, child, nlink)
            if child.is_dir:
                pending.append(child)
    return out


def verify(indexed: IndexedLowers, layers: Sequence[DirLayer]) -> list[str]:
    """Every difference between the index and the layers; empty when they agree."""
    if indexed.lstat(b"") is None:
        return ["/: missing from the index (its stack table is empty)"]
    from_index = _tree(Stack([indexed]), merged_nlink=False)
    from_disk = _tree(Stack(list(layers)), merged_nlink=True)
    problems: list[str] = []
    for path in sorted(set(from_index) | set(from_disk)):
        shown = os.fsdecode(path) or "/"
        a, b = from_index.get(path), from_disk.get(path)
        if a is None:
            problems.append(f"{shown}: missing from the index")
        elif b is None:
            problems.append(f"{shown}: in the index but not in the layers")
        elif a != b:
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            problems.append(f"{shown}: differs in {', '.join(fields)}")
    return problems
