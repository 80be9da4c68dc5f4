package codepkg

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"sync"
)

const (
	maxNameLen      = 4000 // bytes in an entry name, so /var/task/NAME fits PATH_MAX
	maxComponentLen = 255  // bytes in one component of a name (NAME_MAX)
	maxDepth        = 128  // components in an entry name; Extract holds one open directory per level
	maxLinkTarget   = 4095 // bytes in a symbolic link target (PATH_MAX-1)
	maxLinks        = 40   // symbolic links followed to resolve one (Linux's MAXSYMLINKS)
)

// kind is the type of a node of the package's tree.
type kind uint8

const (
	kindDir kind = iota
	kindFile
	kindLink
)

type linkState uint8

const (
	unresolved linkState = iota
	resolving
	resolved
)

// node is a directory, regular file or symbolic link of the package.
type node struct {
	name     string
	parent   *node // nil for the root
	depth    int   // components from the root; the root is 0
	kind     kind
	explicit bool      // named by a zip entry, not only implied by a longer name
	f        *zip.File // the entry, if explicit
	exec     bool      // regular files: written with mode 0755
	kids     []*node   // in the order the zip names them
	index    map[string]*node

	// Symbolic links only.
	target   string
	state    linkState
	res      *node // what the link resolves to; nil if it dangles
	resDepth int   // the depth where a dangling resolution ended
	follows  int   // links followed to resolve it, itself included (at most maxLinks+1)
}

func (n *node) child(name string) *node { return n.index[name] }

func (n *node) add(name string, k kind) *node {
	c := &node{name: name, parent: n, depth: n.depth + 1, kind: k}
	if n.index == nil {
		n.index = make(map[string]*node)
	}
	n.index[name] = c
	n.kids = append(n.kids, c)
	return c
}

// path is the node's cleaned name in the package.
func (n *node) path() string {
	if n.parent == nil {
		return "."
	}
	if n.parent.parent == nil {
		return n.name
	}
	return n.parent.path() + "/" + n.name
}

// entry is a zip entry and the node it names (nil if it names the root).
type entry struct {
	f *zip.File
	n *node
}

// plan is a parsed package whose metadata passed every check; its data is
// checked while it is read.
type plan struct {
	lim      Limits
	zr       *zip.Reader
	root     *node
	entries  []entry // in zip order
	links    []*node
	unzipped int64 // decompressed bytes so far, over all entries
}

// newPlan parses the zip and checks everything but the entries' data.
func newPlan(data []byte, lim Limits) (*plan, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxZipped {
		return nil, refuse(ErrTooLarge, "Zipped size must be smaller than %d bytes", lim.MaxZipped)
	}
	if countEntries(data, lim.MaxEntries) > lim.MaxEntries {
		return nil, tooMany(lim)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		return nil, corrupt(err, "not a valid zip file")
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, tooMany(lim)
	}
	p := &plan{lim: lim, zr: zr, root: &node{kind: kindDir, explicit: true}, entries: make([]entry, 0, len(zr.File))}
	for _, f := range zr.File {
		if err := p.add(f); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func tooMany(lim Limits) error {
	return refuse(ErrTooManyEntries, "The deployment package must not contain more than %d files, directories and links.", lim.MaxEntries)
}

func unsafeName(name, why string) error {
	return refuse(ErrUnsafePath, "The deployment package contains an unsafe file name %s: %s.", quote(name), why)
}

// add checks one entry's metadata and places it in the tree.
func (p *plan) add(f *zip.File) error {
	const encrypted = 0x1 | 0x40 | 0x2000 // encrypted, strong encryption, encrypted directory
	if f.Flags&encrypted != 0 {
		return corrupt(nil, "entry %s is encrypted", quote(f.Name))
	}
	if f.Method != zip.Store && f.Method != zip.Deflate {
		return corrupt(zip.ErrAlgorithm, "entry %s uses unsupported compression method %d", quote(f.Name), f.Method)
	}
	k, exec, err := classify(f)
	if err != nil {
		return err
	}
	comps, err := splitName(f.Name)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		if k != kindDir {
			return unsafeName(f.Name, "it names the package's root")
		}
		p.entries = append(p.entries, entry{f: f})
		return nil
	}
	n, err := p.insert(f.Name, comps, k)
	if err != nil {
		return err
	}
	n.f, n.exec = f, exec
	if k == kindLink {
		p.links = append(p.links, n)
	}
	p.entries = append(p.entries, entry{f: f, n: n})
	return nil
}

// Unix file types in the high 16 bits of a zip's external attributes.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
)

// classify returns an entry's type and whether it is an executable file.
func classify(f *zip.File) (kind, bool, error) {
	slash := strings.HasSuffix(f.Name, "/")
	creator := f.CreatorVersion >> 8
	mode := f.ExternalAttrs >> 16
	if (creator == 3 || creator == 19) && mode != 0 { // Unix or OS X with a recorded mode
		special := func(what string) error {
			return refuse(ErrSpecialFile, "The deployment package contains %s, which is %s; only regular files, directories and symbolic links are allowed.", quote(f.Name), what)
		}
		switch mode & sIFMT {
		case sIFDIR:
			return kindDir, false, nil
		case sIFLNK:
			if slash {
				return 0, false, corrupt(nil, "entry %s is a symbolic link with a directory's name", quote(f.Name))
			}
			return kindLink, false, nil
		case sIFREG, 0:
			if slash {
				return kindDir, false, nil
			}
			return kindFile, mode&0o111 != 0, nil
		case sIFCHR, sIFBLK:
			return 0, false, special("a device")
		case sIFIFO:
			return 0, false, special("a named pipe")
		case sIFSOCK:
			return 0, false, special("a socket")
		default:
			return 0, false, special("of an unknown type")
		}
	}
	// No Unix mode: MS-DOS attributes, where 0x10 marks a directory. Such
	// files count as executable, like Lambda does.
	if slash || f.ExternalAttrs&0x10 != 0 {
		return kindDir, false, nil
	}
	return kindFile, true, nil
}

// splitName checks an entry name and returns its cleaned components; none
// means the root.
func splitName(name string) ([]string, error) {
	switch {
	case name == "":
		return nil, unsafeName(name, "it is empty")
	case len(name) > maxNameLen:
		return nil, unsafeName(name, fmt.Sprintf("it is longer than %d bytes", maxNameLen))
	case strings.IndexByte(name, 0) >= 0:
		return nil, unsafeName(name, "it contains a NUL byte")
	case isAbs(name):
		return nil, unsafeName(name, "it is absolute")
	}
	for c := range strings.FieldsFuncSeq(name, isSep) {
		if c == ".." {
			return nil, unsafeName(name, `it contains a ".." component`)
		}
	}
	comps := make([]string, 0, strings.Count(name, "/")+1)
	for c := range strings.SplitSeq(name, "/") {
		if c == "" || c == "." {
			continue
		}
		if len(c) > maxComponentLen {
			return nil, unsafeName(name, fmt.Sprintf("a component is longer than %d bytes", maxComponentLen))
		}
		comps = append(comps, c)
	}
	if len(comps) > maxDepth {
		return nil, unsafeName(name, fmt.Sprintf("it is nested more than %d levels deep", maxDepth))
	}
	return comps, nil
}

// isSep reports a path separator, reading "\" as one too (Windows' view).
func isSep(r rune) bool { return r == '/' || r == '\\' }

// isAbs reports a name that is absolute on Unix or Windows.
func isAbs(s string) bool {
	if s != "" && isSep(rune(s[0])) {
		return true
	}
	return len(s) >= 2 && s[1] == ':' && ('a' <= s[0]|0x20 && s[0]|0x20 <= 'z')
}

// insert adds the entry's node, creating implied parent directories.
func (p *plan) insert(name string, comps []string, k kind) (*node, error) {
	cur := p.root
	for _, c := range comps[:len(comps)-1] {
		next := cur.child(c)
		switch {
		case next == nil:
			next = cur.add(c, kindDir)
		case next.kind == kindFile:
			return nil, bothFileAndDir(next)
		case next.kind == kindLink:
			return nil, unsafeName(name, "its path goes through the symbolic link "+quote(next.path()))
		}
		cur = next
	}
	last := comps[len(comps)-1]
	n := cur.child(last)
	switch {
	case n == nil:
		n = cur.add(last, k)
	case n.explicit:
		return nil, refuse(ErrDuplicate, "The deployment package contains %s more than once.", quote(n.path()))
	case k == kindDir:
	case k == kindLink:
		return nil, unsafeName(n.path(), "it is a symbolic link and other entries' paths go through it")
	default:
		return nil, bothFileAndDir(n)
	}
	n.explicit = true
	return n, nil
}

func bothFileAndDir(n *node) error {
	return refuse(ErrDuplicate, "The deployment package contains %s both as a file and as a directory.", quote(n.path()))
}

// readLinks reads the targets of the symbolic links.
func (p *plan) readLinks(ctx context.Context) error {
	var buf bytes.Buffer
	for _, l := range p.links {
		buf.Reset()
		err := p.copyEntry(ctx, l.f, &buf, maxLinkTarget)
		if err == errEntryLimit {
			return unsafeLink(l, fmt.Sprintf("its target is longer than %d bytes", maxLinkTarget))
		}
		if err != nil {
			return err
		}
		l.target = buf.String()
		if l.target == "" {
			return unsafeLink(l, "its target is empty")
		}
		if strings.IndexByte(l.target, 0) >= 0 {
			return unsafeLink(l, "its target contains a NUL byte")
		}
	}
	return nil
}

func unsafeLink(l *node, why string) error {
	return refuse(ErrUnsafePath, "The symbolic link %s in the deployment package is unsafe: %s.", quote(l.path()), why)
}

func linkOutside(l *node, why string) error {
	return refuse(ErrLinkOutside, "The symbolic link %s in the deployment package points to %s, %s.", quote(l.path()), quote(l.target), why)
}

// checkLinks checks that every symbolic link stays inside the package, both
// lexically and when resolved through the package's tree.
func (p *plan) checkLinks() error {
	for _, l := range p.links {
		if isAbs(l.target) {
			return linkOutside(l, "an absolute path")
		}
		if lexicalEscape(l.depth-1, l.target, func(r rune) bool { return r == '/' }) ||
			lexicalEscape(l.depth-1, l.target, isSep) {
			return linkOutside(l, "outside the package")
		}
	}
	for _, l := range p.links {
		if _, _, err := p.resolve(l, 0); err != nil {
			return err
		}
	}
	return nil
}

// lexicalEscape reports whether target, relative to a directory depth
// components below the root, climbs above the root.
func lexicalEscape(depth int, target string, sep func(rune) bool) bool {
	for c := range strings.FieldsFuncSeq(target, sep) {
		switch c {
		case ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// resolve resolves the link l as the kernel would, within the package; nest
// is the number of links whose resolution is in progress. It returns the
// node l points to, or nil and the depth where a dangling path ended. Like
// Linux, it counts every link followed, nested or one after the other.
func (p *plan) resolve(l *node, nest int) (*node, int, error) {
	switch l.state {
	case resolved:
		return l.res, l.resDepth, nil
	case resolving:
		return nil, 0, linkOutside(l, "which loops")
	}
	if nest >= maxLinks {
		return nil, 0, tooManyLinks(l)
	}
	l.state = resolving
	res, depth, follows, err := p.walk(l, nest+1)
	if err != nil {
		return nil, 0, err
	}
	l.state, l.res, l.resDepth, l.follows = resolved, res, depth, follows+1
	if l.follows > maxLinks {
		return nil, 0, tooManyLinks(l)
	}
	return res, depth, nil
}

func tooManyLinks(l *node) error {
	return linkOutside(l, fmt.Sprintf("which loops or follows more than %d links", maxLinks))
}

// walk follows l's target from l's directory. Past a missing name or a
// file, the rest of the path is followed lexically, so that a dangling link
// cannot climb out either. follows counts the links followed (capped just
// past maxLinks).
func (p *plan) walk(l *node, nest int) (res *node, depth, follows int, err error) {
	cur := l.parent
	dangling := false
	for c := range strings.SplitSeq(l.target, "/") {
		if c == "" || c == "." {
			continue
		}
		if !dangling && cur.kind != kindDir {
			dangling, depth = true, cur.depth
		}
		if dangling {
			if c != ".." {
				depth++
			} else if depth--; depth < 0 {
				return nil, 0, 0, linkOutside(l, "outside the package")
			}
			continue
		}
		if c == ".." {
			if cur.parent == nil {
				return nil, 0, 0, linkOutside(l, "outside the package")
			}
			cur = cur.parent
			continue
		}
		next := cur.child(c)
		if next == nil {
			dangling, depth = true, cur.depth+1
			continue
		}
		if next.kind == kindLink {
			r, d, err := p.resolve(next, nest)
			if err != nil {
				return nil, 0, 0, err
			}
			follows = min(follows+next.follows, maxLinks+1)
			if r == nil {
				dangling, depth = true, d
				continue
			}
			next = r
		}
		cur = next
	}
	if dangling {
		return nil, depth, follows, nil
	}
	return cur, cur.depth, follows, nil
}

// checkBootstrap requires an executable file, or a link to one, named
// bootstrap at the root. checkLinks must have run.
func (p *plan) checkBootstrap() error {
	const msg = "The deployment package must contain an executable file named bootstrap at its root"
	n := p.root.child("bootstrap")
	var why string
	switch {
	case n == nil:
		return refuse(ErrNoBootstrap, "%s.", msg)
	case n.kind == kindDir:
		why = "bootstrap is a directory"
	case n.kind == kindLink && n.res == nil:
		why = "bootstrap is a symbolic link to " + quote(n.target) + ", which does not exist"
	case n.kind == kindLink && n.res.kind == kindDir:
		why = "bootstrap is a symbolic link to " + quote(n.target) + ", which is a directory"
	case n.kind == kindLink && !n.res.exec:
		why = "bootstrap is a symbolic link to " + quote(n.target) + ", which is not executable"
	case n.kind == kindFile && !n.exec:
		why = "bootstrap is not executable"
	default:
		return nil
	}
	return refuse(ErrNoBootstrap, "%s (%s).", msg, why)
}

// readData reads every entry but the links (already read) to its end.
func (p *plan) readData() error {
	for _, e := range p.entries {
		var err error
		switch {
		case e.n == nil || e.n.kind == kindDir:
			err = p.checkDir(nil, e.f)
		case e.n.kind == kindFile:
			err = p.copyEntry(nil, e.f, io.Discard, -1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDir requires a directory entry to have no data.
func (p *plan) checkDir(ctx context.Context, f *zip.File) error {
	err := p.copyEntry(ctx, f, io.Discard, 0)
	if err == errEntryLimit {
		return corrupt(nil, "directory entry %s has data", quote(f.Name))
	}
	return err
}

// errEntryLimit is copyEntry's answer for an entry longer than its own limit.
var errEntryLimit = errors.New("codepkg: entry longer than its limit")

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyEntry decompresses f into w through the package's remaining budget
// of unzipped bytes (and perEntry, if not negative), checking its CRC-32.
// It reads at most one byte more than the smaller limit. ctx may be nil.
func (p *plan) copyEntry(ctx context.Context, f *zip.File, w io.Writer, perEntry int64) error {
	rc, err := f.Open()
	if err != nil {
		return corrupt(err, "entry %s: %s", quote(f.Name), describe(err))
	}
	defer rc.Close()
	budget := p.lim.MaxUnzipped - p.unzipped
	limit := budget
	if perEntry >= 0 && perEntry < limit {
		limit = perEntry
	}
	src := &source{ctx: ctx, r: rc}
	// archive/zip checks the CRC-32 unless the header records 0 and there
	// is no data descriptor; then it is ours to check.
	var sum hash.Hash32
	if f.CRC32 == 0 && f.Flags&0x8 == 0 {
		sum = crc32.NewIEEE()
		w = io.MultiWriter(w, sum)
	}
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w}, &io.LimitedReader{R: src, N: limit + 1}, *bp)
	bufPool.Put(bp)
	p.unzipped += n
	switch {
	case err != nil && src.canceled:
		return fmt.Errorf("codepkg: extract: %w", err)
	case err != nil && src.err == nil:
		return fmt.Errorf("codepkg: extract: writing %s: %w", quote(f.Name), err)
	case err != nil:
		return corrupt(err, "entry %s: %s", quote(f.Name), describe(err))
	case n > budget:
		return refuse(ErrUnzippedTooLarge, "Unzipped size must be smaller than %d bytes", p.lim.MaxUnzipped)
	case n > limit:
		return errEntryLimit
	case sum != nil && sum.Sum32() != 0:
		return corrupt(zip.ErrChecksum, "entry %s: %s", quote(f.Name), describe(zip.ErrChecksum))
	}
	return nil
}

// describe says in a few words what is wrong with an entry's data.
func describe(err error) string {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return "checksum mismatch"
	case errors.Is(err, zip.ErrFormat):
		return "invalid header or data longer than its recorded size"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated data or data shorter than its recorded size"
	case errors.As(err, &ce):
		return "invalid compressed data"
	}
	return "unreadable data"
}

// source reads an entry, remembering read errors and watching ctx.
type source struct {
	ctx      context.Context // may be nil
	r        io.Reader
	err      error // the read error, if any
	canceled bool
}

func (s *source) Read(b []byte) (int, error) {
	if s.ctx != nil {
		if err := s.ctx.Err(); err != nil {
			s.err, s.canceled = err, true
			return 0, err
		}
	}
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// writerOnly hides a writer's ReadFrom, so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }
