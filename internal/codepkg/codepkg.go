// Package codepkg validates and safely extracts Lambda code packages: zip
// files uploaded by untrusted users.
//
// Validate reads a package completely (every entry is decompressed and its
// CRC-32 checked) and describes it; Extract writes it into an empty
// directory, applying the same rules again while it writes. Both check the
// package's metadata first (names, types, duplicates, symbolic links) and
// then its data, so a package that Validate accepts is one that Extract
// writes, given a working file system.
//
// Rules and decisions:
//
//   - Sizes: input larger than Limits.MaxZipped is refused before parsing.
//     The uncompressed size is measured while decompressing, never taken from
//     the zip's headers: all entries together are read through a limit, so a
//     zip bomb or a lying header is refused after at most
//     Limits.MaxUnzipped+1 decompressed bytes. The number of entries is
//     counted from the central directory before archive/zip allocates them.
//   - Entries must be stored or deflated and not encrypted; anything else,
//     bad checksums, truncated data or sizes that disagree with the data is
//     ErrCorrupt. Every entry's CRC-32 is checked, including entries whose
//     header records a CRC of zero (which archive/zip would not check).
//   - Names use "/" and are cleaned: empty and "." components are dropped,
//     so "a//b" and "./a/b" both name "a/b" (a directory entry naming the
//     root itself, such as "./", is accepted and ignored). Refused as
//     ErrUnsafePath: empty names, NUL bytes, absolute names, any ".."
//     component, names that are absolute or contain ".." when "\" is read as
//     a separator ("..\x", "\x") or that start with a drive letter ("C:"),
//     components longer than 255 bytes, names longer than 4000 bytes or
//     deeper than 128 directories, and any entry whose path goes through a
//     symbolic link of the package. Other backslashes are kept as ordinary
//     characters, as Linux does.
//   - Types: regular files, directories and symbolic links. Devices, named
//     pipes, sockets and unknown types are refused (ErrSpecialFile). The
//     setuid, setgid and sticky bits are dropped, not refused: files are
//     written with mode 0755 if the zip gives them any execute bit and 0644
//     otherwise; directories get 0755. Entries without Unix mode information
//     (zips made on Windows and other non-Unix systems, or a Unix entry
//     recording mode 0) count as executable files (0755), so that their
//     bootstrap runs.
//   - Symbolic links: the target is at most 4095 bytes, not empty, without
//     NUL, and relative. It is refused (ErrLinkOutside) if it leaves the
//     package, checked both lexically (the target joined to the link's
//     directory, with "\" also read as a separator) and by resolving it
//     through the package's own directories and links as the kernel would;
//     resolving one must not loop nor follow more than 40 links (Linux's
//     limit, counted the same way). Dangling links that stay inside are
//     allowed. Extract creates links last, so no file is ever written
//     through one.
//   - Two entries with the same cleaned name, or a name that is both a file
//     and a directory, are ErrDuplicate.
//
// Errors: every refusal wraps one of the exported sentinels (test with
// errors.Is) and its Error() text is a user-readable message in the style of
// Lambda's, meant to be sent to the caller inside an
// InvalidParameterValueException. Errors that wrap none of the sentinels
// (Extract's I/O errors, a cancelled context) are internal, not the user's.
package codepkg

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
)

// Default limits, those of AWS Lambda for a zip deployment package.
const (
	defaultMaxZipped   = 50 << 20  // 52428800 bytes
	defaultMaxUnzipped = 250 << 20 // 262144000 bytes
	defaultMaxEntries  = 20000
)

// Limits bound the resources a package may use. A zero or negative field
// means its default.
type Limits struct {
	// MaxZipped is the largest accepted zip, in bytes; larger input is
	// refused before parsing. Default 50 MiB (52428800).
	MaxZipped int64
	// MaxUnzipped is the largest accepted total of uncompressed bytes over
	// all entries, measured while decompressing, never trusting headers.
	// Default 250 MiB (262144000).
	MaxUnzipped int64
	// MaxEntries is the largest accepted number of zip entries (files,
	// directories and symbolic links). Default 20000.
	MaxEntries int
}

// DefaultLimits returns Lambda's limits for a zip deployment package.
func DefaultLimits() Limits {
	return Limits{MaxZipped: defaultMaxZipped, MaxUnzipped: defaultMaxUnzipped, MaxEntries: defaultMaxEntries}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxZipped <= 0 {
		l.MaxZipped = d.MaxZipped
	}
	if l.MaxUnzipped <= 0 {
		l.MaxUnzipped = d.MaxUnzipped
	}
	if l.MaxUnzipped > 1<<62 { // keep MaxUnzipped+1 from overflowing
		l.MaxUnzipped = 1 << 62
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	return l
}

// Package describes a valid code package.
type Package struct {
	SHA256       [32]byte // SHA-256 of the zip bytes
	CodeSha256   string   // SHA256 in standard base64, as Lambda's CodeSha256
	Size         int64    // zipped size in bytes
	UnzippedSize int64    // total uncompressed bytes, as measured
	Entries      int      // number of zip entries
}

// Sentinel errors. The errors Validate and Extract return wrap one of them
// and carry a user-readable message; see the package documentation.
var (
	// ErrTooLarge: the zip is larger than Limits.MaxZipped.
	ErrTooLarge = errors.New("codepkg: zipped package too large")
	// ErrUnzippedTooLarge: the entries decompress to more than
	// Limits.MaxUnzipped bytes in total.
	ErrUnzippedTooLarge = errors.New("codepkg: unzipped package too large")
	// ErrCorrupt: not a zip, truncated, bad checksum, sizes that disagree with
	// the data, encrypted entries or unsupported compression methods.
	ErrCorrupt = errors.New("codepkg: corrupt or unsupported zip")
	// ErrUnsafePath: an entry name that is empty, absolute, has a ".."
	// component (also with "\" as a separator), a NUL, is too long, or goes
	// through a symbolic link; or a symbolic link target that is empty, too
	// long or has a NUL.
	ErrUnsafePath = errors.New("codepkg: unsafe path")
	// ErrLinkOutside: a symbolic link that is absolute, escapes the package,
	// loops or follows more than 40 links.
	ErrLinkOutside = errors.New("codepkg: symbolic link outside the package")
	// ErrSpecialFile: a device, named pipe, socket or entry of unknown type.
	ErrSpecialFile = errors.New("codepkg: special file")
	// ErrTooManyEntries: more than Limits.MaxEntries entries.
	ErrTooManyEntries = errors.New("codepkg: too many entries")
	// ErrDuplicate: two entries with the same cleaned name, or a name that is
	// both a file and a directory.
	ErrDuplicate = errors.New("codepkg: duplicate entry")
	// ErrNoBootstrap: Validate was asked for a bootstrap and the package has
	// no executable regular file (or link to one) named bootstrap at its root.
	ErrNoBootstrap = errors.New("codepkg: no executable bootstrap")
)

// corruptMsg is Lambda's message for a zip it cannot read.
const corruptMsg = "Could not unzip uploaded file. Please check your file, then try to upload again."

// userError is a refusal: Error is the user-readable message, Unwrap gives
// the sentinel (and the underlying cause, if any) to errors.Is and As.
type userError struct {
	kind  error
	msg   string
	cause error
}

func (e *userError) Error() string { return e.msg }

func (e *userError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func refuse(kind error, format string, args ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// corrupt reports an unreadable zip; detail says why, in a few words.
func corrupt(cause error, detail string, args ...any) error {
	return &userError{kind: ErrCorrupt, msg: corruptMsg + " (" + fmt.Sprintf(detail, args...) + ")", cause: cause}
}

// quote quotes a name from the zip for a message, shortening long ones.
func quote(name string) string {
	const max = 100
	if len(name) > max {
		return strconv.Quote(name[:max]) + "..."
	}
	return strconv.Quote(name)
}

// Validate checks a zip completely and returns its description: every entry
// is decompressed and CRC-checked with the running total capped, and every
// rule of the package documentation applies. If requireBootstrap is set, the
// package must also contain an executable regular file named "bootstrap" at
// its root, or a symbolic link resolving inside the package to one.
func Validate(zip []byte, lim Limits, requireBootstrap bool) (*Package, error) {
	p, err := newPlan(zip, lim)
	if err != nil {
		return nil, err
	}
	if err := p.readLinks(nil); err != nil {
		return nil, err
	}
	if err := p.checkLinks(); err != nil {
		return nil, err
	}
	if requireBootstrap {
		if err := p.checkBootstrap(); err != nil {
			return nil, err
		}
	}
	if err := p.readData(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(zip)
	return &Package{
		SHA256:       sum,
		CodeSha256:   base64.StdEncoding.EncodeToString(sum[:]),
		Size:         int64(len(zip)),
		UnzippedSize: p.unzipped,
		Entries:      len(p.zr.File),
	}, nil
}

// Extract writes the package into dir, which must exist and be empty. It
// applies every rule of Validate again while writing (except the bootstrap
// check) and stops at the limits. Regular files get mode 0755 or 0644,
// directories 0755; symbolic links are created last. Every file and
// directory is created relative to its parent's open directory, never
// following a symbolic link (O_EXCL|O_NOFOLLOW). On error, or when ctx is
// cancelled, Extract removes what it wrote and returns the error.
func Extract(ctx context.Context, zip []byte, dir string, lim Limits) error {
	p, err := newPlan(zip, lim)
	if err != nil {
		return err
	}
	if err := p.readLinks(ctx); err != nil {
		return err
	}
	if err := p.checkLinks(); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("codepkg: extract: %w", err)
	}
	defer root.Close()
	if err := checkEmpty(root); err != nil {
		return fmt.Errorf("codepkg: extract into %s: %w", dir, err)
	}
	return p.extract(ctx, root)
}

// checkEmpty fails unless the root directory has no entries.
func checkEmpty(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("directory is not empty: %w", fs.ErrExist)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
