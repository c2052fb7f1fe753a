"""Building, checking and verifying indexes.

A layer's table is built by one walk of its directory. Its fingerprint is a hash of every
entry's name, inode number, ctime and type, directory by directory in sorted order. ctime
changes with every change to an inode (data, attributes, links, xattrs) and a directory's
with every entry added, removed or renamed in it, so a walk that finds the same
fingerprint finds the same layer. A hand-given layer is checked this way at every mount,
which reads the layer's directories and inodes but writes nothing; a changed one is
reindexed. (Sealed layers of the store are immutable and skip the check.)

A stack's table is computed by the ``union`` rules over the layer tables (``list_dir`` on
a stack of ``IndexedLayer``), so it is by construction what the rules say; ``verify``
recomputes the same over the directories themselves and compares.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from unionfs import layerfmt
from unionfs.index import codec
from unionfs.index.env import IndexEnv, IndexUnavailable
from unionfs.index.views import IndexedLayer, IndexedLowers
from unionfs.safepath import DirFdCache, join
from unionfs.union.readdir import list_dir
from unionfs.union.stack import DirLayer, Resolved, Stack, StatLike

log = logging.getLogger("unionfs.index")
# An index reads the markers of a mount without userxattr (a userxattr mount, which reads
# user.overlay.* alone, serves its lowers directly).
XWHITEOUT_XATTRS = layerfmt.xwhiteout_xattrs(layerfmt.PRIVATE_XATTR_PREFIXES)


@dataclass(frozen=True, slots=True)
class LayerScan:
    fingerprint: str
    records: list[tuple[bytes, codec.Record]]


RETIRED = b"R"  # registry keys of superseded layer tables (_retire)


def _walk(layer: DirLayer) -> Iterator[tuple[bytes, StatLike, list[tuple[bytes, StatLike]]]]:
    """Every directory of *layer*, parents first, with its children sorted by name."""
    root = layer.lstat(b"")
    assert root is not None
    pending: list[tuple[bytes, StatLike]] = [(b"", root)]
    while pending:
        path, st = pending.pop()
        children: list[tuple[bytes, StatLike]] = sorted(layer.scandir(path), key=lambda i: i[0])
        yield path, st, children
        for name, child in reversed(children):
            if stat.S_ISDIR(child.st_mode) and not layerfmt.is_marker_name(name):
                pending.append((join(path, name), child))


def _fingerprint_update(digest: hashlib.blake2b, path: bytes, st: StatLike) -> None:
    digest.update(b"%s\0%d %d %d\n" % (path, st.st_ino, st.st_ctime_ns, st.st_mode))


def fingerprint(layer: DirLayer) -> str:
    """The layer's fingerprint, without reading xattrs or link targets."""
    digest = hashlib.blake2b(digest_size=20)
    for path, st, children in _walk(layer):
        _fingerprint_update(digest, path, st)
        for name, child in children:
            _fingerprint_update(digest, join(path, name), child)
    return digest.hexdigest()


def scan_layer(layer: DirLayer) -> LayerScan:
    """Every entry of *layer* as index records, markers folded into flags."""
    digest = hashlib.blake2b(digest_size=20)
    records: list[tuple[bytes, codec.Record]] = []
    for path, st, children in _walk(layer):
        _fingerprint_update(digest, path, st)
        names = {name for name, _ in children}
        flags = 0
        xattrs = _xattrs(layer, path)
        if _is_opaque(xattrs, names):
            flags |= codec.OPAQUE
        records.append((path, codec.Record(0, flags, codec.attrs_of(st), b"", xattrs)))
        for name, child in children:
            _fingerprint_update(digest, join(path, name), child)
            child_path = join(path, name)
            if layerfmt.is_marker_name(name):
                hidden = layerfmt.whited_out_name(name)
                if hidden is not None and hidden not in names:
                    whiteout = codec.whiteout_attrs(child)
                    records.append((join(path, hidden), codec.Record(0, codec.WHITEOUT, whiteout)))
                continue
            if stat.S_ISDIR(child.st_mode):
                continue  # recorded when its own turn comes, with its opaque flag
            flags = (
                codec.WHITEOUT if layerfmt.is_whiteout_device(child.st_mode, child.st_rdev) else 0
            )
            target = layer.readlink(child_path) if stat.S_ISLNK(child.st_mode) else b""
            extra = () if flags else _xattrs(layer, child_path)
            if layerfmt.may_be_xwhiteout(child.st_mode, child.st_size) and any(
                name in XWHITEOUT_XATTRS for name, _ in extra
            ):  # an empty file marked overlay.whiteout: a whiteout (union.lookup)
                flags, extra = codec.WHITEOUT, ()
            records.append(
                (child_path, codec.Record(0, flags, codec.attrs_of(child), target, extra))
            )
    return LayerScan(digest.hexdigest(), records)


def _is_opaque(xattrs: tuple[tuple[bytes, bytes], ...], names: set[bytes]) -> bool:
    return layerfmt.is_opaque(dict(xattrs).get, lambda: layerfmt.OPAQUE_MARKER in names)


def _xattrs(layer: DirLayer, path: bytes) -> tuple[tuple[bytes, bytes], ...]:
    found = []
    for name in layer.listxattr(path):
        value = layer.getxattr(path, name)
        if value is not None:
            found.append((name, value))
    return tuple(sorted(found))


def _identity(layer: DirLayer) -> bytes:
    st = os.stat(layer.root_fd)
    raw = f"{os.path.realpath(layer.root)}\0{st.st_dev}\0{st.st_ino}".encode(
        errors="surrogateescape"
    )
    return b"L" + hashlib.sha256(raw).digest()


def _write_table(txn: object, env: IndexEnv, table: int, items: list[tuple[bytes, bytes]]) -> None:
    items.sort()
    cursor = txn.cursor(db=env.entries)  # type: ignore[attr-defined]
    cursor.putmulti(items, append=True)


def ensure_layer(env: IndexEnv, layer: DirLayer, check: bool = True) -> int:
    """The table of *layer*, built now if it is missing or the layer changed."""
    key = _identity(layer)
    with env.read() as txn:
        known = env.get_record(txn, key)
    if known is not None and (known.get("sealed") or not check):
        return int(known["table"])
    found = _fingerprints.pop(layer.layer_id, None) if known is not None else None
    if known is not None and (found or fingerprint(layer)) == known.get("fingerprint"):
        return int(known["table"])
    if known is not None:
        log.info("layer %s changed since it was indexed: indexing it again", layer.root)
    scan = scan_layer(layer)
    with env.write() as txn:
        latest = env.get_record(txn, key)
        if latest is not None and latest.get("fingerprint") == scan.fingerprint:
            return int(latest["table"])  # another mount indexed it meanwhile
        table = env.new_table(txn)
        items = [(codec.entry_key(table, p), codec.encode(r)) for p, r in scan.records]
        _write_table(txn, env, table, items)
        if latest is not None:
            _retire(env, txn, latest)
        facts = {"table": table, "root": layer.root, "fingerprint": scan.fingerprint}
        env.put_record(txn, key, {**facts, "entries": len(items)})
    env.sync()
    return table


def _retire(env: IndexEnv, txn: object, record: dict[str, object]) -> None:
    """A layer's superseded table, and the stacks on it, stay until ``prune`` or
    ``rebuild``: a live mount of the layer as it was serves from them (the layer changed
    under it, as podman's layer does when it is mounted as an upper for a diff while
    other mounts use it as a lower), and dropping them would empty its tree."""
    table = int(record["table"])  # type: ignore[call-overload]
    env.put_record(txn, RETIRED + str(table).encode(),  # type: ignore[arg-type]
                   {"table": table, "root": record.get("root"),
                    "entries": record.get("entries", 0)})  # fmt: skip


def drop_retired(env: IndexEnv, txn: object, keep: frozenset[str] = frozenset(),
                 roots: frozenset[str] | None = None) -> int:  # fmt: skip
    """Drop the retired tables (of *roots* only, if given; never of a root in *keep*) and
    the stacks on them; how many."""
    cursor = txn.cursor(db=env.meta)  # type: ignore[attr-defined]
    found = []
    if cursor.set_range(RETIRED):
        for raw, _ in cursor:
            key = bytes(raw)
            if not key.startswith(RETIRED):
                break
            found.append((key, env.get_record(txn, key)))  # type: ignore[arg-type]
    dropped = 0
    for key, record in found:
        root = None if record is None else record.get("root")
        if root in keep or (roots is not None and root not in roots):
            continue
        if record is not None:
            _drop_layer_table(env, txn, int(record["table"]))
        txn.delete(key, db=env.meta)  # type: ignore[attr-defined]
        dropped += 1
    return dropped


def _stack_key(tables: Sequence[int]) -> bytes:
    # Hashed: 500 table ids would not fit in LMDB's 511-byte keys. The record lists them.
    joined = ",".join(str(t) for t in tables).encode()
    return b"S" + hashlib.sha256(joined).digest()


def _drop_layer_table(env: IndexEnv, txn: object, table: int) -> None:
    """Drop a layer's table and every stack table built on it."""
    env.drop_table(txn, table)  # type: ignore[arg-type]
    cursor = txn.cursor(db=env.meta)  # type: ignore[attr-defined]
    stale = []
    if cursor.set_range(b"S"):
        for raw, _ in cursor:
            key = bytes(raw)
            if not key.startswith(b"S"):
                break
            record = env.get_record(txn, key)  # type: ignore[arg-type]
            if record is None or table in record.get("layers", ()):
                stale.append((key, record))
    for key, record in stale:
        if record is not None and "table" in record:
            env.drop_table(txn, int(record["table"]))  # type: ignore[arg-type]
        txn.delete(key, db=env.meta)  # type: ignore[attr-defined]


def merged_records(layers: Sequence[IndexedLayer]) -> Iterator[tuple[bytes, codec.Record]]:
    """The merged view of *layers* by the union rules, as stack records."""
    stack = Stack(list(layers))
    root = stack.root()
    pending = [root]
    yield b"", _merged(layers, root)
    while pending:
        directory = pending.pop()
        for _, child in list_dir(stack, directory):
            yield child.path, _merged(layers, child)
            if child.is_dir:
                pending.append(child)


# A lower layer that was once an upper may hold these: a renamed directory's contents, or a
# file's data, are then at another path or in another layer than the one a stack record can
# name. Such stacks are served from their directories, by the rules (slower, never wrong).
OVERLAY_RECORDS = frozenset(
    p + n for p in (b"trusted.overlay.", b"user.overlay.") for n in (b"redirect", b"metacopy")
)


class ServeDirectly(Exception):
    """The stack holds records a stack table cannot express (see OVERLAY_RECORDS)."""


def _merged(layers: Sequence[IndexedLayer], res: Resolved) -> codec.Record:
    top = layers[res.top].record(res.top_path)
    assert top is not None
    if any(name in OVERLAY_RECORDS for name, _ in top.xattrs):
        raise ServeDirectly(os.fsdecode(res.path))
    merged = res.is_dir and len(res.layers) > 1
    attrs = top.attrs._replace(st_nlink=1) if merged else top.attrs
    return codec.Record(res.top, codec.MERGED if merged else 0, attrs, top.target, top.xattrs)


DIRECT = "the lower layers hold overlay redirect or metacopy records"


def ensure_stack(env: IndexEnv, tables: Sequence[int], layers: Sequence[DirLayer]) -> int:
    key = _stack_key(tables)
    with env.read() as txn:
        known = env.get_record(txn, key)
    if known is not None and known.get("direct"):
        raise IndexUnavailable(f"{DIRECT}: {known['direct']}")
    if known is not None:
        return int(known["table"])
    views = [IndexedLayer(env, t, d) for t, d in zip(tables, layers, strict=True)]
    try:
        records = list(merged_records(views))
    except ServeDirectly as exc:
        with env.write() as txn:
            env.put_record(txn, key, {"direct": str(exc), "layers": list(tables)})
        raise IndexUnavailable(f"{DIRECT}: {exc}") from None
    with env.write() as txn:
        latest = env.get_record(txn, key)
        if latest is not None and not latest.get("direct"):
            return int(latest["table"])
        table = env.new_table(txn)
        items = [(codec.entry_key(table, p), codec.encode(r)) for p, r in records]
        _write_table(txn, env, table, items)
        env.put_record(txn, key, {"table": table, "layers": list(tables), "entries": len(items)})
    env.sync()
    return table


def open_lowers(env: IndexEnv, layers: Sequence[DirLayer], check: bool = True) -> IndexedLowers:
    """The merged lower stack of *layers* (top first), indexing what is missing or stale."""
    if check and len(layers) > 1:
        _fingerprint_all(env, layers)
    tables = [ensure_layer(env, layer, check) for layer in layers]
    return IndexedLowers(env, ensure_stack(env, tables, layers), layers)


_fingerprints: dict[int, str] = {}  # layer_id -> fingerprint, computed ahead in threads


def _fingerprint_all(env: IndexEnv, layers: Sequence[DirLayer]) -> None:
    """Walk the known layers in parallel: the walks wait on the disk, not on Python (the
    GIL is released in every syscall), and a cold walk of many layers is I/O-bound."""
    with env.read() as txn:
        records = [(layer, env.get_record(txn, _identity(layer))) for layer in layers]
    known = [layer for layer, record in records if record and not record.get("sealed")]
    if len(known) < 2:
        return
    workers = min(8, len(known))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        roots = [layer.root for layer in known]
        for layer, found in zip(known, pool.map(_fingerprint_alone, roots), strict=True):
            _fingerprints[layer.layer_id] = found


def _fingerprint_alone(root: str) -> str:
    """``fingerprint`` of *root* with descriptors of its own: a DirFdCache is not shared
    between threads (one thread's eviction would close another's descriptor)."""
    cache = DirFdCache(16)
    layer = DirLayer(root, cache, lower=True)
    try:
        return fingerprint(layer)
    finally:
        layer.close()
        cache.close()


def rebuild(env: IndexEnv, layers: Sequence[DirLayer]) -> IndexedLowers:
    """Forget what the index knows of *layers* and index them again."""
    with env.write() as txn:
        drop_retired(env, txn, roots=frozenset(layer.root for layer in layers))
        for layer in layers:
            key = _identity(layer)
            known = env.get_record(txn, key)
            if known is not None:
                _drop_layer_table(env, txn, int(known["table"]))
                txn.delete(key, db=env.meta)
    return open_lowers(env, layers)
