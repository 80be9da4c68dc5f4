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
	"testing"
)

var fuzzLimits = Limits{MaxZipped: 1 << 20, MaxUnzipped: 256 << 10, MaxEntries: 64}

// checkAnyUserError requires err to be nil or a refusal wrapping exactly
// one sentinel, with a message for users.
func checkAnyUserError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 || strings.HasPrefix(err.Error(), "codepkg:") {
		t.Fatalf("not a single user error: %v", err)
	}
}

// extractChecked extracts z into a fresh directory next to a canary and
// checks that nothing was written outside it, that a failure leaves it
// empty, and that a success holds only allowed modes and inner links.
func extractChecked(t *testing.T, z []byte) (string, error) {
	t.Helper()
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	if err := os.WriteFile(canary, []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Extract(context.Background(), z, dir, fuzzLimits)
	if names := dirNames(t, base); !slices.Equal(names, []string{"canary", "out"}) {
		t.Fatalf("written outside: %v", names)
	}
	if b, _ := os.ReadFile(canary); string(b) != "canary" {
		t.Fatalf("canary changed: %q", b)
	}
	if err != nil {
		checkAnyUserError(t, err)
		if names := dirNames(t, dir); len(names) != 0 {
			t.Fatalf("Extract failed (%v) and left %v", err, names)
		}
		return dir, err
	}
	real, rerr := filepath.EvalSymlinks(dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	werr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			if m != fs.ModeDir|0o755 {
				return fmt.Errorf("%s: mode %v", path, m)
			}
		case m.IsRegular():
			if m != 0o644 && m != 0o755 {
				return fmt.Errorf("%s: mode %v", path, m)
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				return fmt.Errorf("%s: absolute target %q", path, target)
			}
			if to, err := filepath.EvalSymlinks(path); err == nil && to != real && !strings.HasPrefix(to, real+string(filepath.Separator)) {
				return fmt.Errorf("%s -> %q resolves outside, to %s", path, target, to)
			}
		default:
			return fmt.Errorf("%s: mode %v", path, m)
		}
		return nil
	})
	if werr != nil {
		t.Fatal(werr)
	}
	return dir, nil
}

// checkCount requires countEntries to count what archive/zip parses: it
// guards memory before archive/zip allocates, and must not refuse a zip
// archive/zip reads as having few entries.
func checkCount(t *testing.T, data []byte) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		return
	}
	if got := countEntries(data, 1<<30); got != len(zr.File) {
		t.Fatalf("countEntries = %d, archive/zip parsed %d", got, len(zr.File))
	}
}

func addSeeds(f *testing.F) {
	for _, z := range seeds(f) {
		f.Add(z)
	}
}

func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		pkg, err := Validate(data, fuzzLimits, false)
		checkAnyUserError(t, err)
		checkCount(t, data)
		_, berr := Validate(data, fuzzLimits, true)
		checkAnyUserError(t, berr)
		if err != nil {
			if berr == nil {
				t.Fatalf("Validate with bootstrap passed, without failed: %v", err)
			}
			return
		}
		if berr != nil && !errors.Is(berr, ErrNoBootstrap) {
			t.Fatalf("bootstrap check failed with %v", berr)
		}
		if pkg.Size != int64(len(data)) || pkg.UnzippedSize > fuzzLimits.MaxUnzipped || pkg.Entries > fuzzLimits.MaxEntries {
			t.Fatalf("pkg = %+v", pkg)
		}
		if _, err := extractChecked(t, data); err != nil {
			t.Fatalf("Validate passed, Extract failed: %v", err)
		}
	})
}

func FuzzExtract(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := extractChecked(t, data)
		_, verr := Validate(data, fuzzLimits, false)
		if (err == nil) != (verr == nil) {
			t.Fatalf("Extract: %v; Validate: %v", err, verr)
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CODEPKG_WRITE_CORPUS") == "" {
		t.Skip("set CODEPKG_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for _, fuzzer := range []string{"FuzzValidate", "FuzzExtract"} {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, z := range seeds(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", z)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
