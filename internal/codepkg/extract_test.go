//go:build unix

package codepkg

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// got describes what a directory holds: mode (type and permissions) and
// content or link target, by slash-separated relative name.
type got struct {
	mode fs.FileMode
	data string
}

func readTree(t *testing.T, dir string) map[string]got {
	t.Helper()
	tree := map[string]got{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		g := got{mode: info.Mode()}
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			g.data = string(b)
		case info.Mode()&fs.ModeSymlink != 0:
			g.mode = fs.ModeSymlink
			if g.data, err = os.Readlink(path); err != nil {
				return err
			}
		}
		tree[filepath.ToSlash(rel)] = g
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestExtract(t *testing.T) {
	old := syscall.Umask(0o077) // modes must not depend on the umask
	defer syscall.Umask(old)
	z := buildZip(t,
		exe("bootstrap", "#!/bin/sh\necho hi\n"),
		file("lib/a.txt", "hello"),
		ent{"lib/private", 0o600, "p"},
		ent{"lib/suid", fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o750, "s"},
		ent{"win.txt", 0, "w"},
		ent{"windir/", 0, ""},
		dir("empty/"),
		dir("deep/"), file("deep/er/x", "x"),
		link("lib/cur", "a.txt"),
		link("run", "bootstrap"),
		link("dangling", "nothere"),
		link("libdir", "lib"),
		file(`back\slash`, "b"),
	)
	dir := t.TempDir()
	if err := Extract(context.Background(), z, dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]got{
		"bootstrap":   {0o755, "#!/bin/sh\necho hi\n"},
		"lib":         {fs.ModeDir | 0o755, ""},
		"lib/a.txt":   {0o644, "hello"},
		"lib/private": {0o644, "p"},
		"lib/suid":    {0o755, "s"},
		"win.txt":     {0o755, "w"},
		"windir":      {fs.ModeDir | 0o755, ""},
		"empty":       {fs.ModeDir | 0o755, ""},
		"deep":        {fs.ModeDir | 0o755, ""},
		"deep/er":     {fs.ModeDir | 0o755, ""},
		"deep/er/x":   {0o644, "x"},
		"lib/cur":     {fs.ModeSymlink, "a.txt"},
		"run":         {fs.ModeSymlink, "bootstrap"},
		"dangling":    {fs.ModeSymlink, "nothere"},
		"libdir":      {fs.ModeSymlink, "lib"},
		`back\slash`:  {0o644, "b"},
	}
	tree := readTree(t, dir)
	for name, w := range want {
		if g, ok := tree[name]; !ok {
			t.Errorf("%s: missing", name)
		} else if g != w {
			t.Errorf("%s: got %v %q, want %v %q", name, g.mode, g.data, w.mode, w.data)
		}
	}
	for name := range tree {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: unexpected", name)
		}
	}
}

// emptyDir makes base/out and returns it; checkClean checks that out is
// empty and that base holds nothing else.
func emptyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func checkClean(t *testing.T, dir string) {
	t.Helper()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("%s not empty after a failed Extract: %v", dir, names)
	}
	if names := dirNames(t, filepath.Dir(dir)); !slices.Equal(names, []string{"out"}) {
		t.Errorf("written outside %s: %v", dir, names)
	}
}

// goodThenBad is a package whose first entries are fine and whose last
// entry fails only once its data is read.
func goodThenBad(t *testing.T, last func(w *zip.Writer)) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for i := range 20 {
		h := &zip.FileHeader{Name: fmt.Sprintf("d%d/f%d", i%3, i), Method: zip.Deflate}
		h.SetMode(0o644)
		fw, err := w.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(strings.Repeat("data", 1000)))
	}
	h := &zip.FileHeader{Name: "l"}
	h.SetMode(fs.ModeSymlink | 0o777)
	fw, _ := w.CreateHeader(h)
	fw.Write([]byte("d0"))
	last(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractHostileLeavesDirEmpty(t *testing.T) {
	lim := Limits{MaxUnzipped: 256 << 10}
	cases := map[string][]byte{
		"late bad CRC": goodThenBad(t, func(w *zip.Writer) {
			h := &zip.FileHeader{Name: "z", Method: zip.Store, CRC32: 42, CompressedSize64: 4, UncompressedSize64: 4}
			fw, _ := w.CreateRaw(h)
			fw.Write([]byte("data"))
		}),
		"late bomb": goodThenBad(t, func(w *zip.Writer) {
			data := deflateZeros(1 << 30)
			h := &zip.FileHeader{Name: "z", Method: zip.Deflate, CRC32: 1, CompressedSize64: uint64(len(data)), UncompressedSize64: 1 << 30}
			fw, _ := w.CreateRaw(h)
			fw.Write(data)
		}),
		"late dir with data": goodThenBad(t, func(w *zip.Writer) {
			h := &zip.FileHeader{Name: "zdir", Method: zip.Store, CRC32: 0xd87f7e0c, CompressedSize64: 4, UncompressedSize64: 4}
			h.SetMode(fs.ModeDir | 0o755)
			fw, _ := w.CreateRaw(h)
			fw.Write([]byte("test"))
		}),
	}
	for name, z := range seeds(t) {
		if !strings.HasPrefix(name, "valid") {
			cases["seed "+name] = z
		}
	}
	for name, z := range cases {
		t.Run(name, func(t *testing.T) {
			dir := emptyDir(t)
			err := Extract(context.Background(), z, dir, lim)
			if err == nil {
				t.Fatal("Extract succeeded")
			}
			_, verr := Validate(z, lim, false)
			for _, s := range sentinels {
				if errors.Is(verr, s) && !errors.Is(err, s) {
					t.Errorf("Extract: %v; Validate: %v", err, verr)
				}
			}
			checkClean(t, dir)
		})
	}
}

func TestExtractPreexistingSymlink(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	target := filepath.Join(outside, "target")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, z := range [][]byte{
		buildZip(t, exe("bootstrap", "evil"), file("lib/x", "evil")),
		buildZip(t, file("lib/x", "evil"), exe("bootstrap", "evil")),
	} {
		dir := filepath.Join(base, fmt.Sprint("out", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "bootstrap")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, "lib")); err != nil {
			t.Fatal(err)
		}
		if err := Extract(context.Background(), z, dir, Limits{}); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Extract into a non-empty dir: %v, want ErrExist", err)
		}
		// Even past the emptiness check, nothing is written through a link.
		p, err := newPlan(z, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.extract(context.Background(), root); !errors.Is(err, fs.ErrExist) {
			t.Errorf("extract over links: %v, want ErrExist", err)
		}
		root.Close()
		if b, _ := os.ReadFile(target); string(b) != "original" {
			t.Errorf("target overwritten: %q", b)
		}
		if names := dirNames(t, outside); !slices.Equal(names, []string{"target"}) {
			t.Errorf("written through the link: %v", names)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"bootstrap", "lib"}) {
			t.Errorf("dir holds %v, want the two links left alone", names)
		}
	}
}

// countdown is a context cancelled after n calls of Err.
type countdown struct {
	context.Context
	n atomic.Int64
}

func (c *countdown) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestExtractCancel(t *testing.T) {
	z := goodThenBad(t, func(*zip.Writer) {})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := emptyDir(t)
	if err := Extract(ctx, z, dir, Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	checkClean(t, dir)

	for _, n := range []int64{5, 20, 40} {
		cd := &countdown{Context: context.Background()}
		cd.n.Store(n)
		dir := emptyDir(t)
		if err := Extract(cd, z, dir, Limits{}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled after %d checks: %v", n, err)
		}
		checkClean(t, dir)
	}
}

func TestExtractDirErrors(t *testing.T) {
	z := seeds(t)["valid"]
	err := Extract(context.Background(), z, filepath.Join(t.TempDir(), "missing"), Limits{})
	if err == nil {
		t.Error("Extract into a missing dir succeeded")
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			t.Errorf("missing dir: %v is a user error", err)
		}
	}
}

// TestValidateExtractAgree checks both ways on every seed.
func TestValidateExtractAgree(t *testing.T) {
	for name, z := range seeds(t) {
		_, verr := Validate(z, fuzzLimits, false)
		_, eerr := extractChecked(t, z)
		if (verr == nil) != (eerr == nil) {
			t.Errorf("%s: Validate: %v; Extract: %v", name, verr, eerr)
		}
		if strings.HasPrefix(name, "valid") && verr != nil {
			t.Errorf("%s: %v", name, verr)
		}
	}
}
