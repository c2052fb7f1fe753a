// lazyverify reads an eStargz or zstd:chunked blob with stargz-snapshotter's reference
// reader (Debian's golang-github-containerd-stargz-snapshotter-dev, package estargz):
// it opens the blob through its footer, verifies the TOC against the digest given,
// reads every chunk of every regular file and checks it against its chunkDigest, and
// prints "sha256:<hex> <size> <name>" per regular file (tests/store/test_reference_reader.py).
//
// Usage: lazyverify BLOB TOC-DIGEST
// The TOC digest is the sha256 of the uncompressed TOC JSON for both formats (what the
// estargz package computes; containers/storage's zstd:chunked checksum is of the
// compressed TOC instead). Version 0.12 of the package knows only the first zstd:chunked
// footer (40 bytes, "GnUlInUx"): zstd64 below reads the current 64-byte one.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	digest "github.com/opencontainers/go-digest"
)

type zstd64 struct{ zstdchunked.Decompressor }

func (z *zstd64) FooterSize() int64 { return 64 }

func (z *zstd64) ParseFooter(p []byte) (int64, int64, int64, error) {
	if len(p) != 64 || !bytes.Equal(p[56:64], []byte("GNUlInUx")) {
		return 0, 0, 0, fmt.Errorf("no 64-byte zstd:chunked footer")
	}
	offset := binary.LittleEndian.Uint64(p[0:8])
	length := binary.LittleEndian.Uint64(p[8:16])
	return int64(offset - 8), int64(offset), int64(length), nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "lazyverify: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: lazyverify BLOB TOC-DIGEST")
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	st, err := f.Stat()
	if err != nil {
		fail("%v", err)
	}
	r, err := estargz.Open(io.NewSectionReader(f, 0, st.Size()), estargz.WithDecompressors(new(zstd64)))
	if err != nil {
		fail("open: %v", err)
	}
	verifiers, err := r.VerifyTOC(digest.Digest(os.Args[2]))
	if err != nil {
		fail("verify TOC: %v", err)
	}
	var names []string
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		e.ForeachChild(func(base string, child *estargz.TOCEntry) bool {
			name := path.Join(dir, base)
			if child.Type == "dir" {
				walk(name, child)
			} else if child.Type == "reg" {
				names = append(names, name)
			}
			return true
		})
	}
	root, ok := r.Lookup("")
	if !ok {
		fail("no root entry")
	}
	walk("", root)
	sort.Strings(names)
	for _, name := range names {
		e, _ := r.Lookup(name)
		file, err := r.OpenFile(name)
		if err != nil {
			fail("open %s: %v", name, err)
		}
		whole := sha256.New()
		for off := int64(0); off < e.Size; {
			ce, ok := r.ChunkEntryForOffset(name, off)
			if !ok {
				fail("%s: no chunk at %d", name, off)
			}
			buf := make([]byte, ce.ChunkSize)
			if _, err := file.ReadAt(buf, ce.ChunkOffset); err != nil && err != io.EOF {
				fail("%s: read chunk at %d: %v", name, ce.ChunkOffset, err)
			}
			v, err := verifiers.Verifier(ce)
			if err != nil {
				fail("%s: %v", name, err)
			}
			v.Write(buf)
			if !v.Verified() {
				fail("%s: chunk at %d does not match its chunkDigest", name, ce.ChunkOffset)
			}
			whole.Write(buf)
			off = ce.ChunkOffset + ce.ChunkSize
		}
		fmt.Printf("sha256:%x %d %s\n", whole.Sum(nil), e.Size, name)
	}
}
