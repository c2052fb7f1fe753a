"""Reading one layer blob into a directory: the blob re-hashed as it is read (a damaged
blob is refused), its tar extracted in the store's marker style, its diff_id and
uncompressed size measured. It writes only below the directory it is given; placing the
tree in the store and recording it is ``images``' work.
"""

from __future__ import annotations

import io
import typing
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.layerfmt import MarkerStyle
from unionfs.store import layertar
from unionfs.store.blobs import HashingReader


@dataclass(frozen=True, slots=True)
class Extracted:
    diff_id: str  # the digest of the uncompressed tar
    size: int  # bytes of the uncompressed tar: the size podman shows


def extract_blob(
    path: str, blob: str, into: str, style: MarkerStyle,
    warn: Callable[[str], None], progress: Callable[[int], None],
) -> Extracted:  # fmt: skip
    """The layer tar in the file *path*, which must be blob *blob*, extracted into the
    directory *into*; *progress* is told the compressed bytes read."""
    with open(path, "rb") as raw:
        hashing = HashingReader(typing.cast(typing.BinaryIO, raw), progress)
        buffered = typing.cast(typing.BinaryIO, io.BufferedReader(hashing))
        plain = [0]

        def count(n: int) -> None:
            plain[0] += n

        try:
            found = layertar.extract_layer(layertar.open_layer(buffered), into, style,
                                           warn=warn, progress=count)  # fmt: skip
        except UserError as exc:
            raise UserError(f"layer {blob[:19]}: {exc.message}") from None
        while buffered.read(1 << 20):
            pass
    if hashing.digest != blob:
        raise UserError(f"blob {blob} does not match its digest (the store is damaged)")
    return Extracted(found, plain[0])
