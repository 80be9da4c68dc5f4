package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/emberfn/ember/internal/codepkg"
)

// codeCache holds unpacked code packages, once per host and digest, shared
// read-only by every sandbox of that digest.
type codeCache struct {
	dir    string
	source CodeSource

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// path returns the unpacked package, fetching and unpacking it first if
// this host does not have it yet.
func (c *codeCache) path(ctx context.Context, account, sha string) (string, error) {
	final := filepath.Join(c.dir, account, sha)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	c.mu.Lock()
	l, ok := c.locks[final]
	if !ok {
		l = &sync.Mutex{}
		c.locks[final] = l
	}
	c.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	rc, size, err := c.source.GetCode(ctx, account, sha)
	if err != nil {
		return "", fmt.Errorf("worker: fetch code %s: %w", sha, err)
	}
	zip, err := io.ReadAll(io.LimitReader(rc, size+1))
	rc.Close()
	if err != nil {
		return "", fmt.Errorf("worker: fetch code %s: %w", sha, err)
	}
	if err := os.MkdirAll(filepath.Join(c.dir, account), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, account), ".unpack-")
	if err != nil {
		return "", err
	}
	// Extract re-checks every rule of the package while it writes.
	if err := codepkg.Extract(ctx, zip, tmp, codepkg.DefaultLimits()); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("worker: unpack code %s: %w", sha, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil && !errors.Is(err, os.ErrExist) {
		os.RemoveAll(tmp)
		return "", err
	}
	return final, nil
}

// clear removes every unpacked package.
func (c *codeCache) clear() error { return os.RemoveAll(c.dir) }
