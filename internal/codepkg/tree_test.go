//go:build unix

package codepkg

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// treeZip builds a zip from a spec of one entry a line, "TNAME" or
// "TNAME|BODY", where T is f (mode 0644), x (0755), w (no Unix mode),
// d (directory) or l (symbolic link to BODY). Fuzzing a spec rather than
// zip bytes explores names and links, whose data a CRC otherwise guards.
func treeZip(spec string) ([]byte, bool) {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for line := range strings.SplitSeq(spec, "\n") {
		if len(line) < 2 {
			continue
		}
		name, body, _ := strings.Cut(line[1:], "|")
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		switch line[0] {
		case 'f':
			h.SetMode(0o644)
		case 'x':
			h.SetMode(0o755)
		case 'w':
		case 'd':
			h.SetMode(fs.ModeDir | 0o755)
			body = ""
		case 'l':
			h.SetMode(fs.ModeSymlink | 0o777)
		default:
			continue
		}
		fw, err := w.CreateHeader(h)
		if err != nil {
			return nil, false
		}
		if _, err := fw.Write([]byte(body)); err != nil {
			return nil, false
		}
	}
	if err := w.Close(); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// treeSeeds are specs of valid and hostile trees.
var treeSeeds = []string{
	"xbootstrap|#!/bin/sh\nflib/a|a\nllib/b|a\nlc|lib/b",
	"da/b/\nll|a/b\nlm|l/../x\nlbootstrap|m",
	"ls|.\nlt|s/..",
	"dsub/\nla|sub\nlsub/b|../..",
	"la|b\nlb|a",
	"ls|.\nlbootstrap|" + strings.Repeat("s/", 39) + "x\nxx|y",
	"ls|.\nlbootstrap|" + strings.Repeat("s/", 40) + "x\nxx|y",
	"wbootstrap|x\nwd/\nld/l|../bootstrap",
	"xbin/real|x\nlbootstrap|bin/../bin/real",
	"fbootstrap|x\nla\\b|..\\x",
}

func TestTreeSeeds(t *testing.T) {
	want := []error{nil, ErrNoBootstrap, ErrLinkOutside, ErrLinkOutside, ErrLinkOutside, nil, ErrLinkOutside, nil, nil, ErrLinkOutside}
	for i, spec := range treeSeeds {
		z, ok := treeZip(spec)
		if !ok {
			t.Fatalf("seed %d: no zip", i)
		}
		_, err := Validate(z, Limits{}, true)
		if want[i] == nil && err != nil {
			t.Errorf("seed %d: %v", i, err)
		} else if want[i] != nil {
			checkUserError(t, err, want[i])
		}
	}
}

// inodes returns the inodes of dir and of everything below it.
func inodes(t *testing.T, dir string) map[[2]uint64]bool {
	t.Helper()
	set := map[[2]uint64]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		set[[2]uint64{uint64(st.Dev), uint64(st.Ino)}] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// FuzzTree checks Validate's view of names and links against the kernel's:
// after Extract, every link resolves (if at all) to something inside the
// package and without ELOOP, and bootstrap is an executable file exactly
// when Validate says so.
func FuzzTree(f *testing.F) {
	for _, s := range treeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		z, ok := treeZip(spec)
		if !ok {
			t.Skip()
		}
		_, verr := Validate(z, fuzzLimits, false)
		checkAnyUserError(t, verr)
		_, berr := Validate(z, fuzzLimits, true)
		dir, eerr := extractChecked(t, z)
		if (verr == nil) != (eerr == nil) {
			t.Fatalf("Validate: %v; Extract: %v", verr, eerr)
		}
		if verr != nil {
			return
		}
		inside := inodes(t, dir)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			info, err := os.Stat(path)
			if errors.Is(err, syscall.ELOOP) {
				t.Fatalf("%s: ELOOP", path)
			}
			if err == nil {
				st := info.Sys().(*syscall.Stat_t)
				if !inside[[2]uint64{uint64(st.Dev), uint64(st.Ino)}] {
					t.Fatalf("%s resolves outside the package", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(dir, "bootstrap"))
		runnable := err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
		if runnable != (berr == nil) {
			t.Fatalf("bootstrap runnable %v (%v), Validate: %v", runnable, err, berr)
		}
	})
}

// TestLinkCountMatchesKernel checks the 40-link limit against Linux's,
// which counts links followed one after another too.
func TestLinkCountMatchesKernel(t *testing.T) {
	for _, n := range []int{38, 39, 40, 41} {
		target := strings.Repeat("s/", n) + "x"
		z := buildZip(t, exe("x", "x"), link("s", "."), link("bootstrap", target))
		_, verr := Validate(z, Limits{}, true)
		dir := t.TempDir()
		if err := os.Symlink(".", filepath.Join(dir, "s")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "bootstrap")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, kerr := os.Stat(filepath.Join(dir, "bootstrap"))
		if (verr == nil) != (kerr == nil) {
			t.Errorf("%d links: Validate: %v; kernel: %v", n+1, verr, kerr)
		}
		if verr != nil {
			checkUserError(t, verr, ErrLinkOutside)
		}
	}
}
