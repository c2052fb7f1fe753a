"""eStargz and zstd:chunked blobs written from a layer tar: ordinary gzip / zstd streams of
a tar that extracts to exactly the input's entries, with the structure the formats'
descriptions require (checked here byte by byte: the 51-byte footer, a gzip member or a
zstd frame starting at every chunk's offset, the TOC digest annotation, chunk digests,
the landmark, the skippable frames and the 64-byte footer, tar-split that rebuilds the
stream); and the chunk reader, which gets any one file back by range reads alone and
refuses a chunk that does not match its digest."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard

from unionfs.errors import UserError
from unionfs.store import chunkrecord, estargz, tarsplit, zstdchunked
from unionfs.store.chunkread import CorruptChunk, FileRangeSource, LayerReader, open_toc
from unionfs.store.toc import parse_time

CHUNK = 64 * 1024
DIRS = ("etc", "bin", "usr", "usr/lib", "var", "d")
BIG = random.Random(7).randbytes(5 * CHUNK + 123)
FILES = {
    "etc/motd": b"hello\n",
    "bin/tool": random.Random(8).randbytes(CHUNK),  # exactly one chunk
    "usr/lib/big.so": BIG,
    "var/empty": b"",
    "d/" + "long-name-" * 15: b"needs a pax path\n",
}


def layer_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid = len(data), 0o640, 1_700_000_001, 7
            if name == "bin/tool":
                info.pax_headers = {"SCHILY.xattr.user.note": "x<y&z"}
            tar.addfile(info, io.BytesIO(data))
        for name, kind, target in (("bin/sh", tarfile.SYMTYPE, "tool"),
                                   ("bin/hard", tarfile.LNKTYPE, "bin/tool"),
                                   ("etc/.wh.gone", tarfile.REGTYPE, "")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = kind, target, 1_700_000_002
            tar.addfile(info)
    return out.getvalue()


TAR = layer_tar()
WRITERS = {"estargz": estargz.write_estargz, "zstd:chunked": zstdchunked.write_zstd_chunked}


def decompress(fmt: str, blob: bytes) -> bytes:
    if fmt == "estargz":
        return gzip.decompress(blob)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True)
    return reader.read()


@pytest.fixture(params=sorted(WRITERS))
def written(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, estargz.TocBlob]:
    fmt = request.param
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = WRITERS[fmt](io.BytesIO(TAR), out, chunk_size=CHUNK)
    return fmt, path, blob


def members(data: bytes) -> list[tuple[str, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()]  # fmt: skip


Written = tuple[str, Path, estargz.TocBlob]


def test_the_blob_is_an_ordinary_stream_of_the_input_tar(written: Written) -> None:
    fmt, path, blob = written
    data = path.read_bytes()
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest() and blob.size == len(data)
    plain = decompress(fmt, data)
    assert plain.startswith(TAR)  # the input, byte for byte, end-of-archive included
    assert blob.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert members(plain) == members(TAR)  # no TOC, no landmark among the extracted entries
    tool = ["tar", "-tf", str(path), "--gzip" if fmt == "estargz" else "--zstd"]
    listed = subprocess.run(tool, capture_output=True, text=True, check=True).stdout.split()
    assert listed == [n + "/" if n in DIRS else n for n, _ in members(TAR)]


def test_zstd_chunked_keeps_the_diff_id_and_estargz_appends_to_the_stream(
    written: tuple[str, Path, estargz.TocBlob],
) -> None:
    fmt, path, blob = written
    same = blob.diff_id == "sha256:" + hashlib.sha256(TAR).hexdigest()
    assert same is (fmt == "zstd:chunked")
    plain = decompress(fmt, path.read_bytes())
    assert (len(plain) == len(TAR)) is (fmt == "zstd:chunked")


def test_estargz_structure_matches_the_description(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = estargz.write_estargz(io.BytesIO(TAR), out, chunk_size=CHUNK)
    data = path.read_bytes()
    foot = data[-51:]
    # 10-byte gzip header with FEXTRA, XLEN 26, 'S''G', LEN 22, %016xSTARGZ, empty stored
    # final block, CRC and ISIZE 0: the 51 bytes the description spells out.
    assert foot[:4] == b"\x1f\x8b\x08\x04" and struct.unpack("<H", foot[10:12]) == (26,)
    assert foot[12:14] == b"SG" and struct.unpack("<H", foot[14:16]) == (22,)
    assert foot[32:38] == b"STARGZ" and foot[38:] == b"\x01\x00\x00\xff\xff" + bytes(8)
    assert gzip.decompress(foot) == b""
    toc_offset = int(foot[16:32], 16)
    assert estargz.parse_footer(data) == toc_offset
    # The TOC member: a tar entry stargz.index.json, its JSON hashing to the annotation.
    z = zlib.decompressobj(31)
    toc_tar = z.decompress(data[toc_offset:-51])
    assert z.eof and not z.unused_data
    with tarfile.open(fileobj=io.BytesIO(toc_tar)) as tar:
        (entry,) = tar.getmembers()
        assert entry.name == "stargz.index.json"
        raw = tar.extractfile(entry).read()  # type: ignore[union-attr]
    assert blob.annotations[estargz.TOC_DIGEST] == "sha256:" + hashlib.sha256(raw).hexdigest()
    plain = gzip.decompress(data)
    assert blob.annotations[estargz.UNCOMPRESSED_SIZE] == str(len(plain))
    toc = json.loads(raw)
    assert toc["version"] == 1
    entries = toc["entries"]
    names = [e["name"] for e in entries if e["type"] != "chunk"]
    assert names == [n + "/" if n in DIRS else n for n, _ in members(TAR)] + [
        ".no.prefetch.landmark"
    ]  # the names as stored: tarfile writes directories with a trailing slash
    by_name = {e["name"]: e for e in entries if e["type"] != "chunk"}
    assert by_name["bin/tool"]["xattrs"] == {"user.note": base64.b64encode(b"x<y&z").decode()}
    assert by_name["bin/tool"]["uid"] == 7 and by_name["bin/tool"]["mode"] == 0o640
    assert by_name["bin/tool"]["modtime"] == "2023-11-14T22:13:21Z"
    assert by_name["bin/hard"] == {"name": "bin/hard", "type": "hardlink",
                                   "modtime": "2023-11-14T22:13:22Z", "linkName": "bin/tool",
                                   "mode": 0o644}  # fmt: skip
    # Every non-empty regular file and chunk: a gzip member starts at its offset and holds
    # exactly its bytes, whose sha256 is its chunkDigest.
    chunked = [e for e in entries if e["type"] == "chunk" or (e["type"] == "reg" and e.get("size"))]
    assert len([e for e in chunked if e["name"] == "usr/lib/big.so"]) == 6
    for e in chunked:
        z = zlib.decompressobj(31)
        got = z.decompress(data[e["offset"] :])
        size = e.get("chunkSize") or (by_name[e["name"]]["size"] - e.get("chunkOffset", 0))
        assert hashlib.sha256(got[:size]).hexdigest() == e["chunkDigest"][7:]
    landmark = by_name[".no.prefetch.landmark"]
    assert gzip.decompress(data[landmark["offset"] : toc_offset])[:1] == b"\x0f"
    # The digest of the landmark's one byte 0x0f, as in the description's example TOC.
    assert landmark["digest"] == landmark["chunkDigest"] == (
        "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8"
    )
    whole = by_name["usr/lib/big.so"]
    assert whole["digest"] == "sha256:" + hashlib.sha256(BIG).hexdigest()


def test_zstd_chunked_structure_matches_containers_storage(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = zstdchunked.write_zstd_chunked(io.BytesIO(TAR), out, chunk_size=CHUNK)
    data = path.read_bytes()
    notes = blob.annotations
    where = notes[zstdchunked.MANIFEST_POSITION]
    offset, length, plain_len, kind = (int(x) for x in where.split(":"))
    assert kind == 1 and notes[zstdchunked.OLD_MANIFEST_POSITION] == where
    # skippable frame: magic 0x184D2A50, LE32 size, then the compressed TOC.
    assert data[offset - 8 : offset - 4] == b"\x50\x2a\x4d\x18"
    assert struct.unpack("<I", data[offset - 4 : offset]) == (length,)
    compressed = data[offset : offset + length]
    digest = "sha256:" + hashlib.sha256(compressed).hexdigest()
    assert notes[zstdchunked.MANIFEST_CHECKSUM] == digest
    assert notes[zstdchunked.OLD_MANIFEST_CHECKSUM] == digest
    manifest = zstandard.ZstdDecompressor().decompress(compressed)
    assert len(manifest) == plain_len
    # The 64-byte footer in the last skippable frame: offsets, lengths, type, magic.
    foot = data[-64:]
    assert data[-72:-64] == b"\x50\x2a\x4d\x18" + struct.pack("<I", 64)
    fields = struct.unpack("<7Q", foot[:56])
    ts_where = notes[zstdchunked.TARSPLIT_POSITION]
    ts_offset, ts_length, ts_plain = (int(x) for x in ts_where.split(":"))
    assert fields == (offset, length, plain_len, 1, ts_offset, ts_length, ts_plain)
    assert foot[56:] == b"GNUlInUx"
    # tar-split: its digest is in the TOC and, with the files' data, it rebuilds the tar.
    toc = json.loads(manifest)
    split = data[ts_offset : ts_offset + ts_length]
    assert toc["tarSplitDigest"] == "sha256:" + hashlib.sha256(split).hexdigest()
    lines = zstandard.ZstdDecompressor().decompress(split)
    assert len(lines) == ts_plain
    contents = {n.encode(): d for n, d in FILES.items()}
    rebuilt = b"".join(tarsplit.assemble(lines, lambda name: iter([contents[name]])))
    assert rebuilt == TAR
    # Each file's data is frames [offset, endOffset) alone.
    entries = toc["entries"]
    for e in entries:
        if e["type"] == "reg" and e.get("size"):
            payload = zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(data[e["offset"] : e["endOffset"]]), read_across_frames=True).read()
            assert payload == contents[e["name"].encode()]
            assert e["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
            assert parse_time(e["modtime"]) == 1_700_000_001 * 10**9
    big = [e for e in entries if e["name"] == "usr/lib/big.so"]
    assert [e["type"] for e in big] == ["reg"] + ["chunk"] * 5
    assert [e.get("chunkOffset", 0) for e in big] == [i * CHUNK for i in range(6)]
    assert toc["version"] == 1 and "tarSplitDigest" in toc


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_file_reads_back_by_ranges_alone(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = WRITERS[fmt](io.BytesIO(TAR), out, chunk_size=CHUNK)
    source = FileRangeSource(str(path))
    toc = open_toc(source, blob.annotations)
    assert toc.format == fmt and toc.digest == blob.toc_digest
    reader = LayerReader(source, toc)
    assert {e.path for e in toc.entries} == {n.encode().rstrip(b"/") for n, _ in members(TAR)}
    for name, data in FILES.items():
        entry = reader.lookup(name.encode())
        assert entry is not None and reader.read_file(entry) == data
    tool = reader.lookup(b"bin/tool")
    assert tool is not None and tool.xattrs == {b"user.note": b"x<y&z"} and tool.uid == 7
    hard = reader.lookup(b"bin/hard")
    assert hard is not None and hard.kind == "hardlink" and hard.linkname == b"bin/tool"
    big = reader.lookup(b"usr/lib/big.so")
    assert big is not None and len(big.chunks) == 6
    before = source.requests
    assert reader.read(big, 2 * CHUNK - 3, 10) == BIG[2 * CHUNK - 3 : 2 * CHUNK + 7]
    assert source.requests == before + 1  # the two chunks it spans, in one request


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_corrupt_chunk_is_refused_never_served(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = WRITERS[fmt](io.BytesIO(TAR), out, chunk_size=CHUNK)
    source = FileRangeSource(str(path))
    reader = LayerReader(source, open_toc(source, blob.annotations))
    big = reader.lookup(b"usr/lib/big.so")
    assert big is not None
    victim = big.chunks[3]
    data = bytearray(path.read_bytes())
    # Same compressed length, other content: recompress other bytes into the chunk's slot
    # would change offsets, so flip a byte inside the compressed data instead.
    data[victim.offset + (victim.end - victim.offset) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptChunk):
        reader.read_file(big)
    assert reader.read(big, 0, 100) == BIG[:100]  # chunks elsewhere still verify


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_toc_that_does_not_match_its_annotation_is_refused(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = WRITERS[fmt](io.BytesIO(TAR), out, chunk_size=CHUNK)
    wrong = "sha256:" + "0" * 64
    notes = dict(blob.annotations)
    for key in notes:
        if key in (estargz.TOC_DIGEST, zstdchunked.MANIFEST_CHECKSUM,
                   zstdchunked.OLD_MANIFEST_CHECKSUM):  # fmt: skip
            notes[key] = wrong
    with pytest.raises(UserError, match="does not match its digest"):
        open_toc(FileRangeSource(str(path)), notes)
    with pytest.raises(UserError, match="no TOC"):
        open_toc(FileRangeSource(str(path)), {})


def test_a_files_chunk_table_packs_for_the_index_and_back(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        blob = estargz.write_estargz(io.BytesIO(TAR), out, chunk_size=CHUNK)
    toc = open_toc(FileRangeSource(str(path)), blob.annotations)
    for entry in toc.entries:
        record = chunkrecord.pack(entry.digest, entry.chunks)
        assert len(record) == 33 + 80 * len(entry.chunks)
        assert chunkrecord.unpack(record) == (entry.digest, entry.chunks)
    with pytest.raises(UserError):
        chunkrecord.unpack(b"\x02" + bytes(32))
