package codepkg

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strings"
	"testing"
)

var sentinels = []error{ErrTooLarge, ErrUnzippedTooLarge, ErrCorrupt, ErrUnsafePath, ErrLinkOutside,
	ErrSpecialFile, ErrTooManyEntries, ErrDuplicate, ErrNoBootstrap}

// checkUserError requires err to wrap exactly the sentinel want (and no
// other) and to read as a message for the user.
func checkUserError(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Errorf("err %q also wraps %v", err, s)
		}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "codepkg:") || len(msg) < 20 {
		t.Errorf("message %q is not for users", msg)
	}
}

func TestValidate(t *testing.T) {
	sd := seeds(t)
	small := Limits{MaxZipped: 1 << 20, MaxUnzipped: 256 << 10, MaxEntries: 100}
	boot := exe("bootstrap", "#!/bin/sh\n")
	long := strings.Repeat("x", 5000)
	deep := strings.Repeat("d/", maxDepth) + "f"
	chain := func(n int) []ent { // l1 -> l2 -> ... -> ln -> bootstrap
		ents := []ent{boot}
		for i := 1; i <= n; i++ {
			target := fmt.Sprintf("l%d", i+1)
			if i == n {
				target = "bootstrap"
			}
			ents = append(ents, link(fmt.Sprintf("l%d", i), target))
		}
		return ents
	}
	raw := func(h zip.FileHeader, data string) []byte {
		h.SetMode(0o755)
		return rawZip(t, h, []byte(data))
	}
	const data = "hello, world"
	crc := crc32.ChecksumIEEE([]byte(data))
	dirWithData := zip.FileHeader{Name: "d", Method: zip.Store, CRC32: crc, CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}
	dirWithData.SetMode(fs.ModeDir | 0o755)
	// archive/zip writes no data for names ending in "/": rename afterwards.
	linkDirName := bytes.ReplaceAll(buildZip(t, link("linkQ", "x")), []byte("linkQ"), []byte("link/"))

	tests := []struct {
		name   string
		zip    []byte
		lim    Limits
		noBoot bool // requireBootstrap false
		want   error
	}{
		{name: "valid", zip: sd["valid"]},
		{name: "link bootstrap", zip: sd["valid-link-bootstrap"]},
		{name: "no unix modes", zip: sd["valid-no-unix-mode"]},
		{name: "root entries", zip: buildZip(t, dir("./"), ent{"./", 0, ""}, exe("./bootstrap", "x"))},
		{name: "backslash kept literally", zip: buildZip(t, boot, file(`a\b`, "x"), file(`a\.\b`, "x"))},
		{name: "dangling link inside", zip: buildZip(t, boot, link("l", "missing/x"))},
		{name: "link up to root", zip: buildZip(t, boot, dir("sub/"), link("sub/l", ".."), link("r", "sub/.."))},
		{name: "link to dir then up", zip: buildZip(t, boot, dir("a/b/"), link("l", "a/b"), link("m", "l/../x"))},
		{name: "links chain 40", zip: buildZip(t, chain(40)...)},
		{name: "setuid dropped", zip: buildZip(t, ent{"bootstrap", fs.ModeSetuid | fs.ModeSetgid | 0o755, "x"})},
		{name: "empty zip no bootstrap needed", zip: buildZip(t), noBoot: true},
		{name: "limits at exact size", zip: buildZip(t, exe("bootstrap", "12345")), lim: Limits{MaxUnzipped: 5, MaxEntries: 1}},

		{name: "too large", zip: buildZip(t, boot), lim: Limits{MaxZipped: 100}, want: ErrTooLarge},
		{name: "traversal", zip: sd["traversal"], want: ErrUnsafePath},
		{name: "dotdot first", zip: buildZip(t, boot, file("../x", "x")), want: ErrUnsafePath},
		{name: "dotdot inside", zip: buildZip(t, boot, file("a/../b", "x")), want: ErrUnsafePath},
		{name: "absolute", zip: sd["absolute"], want: ErrUnsafePath},
		{name: "backslash traversal", zip: sd["backslash"], want: ErrUnsafePath},
		{name: "backslash deep traversal", zip: buildZip(t, boot, file(`a\..\..\x`, "x")), want: ErrUnsafePath},
		{name: "backslash absolute", zip: buildZip(t, boot, file(`\x`, "x")), want: ErrUnsafePath},
		{name: "drive letter", zip: buildZip(t, boot, file(`C:\x`, "x")), want: ErrUnsafePath},
		{name: "NUL", zip: buildZip(t, boot, file("a\x00b", "x")), want: ErrUnsafePath},
		{name: "empty name", zip: buildZip(t, boot, file("", "x")), want: ErrUnsafePath},
		{name: "file naming root", zip: buildZip(t, boot, file(".", "x")), want: ErrUnsafePath},
		{name: "link naming root", zip: buildZip(t, boot, link("./.", "x")), want: ErrUnsafePath},
		{name: "long component", zip: buildZip(t, boot, file(strings.Repeat("n", 256), "x")), want: ErrUnsafePath},
		{name: "too deep", zip: buildZip(t, boot, file(deep, "x")), want: ErrUnsafePath},
		{name: "path through link", zip: sd["through-link"], want: ErrUnsafePath},
		{name: "path through link, link last", zip: buildZip(t, boot, file("a/x", "x"), link("a", "sub")), want: ErrUnsafePath},
		{name: "link target too long", zip: buildZip(t, boot, link("l", long)), want: ErrUnsafePath},
		{name: "link target empty", zip: buildZip(t, boot, link("l", "")), want: ErrUnsafePath},
		{name: "link target NUL", zip: buildZip(t, boot, link("l", "a\x00")), want: ErrUnsafePath},

		{name: "link absolute", zip: sd["link-absolute"], want: ErrLinkOutside},
		{name: "link dotdot", zip: buildZip(t, boot, link("l", "../../x")), want: ErrLinkOutside},
		{name: "link dotdot from subdir", zip: buildZip(t, boot, link("a/b/l", "../../../x")), want: ErrLinkOutside},
		{name: "link chain escaping", zip: sd["link-escape"], want: ErrLinkOutside},
		{name: "link through link", zip: buildZip(t, boot, dir("sub/"), link("a", "sub"), link("c", "a/b"), link("sub/b", "../..")), want: ErrLinkOutside},
		{name: "link escaping only physically", zip: sd["link-physical-escape"], want: ErrLinkOutside},
		{name: "link backslash absolute", zip: buildZip(t, boot, link("l", `\etc\passwd`)), want: ErrLinkOutside},
		{name: "link backslash dotdot", zip: buildZip(t, boot, link("l", `..\..\x`)), want: ErrLinkOutside},
		{name: "link dangling dotdot", zip: buildZip(t, boot, link("d", "nothere"), link("x", "d/../../y")), want: ErrLinkOutside},
		{name: "link loop", zip: sd["link-loop"], want: ErrLinkOutside},
		{name: "link self loop", zip: buildZip(t, boot, link("a", "a")), want: ErrLinkOutside},
		{name: "link loop through path", zip: buildZip(t, boot, link("a", "a/x")), want: ErrLinkOutside},
		{name: "links chain 41", zip: buildZip(t, chain(41)...), want: ErrLinkOutside},

		{name: "fifo", zip: sd["fifo"], noBoot: true, want: ErrSpecialFile},
		{name: "block device", zip: buildZip(t, boot, ent{"dev", fs.ModeDevice | 0o644, ""}), want: ErrSpecialFile},
		{name: "char device", zip: buildZip(t, boot, ent{"tty", fs.ModeDevice | fs.ModeCharDevice | 0o644, ""}), want: ErrSpecialFile},
		{name: "socket", zip: buildZip(t, boot, ent{"sock", fs.ModeSocket | 0o644, ""}), want: ErrSpecialFile},

		{name: "too many entries", zip: buildZip(t, boot, file("a", "1"), file("b", "2"), file("c", "3")), lim: Limits{MaxEntries: 3}, want: ErrTooManyEntries},
		{name: "duplicate", zip: buildZip(t, boot, file("a", "1"), file("a", "2")), want: ErrDuplicate},
		{name: "duplicate after cleaning", zip: sd["duplicate"], noBoot: true, want: ErrDuplicate},
		{name: "duplicate double slash", zip: buildZip(t, boot, file("a/b", "1"), file("a//b", "2")), want: ErrDuplicate},
		{name: "duplicate dirs", zip: buildZip(t, boot, dir("a/"), dir("a/")), want: ErrDuplicate},
		{name: "duplicate links", zip: buildZip(t, boot, link("a", "x"), link("a", "y")), want: ErrDuplicate},
		{name: "file then dir", zip: buildZip(t, boot, file("a", "1"), dir("a/")), want: ErrDuplicate},
		{name: "dir then file", zip: buildZip(t, boot, dir("a/"), file("a", "1")), want: ErrDuplicate},
		{name: "file then child", zip: sd["file-and-dir"], noBoot: true, want: ErrDuplicate},
		{name: "child then file", zip: buildZip(t, boot, file("a/b", "2"), file("a", "1")), want: ErrDuplicate},

		{name: "no bootstrap", zip: buildZip(t, file("main.py", "x")), want: ErrNoBootstrap},
		{name: "bootstrap not executable", zip: buildZip(t, file("bootstrap", "x")), want: ErrNoBootstrap},
		{name: "bootstrap dir", zip: buildZip(t, dir("bootstrap/"), exe("bootstrap/x", "x")), want: ErrNoBootstrap},
		{name: "bootstrap in subdir", zip: buildZip(t, exe("bin/bootstrap", "x")), want: ErrNoBootstrap},
		{name: "bootstrap link to non-exec", zip: buildZip(t, file("real", "x"), link("bootstrap", "real")), want: ErrNoBootstrap},
		{name: "bootstrap link dangling", zip: buildZip(t, link("bootstrap", "real")), want: ErrNoBootstrap},
		{name: "bootstrap link to dir", zip: buildZip(t, exe("d/x", "x"), link("bootstrap", "d")), want: ErrNoBootstrap},

		{name: "bomb", zip: sd["bomb"], lim: small, want: ErrUnzippedTooLarge},
		{name: "bomb lying big", zip: bombZip(t, "bootstrap", 4<<20, 1<<40), lim: small, want: ErrUnzippedTooLarge},
		{name: "total over entries", zip: buildZip(t, exe("bootstrap", strings.Repeat("a", 100<<10)),
			file("b", strings.Repeat("b", 100<<10)), file("c", strings.Repeat("c", 100<<10))), lim: small, want: ErrUnzippedTooLarge},
		{name: "limit plus one", zip: buildZip(t, exe("bootstrap", "123456")), lim: Limits{MaxUnzipped: 5}, want: ErrUnzippedTooLarge},
		{name: "link counts", zip: buildZip(t, exe("bootstrap", "12345"), link("l", "bootstrap")), lim: Limits{MaxUnzipped: 5}, want: ErrUnzippedTooLarge},

		{name: "header lying small", zip: sd["lying-header"], want: ErrCorrupt},
		{name: "header lying big", zip: bombZip(t, "bootstrap", 1000, 1<<20), want: ErrCorrupt},
		{name: "zero CRC in header", zip: sd["zero-crc"], want: ErrCorrupt},
		{name: "bad CRC", zip: sd["bad-crc"], want: ErrCorrupt},
		{name: "truncated", zip: sd["truncated"], want: ErrCorrupt},
		{name: "truncated end", zip: func() []byte { z := sd["valid"]; return z[:len(z)-1] }(), want: ErrCorrupt},
		{name: "not a zip", zip: []byte("#!/bin/sh\necho this is not a zip file\n"), want: ErrCorrupt},
		{name: "empty input", zip: nil, want: ErrCorrupt},
		{name: "encrypted", zip: raw(zip.FileHeader{Name: "bootstrap", Method: zip.Store, Flags: 0x1, CRC32: crc,
			CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data), want: ErrCorrupt},
		{name: "bzip2", zip: raw(zip.FileHeader{Name: "bootstrap", Method: 12, CRC32: crc,
			CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))}, data), want: ErrCorrupt},
		{name: "dir with data", zip: rawZip(t, dirWithData, []byte(data)), noBoot: true, want: ErrCorrupt},
		{name: "link with dir name", zip: linkDirName, noBoot: true, want: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg, err := Validate(tt.zip, tt.lim, !tt.noBoot)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if pkg != nil {
				t.Errorf("pkg = %+v, want nil", pkg)
			}
			checkUserError(t, err, tt.want)
		})
	}
}

func TestValidatePackage(t *testing.T) {
	z := buildZip(t, exe("bootstrap", "#!/bin/sh\n"), dir("lib/"), file("lib/a.txt", "hello"),
		link("lib/b", "a.txt"), ent{"notes.txt", 0, "windows"})
	pkg, err := Validate(z, Limits{}, true)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(z)
	want := Package{SHA256: sum, CodeSha256: base64.StdEncoding.EncodeToString(sum[:]),
		Size: int64(len(z)), UnzippedSize: int64(len("#!/bin/sh\n") + len("hello") + len("a.txt") + len("windows")), Entries: 5}
	if *pkg != want {
		t.Errorf("pkg = %+v, want %+v", *pkg, want)
	}
}

func TestMessages(t *testing.T) {
	_, err := Validate(make([]byte, 50<<20+1), Limits{}, true)
	if got, want := err.Error(), "Zipped size must be smaller than 52428800 bytes"; got != want {
		t.Errorf("too large: %q, want %q", got, want)
	}
	_, err = Validate([]byte("nope"), Limits{}, true)
	if got := err.Error(); !strings.HasPrefix(got, "Could not unzip uploaded file. Please check your file, then try to upload again.") {
		t.Errorf("corrupt: %q", got)
	}
	_, err = Validate(buildZip(t, file("bootstrap", "x")), Limits{}, true)
	if got := err.Error(); !strings.Contains(got, "must contain an executable file named bootstrap at its root") ||
		!strings.Contains(got, "not executable") {
		t.Errorf("bootstrap: %q", got)
	}
	_, err = Validate(buildZip(t, exe("bootstrap", "123456")), Limits{MaxUnzipped: 5}, true)
	if got, want := err.Error(), "Unzipped size must be smaller than 5 bytes"; got != want {
		t.Errorf("unzipped: %q, want %q", got, want)
	}
	_, err = Validate(buildZip(t, file(strings.Repeat("x", 300)+"/../y", "")), Limits{}, false)
	if got := err.Error(); len(got) > 250 || !strings.Contains(got, `".."`) {
		t.Errorf("unsafe: long name not shortened or reason missing: %q", got)
	}
}

// TestBombDefaultLimits expands a real 300 MiB bomb against Lambda's limits.
func TestBombDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 250 MiB")
	}
	z := bombZip(t, "bootstrap", 300<<20, 300<<20)
	if len(z) > 3<<20 {
		t.Fatalf("bomb is %d bytes", len(z))
	}
	p, err := newPlan(z, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	err = p.readData()
	checkUserError(t, err, ErrUnzippedTooLarge)
	if got, want := err.Error(), "Unzipped size must be smaller than 262144000 bytes"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if p.unzipped > defaultMaxUnzipped+1 {
		t.Errorf("read %d bytes, more than MaxUnzipped+1", p.unzipped)
	}
}

// TestBombReadsBounded checks how much is decompressed before a refusal.
func TestBombReadsBounded(t *testing.T) {
	lim := Limits{MaxUnzipped: 1 << 20}
	for name, z := range map[string][]byte{
		"honest":      bombZip(t, "bootstrap", 300<<20, 300<<20),
		"lying big":   bombZip(t, "bootstrap", 300<<20, 1<<50),
		"lying small": bombZip(t, "bootstrap", 300<<20, 1000),
		"many entries": buildZip(t, file("a", strings.Repeat("a", 600<<10)), file("b", strings.Repeat("b", 600<<10)),
			file("c", strings.Repeat("c", 600<<10))),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := newPlan(z, lim)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.readData(); !errors.Is(err, ErrUnzippedTooLarge) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("readData: %v", err)
			}
			if p.unzipped > lim.MaxUnzipped+1 {
				t.Errorf("read %d bytes, more than MaxUnzipped+1", p.unzipped)
			}
		})
	}
}

func TestDeflateZeros(t *testing.T) {
	for _, n := range []int64{0, 1, 2, 258, 259, 1000, 100000} {
		z := bombZip(t, "bootstrap", n, n)
		pkg, err := Validate(z, Limits{}, true)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if pkg.UnzippedSize != n {
			t.Errorf("n=%d: UnzippedSize = %d", n, pkg.UnzippedSize)
		}
	}
}

func TestCountEntries(t *testing.T) {
	many := func(n int) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		for i := range n {
			if _, err := w.CreateHeader(&zip.FileHeader{Name: fmt.Sprint(i), Method: zip.Store}); err != nil {
				t.Fatal(err)
			}
		}
		w.SetComment("a comment PK\x05\x06")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	zip64 := many(70000)
	sd := seeds(t)
	prefixed := append(bytes.Repeat([]byte("#!/bin/sh\n"), 100), sd["valid"]...)
	for name, z := range map[string][]byte{
		"valid": sd["valid"], "empty": buildZip(t), "comment": many(3), "prefixed": prefixed,
		"zip64": zip64,
	} {
		zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			t.Fatal(name, err)
		}
		if got := countEntries(z, 1<<30); got != len(zr.File) {
			t.Errorf("%s: countEntries = %d, want %d", name, got, len(zr.File))
		}
		if got := countEntries(z, 2); len(zr.File) > 2 && got != 3 {
			t.Errorf("%s: countEntries(max 2) = %d, want 3", name, got)
		}
	}
	_, err := Validate(zip64, Limits{}, false)
	checkUserError(t, err, ErrTooManyEntries)
}
