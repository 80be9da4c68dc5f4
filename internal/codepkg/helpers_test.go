package codepkg

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// ent is a zip entry for buildZip. mode 0 records no Unix mode (as zips
// made on Windows); links carry their target as body.
type ent struct {
	name string
	mode fs.FileMode
	body string
}

func file(name, body string) ent { return ent{name, 0o644, body} }
func exe(name, body string) ent  { return ent{name, 0o755, body} }
func dir(name string) ent        { return ent{name, fs.ModeDir | 0o755, ""} }
func link(name, target string) ent {
	return ent{name, fs.ModeSymlink | 0o777, target}
}

func buildZip(tb testing.TB, ents ...ent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		fw, err := w.CreateHeader(h)
		if err != nil {
			tb.Fatal(err)
		}
		if e.body != "" {
			if _, err := fw.Write([]byte(e.body)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// rawZip writes one entry with a header and data given as is, so that the
// header can lie.
func rawZip(tb testing.TB, h zip.FileHeader, data []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	fw, err := w.CreateRaw(&h)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// bitWriter packs bits the way deflate does: least significant first.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// code writes a Huffman code, which deflate stores most significant first.
func (w *bitWriter) code(c uint64, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r = r<<1 | (c>>i)&1
	}
	w.bits(r, n)
}

// deflateZeros returns a raw deflate stream of n zero bytes, made by hand
// (one fixed-Huffman block: a literal, then matches of 258 at distance 1),
// so that a 300 MiB bomb is built in milliseconds even under -race.
func deflateZeros(n int64) []byte {
	w := &bitWriter{out: make([]byte, 0, n/158+16)}
	w.bits(1, 1) // BFINAL
	w.bits(1, 2) // BTYPE 01: fixed Huffman codes
	lit := func() { w.code(0x30, 8) }
	if n > 0 {
		lit()
		n--
	}
	for ; n >= 258; n -= 258 {
		w.code(0xc0+5, 8) // length code 285: 258 bytes
		w.code(0, 5)      // distance code 0: 1 byte back
	}
	for ; n > 0; n-- {
		lit()
	}
	w.code(0, 7) // end of block
	w.bits(0, 7) // flush
	return w.out
}

func crcZeros(n int64) uint32 {
	zeros := make([]byte, 1<<20)
	var c uint32
	for n > 0 {
		k := min(n, int64(len(zeros)))
		c = crc32.Update(c, crc32.IEEETable, zeros[:k])
		n -= k
	}
	return c
}

// bombZip is a zip of one deflated file of n zeros whose header claims
// claimed bytes (claimed == n for an honest header). It is built without
// holding n bytes.
func bombZip(tb testing.TB, name string, n, claimed int64) []byte {
	data := deflateZeros(n)
	h := zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crcZeros(n),
		CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(claimed)}
	h.SetMode(0o755)
	return rawZip(tb, h, data)
}

// seeds are valid and hostile packages, for the fuzzers' corpus and for
// checking that Validate and Extract agree.
func seeds(tb testing.TB) map[string][]byte {
	stored := func(name, body string, crc uint32) []byte {
		h := zip.FileHeader{Name: name, Method: zip.Store, CRC32: crc,
			CompressedSize64: uint64(len(body)), UncompressedSize64: uint64(len(body))}
		h.SetMode(0o755)
		return rawZip(tb, h, []byte(body))
	}
	return map[string][]byte{
		"valid": buildZip(tb, exe("bootstrap", "#!/bin/sh\n"), dir("lib/"), file("lib/a.txt", "a"),
			file("lib/sub/b.txt", "b"), link("lib/cur", "sub"), link("run", "lib/cur/b.txt")),
		"valid-link-bootstrap": buildZip(tb, exe("bin/real", "x"), link("bootstrap", "bin/real")),
		"valid-no-unix-mode":   buildZip(tb, ent{"bootstrap", 0, "x"}, ent{"d/", 0, ""}),
		"traversal":            buildZip(tb, exe("bootstrap", "x"), file("a/../../x", "x")),
		"absolute":             buildZip(tb, file("/etc/x", "x")),
		"backslash":            buildZip(tb, file(`..\x`, "x")),
		"link-absolute":        buildZip(tb, link("l", "/etc/passwd")),
		"link-escape":          buildZip(tb, dir("sub/"), link("a", "sub"), link("sub/b", "../..")),
		"link-physical-escape": buildZip(tb, link("s", "."), link("t", "s/..")),
		"link-loop":            buildZip(tb, link("a", "b"), link("b", "a")),
		"through-link":         buildZip(tb, dir("sub/"), link("a", "sub"), file("a/x", "x")),
		"fifo":                 buildZip(tb, ent{"p", fs.ModeNamedPipe | 0o644, ""}),
		"duplicate":            buildZip(tb, file("a", "1"), file("./a", "2")),
		"file-and-dir":         buildZip(tb, file("a", "1"), file("a/b", "2")),
		"bomb":                 bombZip(tb, "bootstrap", 512<<10, 512<<10),
		"lying-header":         bombZip(tb, "bootstrap", 64<<10, 100),
		"zero-crc":             stored("bootstrap", "data", 0),
		"bad-crc":              stored("bootstrap", "data", 1234),
		"truncated":            buildZip(tb, exe("bootstrap", strings.Repeat("x", 100)))[:60],
	}
}
