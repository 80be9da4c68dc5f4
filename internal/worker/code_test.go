package worker

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/store"
)

type memCode map[string][]byte // account/sha -> zip

func (m memCode) GetCode(_ context.Context, account, sha string) (io.ReadCloser, int64, error) {
	b, ok := m[account+"/"+sha]
	if !ok {
		return nil, 0, os.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

type entry struct {
	name, body string
	link       bool
}

func (m memCode) put(t *testing.T, account string, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name}
		h.SetMode(0o644)
		if e.link {
			h.SetMode(os.ModeSymlink | 0o777)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	sha := hex.EncodeToString(sum[:])
	m[account+"/"+sha] = buf.Bytes()
	return sha
}

// Several layers make one /opt in order: a later layer's file, link or
// directory replaces an earlier one's, directories merge, and nothing is
// written through an earlier layer's link.
func TestLayersPathMergesInOrder(t *testing.T) {
	ctx := context.Background()
	src := memCode{}
	a := src.put(t, "acct",
		entry{name: "python/shared.py", body: "A"},
		entry{name: "python/only_a.py", body: "a"},
		entry{name: "bin/tool", body: "a-tool"},
		entry{name: "lib", body: "python", link: true},
		entry{name: "data/x", body: "a-x"})
	b := src.put(t, "acct",
		entry{name: "python/shared.py", body: "B"},
		entry{name: "python/only_b.py", body: "b"},
		entry{name: "bin", body: "python", link: true}, // a link replaces a directory
		entry{name: "lib/real.txt", body: "b-real"},    // a directory replaces a link
		entry{name: "data", body: "a file now"})        // a file replaces a directory
	c := &codeCache{dir: t.TempDir(), source: src, locks: map[string]*sync.Mutex{}}

	if p, err := c.layersPath(ctx, "acct", nil); err != nil || p != "" {
		t.Fatalf("no layers: %q %v", p, err)
	}
	one, err := c.layersPath(ctx, "acct", []string{a})
	if err != nil || one != filepath.Join(c.dir, "acct", a) {
		t.Fatalf("one layer: %q %v", one, err)
	}
	var dirs [2]string
	for i := range dirs {
		if dirs[i], err = c.layersPath(ctx, "acct", []string{a, b}); err != nil {
			t.Fatal(err)
		}
	}
	if dirs[0] != dirs[1] {
		t.Fatalf("the same layers merged twice: %s, %s", dirs[0], dirs[1])
	}
	opt := dirs[0]
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(opt, rel))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	for rel, want := range map[string]string{
		"python/shared.py": "B", "python/only_a.py": "a", "python/only_b.py": "b",
		"lib/real.txt": "b-real", "data": "a file now", "bin/shared.py": "B",
	} {
		if got := read(rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(opt, "lib")); err != nil || !fi.IsDir() {
		t.Errorf("lib is %v %v, want a real directory", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(opt, "bin")); err != nil || target != "python" {
		t.Errorf("bin -> %q %v", target, err)
	}
	// The unpacked layer a is untouched: nothing was written through its
	// link "lib" (into its python directory).
	if _, err := os.Stat(filepath.Join(c.dir, "acct", a, "python", "real.txt")); !os.IsNotExist(err) {
		t.Errorf("written through a link into layer a: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(c.dir, "acct", a, "python", "shared.py")); string(got) != "A" {
		t.Errorf("layer a's own file changed: %q", got)
	}
	if fi, err := os.Stat(opt); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("merged directory mode: %v %v", fi, err)
	}
	// The other order is another /opt.
	other, err := c.layersPath(ctx, "acct", []string{b, a})
	if err != nil || other == opt {
		t.Fatalf("b then a: %q %v", other, err)
	}
	if got, _ := os.ReadFile(filepath.Join(other, "python", "shared.py")); string(got) != "A" {
		t.Errorf("b then a: shared.py = %q, want A", got)
	}
	// A layer missing from the store is an error and leaves nothing.
	if _, err := c.layersPath(ctx, "acct", []string{a, "00"}); err == nil {
		t.Fatal("a missing layer merged")
	}
	ents, _ := filepath.Glob(filepath.Join(c.dir, "acct", ".*"))
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// countingCode is a code source that counts its fetches and holds each
// until release is closed, so that every caller is waiting at once.
type countingCode struct {
	memCode
	fetches atomic.Int32
	release chan struct{}
}

func (c *countingCode) GetCode(ctx context.Context, account, sha string) (io.ReadCloser, int64, error) {
	c.fetches.Add(1)
	<-c.release
	return c.memCode.GetCode(ctx, account, sha)
}

// A package is fetched and unpacked once per host and digest, however many
// sandboxes ask for it at once; all of them get the one directory.
func TestCodeUnpackedOncePerDigest(t *testing.T) {
	src := &countingCode{memCode: memCode{}, release: make(chan struct{})}
	sha := src.put(t, "acct", entry{name: "bootstrap", body: "#!/bin/sh\n"}, entry{name: "lib/x.txt", body: "x"})
	c := &codeCache{dir: t.TempDir(), source: src, locks: map[string]*sync.Mutex{}}
	const n = 16
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = c.path(context.Background(), "acct", sha)
		}()
	}
	// Let the callers pile up behind the first fetch, then let it finish.
	deadline := time.Now().Add(10 * time.Second)
	for src.fetches.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fetch started")
		}
		time.Sleep(time.Millisecond)
	}
	close(src.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if paths[i] != paths[0] {
			t.Fatalf("caller %d got %s, caller 0 %s", i, paths[i], paths[0])
		}
	}
	if f := src.fetches.Load(); f != 1 {
		t.Fatalf("%d fetches of one digest, want 1", f)
	}
	if got, err := os.ReadFile(filepath.Join(paths[0], "lib", "x.txt")); err != nil || string(got) != "x" {
		t.Fatalf("unpacked file: %q %v", got, err)
	}
	// One directory in the cache: the package itself, no leftovers of
	// other unpacks.
	ents, err := os.ReadDir(filepath.Join(c.dir, "acct"))
	if err != nil || len(ents) != 1 || ents[0].Name() != sha {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("cache holds %v (%v), want just %s", names, err, sha)
	}
	// Later callers find it without fetching.
	if p, err := c.path(context.Background(), "acct", sha); err != nil || p != paths[0] || src.fetches.Load() != 1 {
		t.Fatalf("warm: %s %v, %d fetches", p, err, src.fetches.Load())
	}
}

// A Go function's GOMAXPROCS is its CPU share (1,769 MB a CPU), rounded
// up, at most the host's CPUs, unless it sets its own.
func TestGoMaxProcs(t *testing.T) {
	cpus := runtime.NumCPU()
	for mem, want := range map[int]int{128: 1, 1769: 1, 1770: min(2, cpus), 3538: min(2, cpus), 10240: min(6, cpus)} {
		if got := goMaxProcs(mem); got != want {
			t.Errorf("%d MB: GOMAXPROCS %d, want %d", mem, got, want)
		}
	}
	w := &Worker{}
	has := func(env []string, kv string) bool { return slices.Contains(env, kv) }
	env := w.environment(&store.Function{Name: "f", MemorySize: 128}, "s")
	if !has(env, "GOMAXPROCS=1") {
		t.Errorf("no GOMAXPROCS=1 in %v", env)
	}
	env = w.environment(&store.Function{Name: "f", MemorySize: 128, Environment: map[string]string{"GOMAXPROCS": "4"}}, "s")
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			n++
		}
	}
	if !has(env, "GOMAXPROCS=4") || n != 1 {
		t.Errorf("the function's own GOMAXPROCS=4 not kept alone: %v", env)
	}
}
