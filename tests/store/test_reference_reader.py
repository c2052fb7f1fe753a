"""Our eStargz and zstd:chunked blobs read by the formats' reference reader: the estargz
package of stargz-snapshotter (Debian's golang-github-containerd-stargz-snapshotter-dev,
0.12), built from tools/lazyverify. It finds the TOC through the footer, verifies it
against its digest and every chunk of every regular file against its chunkDigest, and the
files' contents it reads are the layer's."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
import zstandard
from patience import scaled

from store.test_lazyformats import FILES, TAR
from unionfs.store import estargz, zstdchunked

TOOL = Path(__file__).parents[2] / "tools" / "lazyverify" / "main.go"


@pytest.fixture(scope="module")
def lazyverify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not Path("/usr/share/gocode/src/github.com/containerd/"
                                              "stargz-snapshotter/estargz").is_dir():  # fmt: skip
        pytest.fail("golang-go or golang-github-containerd-stargz-snapshotter-dev is missing "
                    "(dev.sh installs them)")  # fmt: skip
    out = tmp_path_factory.mktemp("lazyverify") / "lazyverify"
    env = {**os.environ, "GOPATH": "/usr/share/gocode", "GO111MODULE": "off",
           "GOFLAGS": "", "CGO_ENABLED": "0"}  # fmt: skip
    subprocess.run(["go", "build", "-o", str(out), str(TOOL)], env=env, check=True,
                   capture_output=True, timeout=scaled(600))  # fmt: skip
    return out


def toc_json(fmt: str, blob: bytes) -> bytes:
    if fmt == "estargz":
        member = zlib.decompressobj(31).decompress(blob[estargz.parse_footer(blob) : -51])
        size = int(member[124:136].split(b"\0")[0], 8)
        return member[512 : 512 + size]
    offset, length = struct.unpack("<2Q", blob[-64:-48])
    return zstandard.ZstdDecompressor().decompress(blob[offset : offset + length])


@pytest.mark.parametrize("fmt", ["estargz", "zstd:chunked"])
def test_the_reference_reader_verifies_and_reads_every_file(lazyverify: Path, tmp_path: Path,
                                                            fmt: str) -> None:  # fmt: skip
    writer = estargz.write_estargz if fmt == "estargz" else zstdchunked.write_zstd_chunked
    path = tmp_path / "blob"
    with open(path, "wb") as out:
        writer(io.BytesIO(TAR), out, chunk_size=64 * 1024)
    digest = "sha256:" + hashlib.sha256(toc_json(fmt, path.read_bytes())).hexdigest()
    proc = subprocess.run([str(lazyverify), str(path), digest], capture_output=True, text=True,
                          timeout=scaled(120))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = {name: data for name, data in FILES.items()}
    expected["bin/hard"] = FILES["bin/tool"]  # a hard link reads as its target
    expected["etc/.wh.gone"] = b""
    if fmt == "estargz":
        expected[".no.prefetch.landmark"] = b"\x0f"
    lines = sorted(f"sha256:{hashlib.sha256(d).hexdigest()} {len(d)} {n}"
                   for n, d in expected.items())  # fmt: skip
    assert sorted(proc.stdout.splitlines()) == lines
    wrong = subprocess.run([str(lazyverify), str(path), "sha256:" + "0" * 64],
                           capture_output=True, text=True, timeout=scaled(120))  # fmt: skip
    assert wrong.returncode == 1 and "verify TOC" in wrong.stderr
