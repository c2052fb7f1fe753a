"""A lazily pulled layer on disk: ``ROOT/lazy/<blob-hex>/`` holds ``lazy.json`` (where the
blob is: registry reference, TLS and credentials file as ``pull`` had them, the descriptor,
the TOC's position), ``toc.json`` (the TOC, verified against its digest when fetched),
``tree/`` (the placeholder tree) and ``filled`` (the files whose data is in the tree, one
per line, appended after the data is synced), then ``complete`` (the diff_id the whole
blob was checked against) or ``broken`` (why it was refused). Shared chunks live in
``ROOT/lazy/chunks``. No credentials are written here: only the path of the file they came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from unionfs.errors import UserError
from unionfs.store.toc import ESTARGZ, LayerToc, parse_estargz, parse_zstd_chunked

RECORD = "lazy.json"
TOC = "toc.json"
TREE = "tree"
FILLED = "filled"
COMPLETE = "complete"
BROKEN = "broken"


@dataclass(frozen=True, slots=True)
class LazyRecord:
    ref: str  # the image reference pulled (registry/repository[:tag]), for ``connect``
    digest: str  # the layer blob
    size: int
    media_type: str
    diff_id: str  # as the image config says (the tree is not hashed against it)
    format: str  # toc.ESTARGZ or toc.ZSTD_CHUNKED
    toc_digest: str
    toc_offset: int  # eStargz: where the TOC's gzip member starts (chunk ends need it)
    tls_verify: bool = True
    authfile: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def parse_toc(rec: LazyRecord, data: bytes) -> LayerToc:
    """The layer's kept TOC (its digest checked again)."""
    if rec.format == ESTARGZ:
        return parse_estargz(data, rec.toc_digest, rec.toc_offset)
    return parse_zstd_chunked(data, rec.toc_digest)


def layer_dir(tree: str) -> str | None:
    """The lazy layer dir whose tree is *tree* (a ``lowerdir=``), or None for any other."""
    parent = os.path.dirname(os.path.abspath(tree))
    if os.path.basename(os.path.abspath(tree)) != TREE:
        return None
    return parent if os.path.isfile(os.path.join(parent, RECORD)) else None


def chunk_dir(layer: str) -> str:
    """The chunk cache shared by every lazy layer of the store *layer* belongs to."""
    return os.path.join(os.path.dirname(layer), "chunks", "sha256")


def save(layer: str, rec: LazyRecord, toc: bytes) -> None:
    for name, data in ((TOC, toc), (RECORD, json.dumps(asdict(rec), sort_keys=True).encode())):
        tmp = os.path.join(layer, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(layer, name))


def load(layer: str) -> tuple[LazyRecord, bytes]:
    try:
        with open(os.path.join(layer, RECORD), "rb") as f:
            raw = json.load(f)
        with open(os.path.join(layer, TOC), "rb") as f:
            toc = f.read()
        return LazyRecord(**raw), toc
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"lazy layer {layer}: its record is unreadable ({exc})") from None


def filled(layer: str) -> set[bytes]:
    """The files whose data is in the tree (paths as the TOC's, normalized)."""
    try:
        with open(os.path.join(layer, FILLED), "rb") as f:
            return {bytes.fromhex(line.decode()) for line in f.read().split() if line}
    except FileNotFoundError:
        return set()


def add_filled(layer: str, paths: list[bytes]) -> None:
    """Record *paths* as filled (their data synced first). One append: lines of concurrent
    writers (two mounts of one image) never interleave inside a line."""
    if not paths:
        return
    data = b"".join(p.hex().encode() + b"\n" for p in paths)
    fd = os.open(os.path.join(layer, FILLED), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                 0o600)  # fmt: skip
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _mark(layer: str, name: str, text: str) -> None:
    tmp = os.path.join(layer, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(layer, name))


def mark_complete(layer: str, diff_id: str) -> None:
    """Every file is filled and the whole blob was checked against *diff_id* (kept in the
    marker): from now on the tree is served as any extracted layer."""
    _mark(layer, COMPLETE, diff_id)


def mark_broken(layer: str, reason: str) -> None:
    """The blob is not what its TOC or diff_id says: never marked complete, never
    prefetched again; its files are still served chunk by chunk, each one verified."""
    _mark(layer, BROKEN, reason)


def broken(layer: str) -> str | None:
    """Why the layer was refused, or None."""
    try:
        with open(os.path.join(layer, BROKEN)) as f:
            return f.read().strip() or "refused"
    except FileNotFoundError:
        return None


def is_complete(layer: str) -> bool:
    return os.path.exists(os.path.join(layer, COMPLETE))
