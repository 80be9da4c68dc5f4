package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/emberfn/ember/internal/codepkg"
	"github.com/emberfn/ember/internal/runtimes"
)

// sandboxOptDir is where a function's layers appear in its sandbox.
const sandboxOptDir = "/opt"

// MountTargets are the mount points of a function's sandbox (its code,
// its layers, and a runtime's files): the sandbox Manager's
// Config.MountTargets, so that every sandbox's root comes ready from its
// template.
var MountTargets = []string{runtimes.SandboxTaskDir, sandboxOptDir, runtimes.SandboxRuntimeDir}

// codeCache holds unpacked code packages, once per host and digest, shared
// read-only by every sandbox of that digest. Layers are packages too; the
// /opt of a function with several layers is a directory of its own, made
// once per host and ordered list of layer digests.
type codeCache struct {
	dir    string
	source CodeSource

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock serialises the making of one cache entry.
func (c *codeCache) lock(final string) func() {
	c.mu.Lock()
	l, ok := c.locks[final]
	if !ok {
		l = &sync.Mutex{}
		c.locks[final] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// path returns the unpacked package, fetching and unpacking it first if
// this host does not have it yet.
func (c *codeCache) path(ctx context.Context, account, sha string) (string, error) {
	final := filepath.Join(c.dir, account, sha)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	unlock := c.lock(final)
	defer unlock()
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
	return c.commit(tmp, final)
}

// commit makes the finished directory tmp the cache entry final.
func (c *codeCache) commit(tmp, final string) (string, error) {
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

// layersPath returns the directory to mount at /opt for a function whose
// layers have these digests, in the function's order: "" for none, the
// unpacked layer itself for one, and for more a directory holding every
// layer's files as if they were extracted one after the other (as Lambda
// does), a later layer's file, link or directory replacing an earlier
// one's at the same path. Files are hard links into the unpacked layers.
func (c *codeCache) layersPath(ctx context.Context, account string, digests []string) (string, error) {
	switch len(digests) {
	case 0:
		return "", nil
	case 1:
		return c.path(ctx, account, digests[0])
	}
	key := sha256.Sum256([]byte(strings.Join(digests, "\n")))
	final := filepath.Join(c.dir, account, "opt-"+hex.EncodeToString(key[:]))
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	srcs := make([]string, len(digests))
	for i, d := range digests {
		p, err := c.path(ctx, account, d)
		if err != nil {
			return "", err
		}
		srcs[i] = p
	}
	unlock := c.lock(final)
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, account), ".merge-")
	if err != nil {
		return "", err
	}
	for _, src := range srcs {
		if err := overlay(ctx, src, tmp); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("worker: merge layers: %w", err)
		}
	}
	return c.commit(tmp, final)
}

// overlay writes the tree src over the tree dst. src is an unpacked
// package (regular files, directories and links that stay inside it).
// The walk is parents first and every parent in dst is made a real
// directory before anything is written in it, so nothing is ever written
// through a link: an earlier layer's link is replaced, not followed.
func overlay(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		t := filepath.Join(dst, rel)
		have, err := os.Lstat(t)
		exists := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if d.IsDir() && exists && have.IsDir() {
			return nil // merge into it
		}
		if exists {
			if err := os.RemoveAll(t); err != nil {
				return err
			}
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(t, 0o755); err != nil {
				return err
			}
			return os.Chmod(t, 0o755) // beats the umask
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, t)
		case d.Type().IsRegular():
			if err := os.Link(p, t); err == nil {
				return nil
			}
			return copyFile(p, t)
		default:
			return fmt.Errorf("%s: unexpected file type %v", rel, d.Type())
		}
	})
}

// copyFile copies a regular file with its permissions, for when a hard
// link cannot be made.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if err := out.Chmod(st.Mode().Perm()); err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return err
}

// clear removes every unpacked package.
func (c *codeCache) clear() error { return os.RemoveAll(c.dir) }
