"""tar-split metadata (github.com/vbatts/tar-split), as containers/storage embeds it in a
zstd:chunked blob: JSON lines, one per raw segment of the tar (headers, padding, the
end-of-archive blocks; base64) and one per member (its name, size and a CRC-64/ISO of
its data), numbered by ``position``. With the files' data it rebuilds the exact tar
stream; ``assemble`` does that here, so a test can prove the metadata complete.
"""

from __future__ import annotations

import base64
import json
import typing
from collections.abc import Callable, Iterator

import crcmod

from unionfs.errors import UserError

SEGMENT = 2
FILE = 1


def crc64() -> typing.Any:
    """Go's ``crc64.New(crc64.MakeTable(crc64.ISO))``: reflected 0x1B, all ones in and out."""
    return crcmod.Crc(0x1000000000000001B, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


class Packer:
    """Collects the JSON lines as Go's ``storage.NewJSONPacker`` writes them."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def _add(self, entry: dict[str, object]) -> None:
        entry["position"] = len(self.lines)
        text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(char, escaped)
        self.lines.append(text.encode() + b"\n")

    def segment(self, raw: bytes) -> None:
        self._add({"type": SEGMENT, "payload": base64.b64encode(raw).decode()})

    def file(self, name: bytes, size: int, crc: bytes | None) -> None:
        entry: dict[str, object] = {"type": FILE}
        try:
            entry["name"] = name.decode("utf-8")
        except UnicodeDecodeError:
            entry["name_raw"] = base64.b64encode(name).decode()
        if size:
            entry["size"] = size
        entry["payload"] = base64.b64encode(crc).decode() if crc is not None else None
        self._add(entry)

    def data(self) -> bytes:
        return b"".join(self.lines)


def assemble(data: bytes, content: Callable[[bytes], Iterator[bytes]]) -> Iterator[bytes]:
    """The tar stream that tar-split *data* describes, with each file's data from
    *content(name)*; every file's CRC is checked. UserError on anything inconsistent."""
    for number, line in enumerate(data.splitlines()):
        try:
            entry = json.loads(line)
            kind, position = entry["type"], entry["position"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"corrupt tar-split: line {number}") from None
        if position != number:
            raise UserError(f"corrupt tar-split: line {number} says position {position}")
        if kind == SEGMENT:
            yield base64.b64decode(entry.get("payload") or "")
            continue
        if kind != FILE:
            raise UserError(f"corrupt tar-split: line {number} has type {kind!r}")
        name = (base64.b64decode(entry["name_raw"]) if entry.get("name_raw")
                else str(entry.get("name", "")).encode())  # fmt: skip
        size = int(entry.get("size") or 0)
        if not size:
            continue
        crc = crc64()
        got = 0
        for chunk in content(name):
            crc.update(chunk)
            got += len(chunk)
            yield chunk
        expected = base64.b64decode(entry.get("payload") or "")
        if got != size or crc.digest() != expected:
            raise UserError(f"tar-split: the data of {name!r} does not match")
