package codepkg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// extractor writes a checked plan into an empty directory. It walks the
// tree depth first holding each directory open, so every file is created
// by a single name relative to its parent's descriptor, with
// O_CREATE|O_EXCL|O_NOFOLLOW: nothing that already exists is opened, and no
// symbolic link is followed. A directory's links are created after all of
// its files and subdirectories, when nothing more is written below it.
type extractor struct {
	ctx     context.Context
	p       *plan
	top     *os.Root
	created []string // names created in top, removed on failure
}

func (p *plan) extract(ctx context.Context, top *os.Root) (err error) {
	x := &extractor{ctx: ctx, p: p, top: top}
	defer func() {
		if err != nil {
			err = x.cleanup(err)
		}
	}()
	for _, e := range p.entries {
		if e.n == nil { // a directory entry naming the root: checked, not written
			if err := p.checkDir(ctx, e.f); err != nil {
				return err
			}
		}
	}
	return x.dir(top, p.root)
}

// dir writes the children of n into the open directory r.
func (x *extractor) dir(r *os.Root, n *node) error {
	var links []*node
	for _, c := range n.kids {
		if err := x.ctx.Err(); err != nil {
			return fmt.Errorf("codepkg: extract: %w", err)
		}
		var err error
		switch c.kind {
		case kindDir:
			err = x.mkdir(r, c)
		case kindFile:
			err = x.file(r, c)
		case kindLink:
			links = append(links, c)
		}
		if err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := r.Symlink(l.target, l.name); err != nil {
			return fmt.Errorf("codepkg: extract: %w", err)
		}
		x.note(l)
	}
	return nil
}

func (x *extractor) mkdir(r *os.Root, n *node) error {
	if n.f != nil {
		if err := x.p.checkDir(x.ctx, n.f); err != nil {
			return err
		}
	}
	if err := r.Mkdir(n.name, 0o755); err != nil {
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	x.note(n)
	// Mkdir's mode is filtered by the umask; Chmod does not follow links.
	if err := r.Chmod(n.name, 0o755); err != nil {
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	sub, err := r.OpenRoot(n.name)
	if err != nil {
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	defer sub.Close()
	return x.dir(sub, n)
}

func (x *extractor) file(r *os.Root, n *node) (err error) {
	mode := fs.FileMode(0o644)
	if n.exec {
		mode = 0o755
	}
	f, err := r.OpenFile(n.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, mode)
	if err != nil {
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	x.note(n)
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("codepkg: extract: %w", cerr)
		}
	}()
	if err := f.Chmod(mode); err != nil { // on the descriptor: beats the umask
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	return x.p.copyEntry(x.ctx, n.f, f, -1)
}

// note records a name created directly in the top directory.
func (x *extractor) note(n *node) {
	if n.depth == 1 {
		x.created = append(x.created, n.name)
	}
}

// cleanup removes everything written; by then every descriptor below the
// top is closed. RemoveAll within a Root never follows symbolic links.
func (x *extractor) cleanup(err error) error {
	var errs []error
	for _, name := range x.created {
		if rerr := x.top.RemoveAll(name); rerr != nil {
			errs = append(errs, rerr)
		}
	}
	if len(errs) > 0 {
		return errors.Join(err, fmt.Errorf("codepkg: extract: cleaning up: %w", errors.Join(errs...)))
	}
	return err
}
