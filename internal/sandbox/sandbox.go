// Package sandbox runs one isolated process tree per sandbox on Linux. It
// knows nothing of Lambda: a Spec says what to run, with which mounts,
// limits, user and listening socket, and a Sandbox is the running result.
//
// # Isolation
//
// Each sandbox gets its own PID, mount, network, IPC, UTS and cgroup
// namespaces; a read-only root (a tmpfs holding read-only binds of the
// host's /usr, /lib, /lib64, /bin, /sbin and /etc, symlinked ones recreated
// as symlinks), the Spec's Mounts, a private size-limited tmpfs /tmp, a
// fresh /proc, a minimal /dev (null, zero, full, random, urandom, tty bound
// from the host, a small /dev/shm); only a loopback interface; a hostname
// equal to the Spec's ID; no_new_privs; an unprivileged uid/gid with no
// supplementary groups and no capabilities. Its cgroups hold a hard memory
// limit without swap, a pids limit and a CPU weight. The program runs as
// PID 1 of its PID namespace, so when it exits the kernel kills every other
// process of the sandbox.
//
// A user namespace is not yet used: the setup runs as real root (in fresh
// mount, PID, network, IPC and UTS namespaces) and then drops to the
// unprivileged uid/gid, so uid 993 inside is uid 993 on the host. /proc is
// not masked (no read-only /proc/sys, no hidden /proc/kcore): without
// privileges the program cannot use those files anyway.
//
// # Lifecycle
//
// Start returns once the program has been exec'd; a setup failure is
// reported by Start as ErrSetup (with the step that failed) and leaves
// nothing behind. Done closes when the program (PID 1) has exited, which
// kills the rest of the sandbox. Destroy must be called in every case: it
// kills what is left, closes the listener and removes the cgroups.
//
// The init and the program get SIGKILL when the thread of this process
// that started them dies (Pdeathsig, re-armed after the credential change,
// which clears it). The Go runtime ends a thread only when a goroutine
// exits while locked to it with runtime.LockOSThread, so a process using
// this package must not do that. When this process dies its sandboxes die
// with it, but their (empty) cgroups stay: nothing removes them.
//
// # The init re-exec
//
// Start re-executes the current binary (/proc/self/exe) with argv[0] set to
// InitArg0. This package's init function recognises that argv[0], performs
// the in-sandbox setup (mounts, pivot_root, hostname, credentials) and then
// execs the Spec's program; it never returns to the importing program's
// main. Any binary that imports this package therefore works as its own
// sandbox init, including `go test` binaries, with no extra wiring. Package
// init functions of the binary that run before this package's (its
// dependencies, and unrelated packages ordered earlier) still run in the
// re-exec, so they must be cheap and free of side effects. If the init
// itself crashes (say, the Go runtime cannot start a thread) Start cannot
// tell that from an exec'd program exiting at once: the runtime's message
// is on Stderr and Done closes with exit status 2.
//
// # cgroups
//
// Groups are created only below the cgroup this process is in (read from
// /proc/self/cgroup): <own>/<Config.CgroupParent>/<Spec.ID>. On cgroup v1
// (detected when /sys/fs/cgroup is not a cgroup2 file system) that is done
// in each of the memory, pids and cpu hierarchies, and the init is moved
// into its groups before it may proceed. On v2 the init is cloned straight
// into its group (CLONE_INTO_CGROUP); because of the "no internal
// processes" rule the parent group holds no processes, and if <own> can
// only delegate the controllers once this process has left it, this
// process moves itself into a leaf <own>/<Config.CgroupParent>.manager
// (and back at Shutdown); cgroupv2_linux.go has the details. Each sandbox
// also gets its own cgroup namespace, rooted at its group.
//
// The package needs root; the tests that need root fail instead of skip
// when CI=true.
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path"
	"strings"
)

// InitArg0 is the argv[0] under which the current binary is re-executed as
// a sandbox's init (see the package documentation).
const InitArg0 = "ember-sandbox-init"

// Errors returned by this package; the ones from Start and NewManager wrap
// them with details.
var (
	// ErrNotRoot is returned by NewManager when the process is not root.
	ErrNotRoot = errors.New("sandbox: root privileges required")
	// ErrUnsupported is returned when the host lacks something sandboxes
	// need (not Linux, missing cgroup controllers, ...).
	ErrUnsupported = errors.New("sandbox: unsupported host")
	// ErrInvalidSpec is returned by Start for a Spec that fails validation.
	ErrInvalidSpec = errors.New("sandbox: invalid spec")
	// ErrExists is returned by Start when a live sandbox has the same ID.
	ErrExists = errors.New("sandbox: id already in use")
	// ErrClosed is returned by Start after Shutdown.
	ErrClosed = errors.New("sandbox: manager shut down")
	// ErrSetup is returned by Start when the in-sandbox setup failed; the
	// message says at which step.
	ErrSetup = errors.New("sandbox: setup failed")
)

// Defaults applied by Start to zero Spec fields.
const (
	DefaultTmpSizeMB = 512
	DefaultMemoryMB  = 128
	DefaultPidsMax   = 1024
	DefaultCPUWeight = 100
	DefaultUID       = 993
	DefaultGID       = 990
	// MinMemoryMB and MinPidsMax are the smallest accepted MemoryMB and
	// PidsMax: the init re-exec (a Go runtime with a few threads) runs
	// inside the limits for a moment before it execs the program.
	MinMemoryMB = 16
	MinPidsMax  = 16
)

// Config configures a Manager.
type Config struct {
	// CgroupParent is the name of the group created under the cgroup this
	// process is in (per controller on v1) to hold the sandboxes' groups,
	// e.g. "ember-sandboxes-<pid>". It must be a single path element of
	// [a-zA-Z0-9._-]. Default "ember-<pid>".
	CgroupParent string
	// Logger receives the package's logs; default: discarded.
	Logger *slog.Logger
}

// Mount is a host path bind-mounted into the sandbox.
type Mount struct {
	// Source is the absolute host path (a directory or a file).
	Source string
	// Target is the absolute path inside the sandbox. It must not be /,
	// nor lie in /usr, /lib, /lib32, /lib64, /bin, /sbin, /etc, /proc,
	// /dev or /tmp.
	Target string
	// ReadOnly makes the mount read-only.
	ReadOnly bool
}

// Spec describes one sandbox.
type Spec struct {
	// ID is unique among the Manager's live sandboxes, 1-63 characters of
	// [a-zA-Z0-9-]; it names the cgroup and is the hostname.
	ID string
	// Path is the program to run, an absolute path as seen inside the
	// sandbox (e.g. /var/task/bootstrap). It is also argv[0].
	Path string
	// Args are the arguments after argv[0].
	Args []string
	// Env is the program's whole environment, exactly as given.
	Env []string
	// Dir is the working directory inside the sandbox; default "/".
	Dir string
	// Mounts are bind-mounted in order, after the system directories.
	Mounts []Mount
	// TmpSizeMB is the size of the private tmpfs /tmp (default 512). Its
	// pages count against MemoryMB.
	TmpSizeMB int
	// MemoryMB is the hard memory limit of the whole sandbox, without
	// swap (default 128, minimum MinMemoryMB).
	MemoryMB int
	// PidsMax limits the processes and threads of the sandbox (default
	// 1024, minimum MinPidsMax).
	PidsMax int
	// CPUWeight is the relative CPU share, 1-10000 (default 100). v2 uses
	// it as cpu.weight, v1 as cpu.shares = CPUWeight*1024/100.
	CPUWeight int
	// UID and GID are the unprivileged user and group the program runs as
	// (default 993 and 990; 0 means the default, root is not possible).
	UID, GID int
	// ListenAddr, if set, is an IP:port (e.g. "127.0.0.1:9001") on which a
	// TCP listener is opened inside the sandbox's network namespace before
	// the program starts; Sandbox.Listener returns it.
	ListenAddr string
	// Stdout and Stderr receive the program's output (nil discards). They
	// may be the same writer; a non-*os.File writer is fed by a goroutine
	// that ends when the sandbox's processes are gone.
	Stdout, Stderr io.Writer
}

// reservedTargets are the sandbox paths a Mount may not cover or lie in:
// the sandbox's own system directories, and paths whose host counterparts
// may be symlinks during setup.
var reservedTargets = []string{"/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev", "/tmp"}

// normalize applies the defaults and validates the Spec.
func (s *Spec) normalize() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, a...))
	}
	if !validID(s.ID) {
		return bad("id %q: want 1-63 characters of [a-zA-Z0-9-]", s.ID)
	}
	if !path.IsAbs(s.Path) || path.Clean(s.Path) != s.Path {
		return bad("path %q: want a clean absolute path", s.Path)
	}
	if s.Dir == "" {
		s.Dir = "/"
	}
	if !path.IsAbs(s.Dir) {
		return bad("dir %q: want an absolute path", s.Dir)
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Source) {
			return bad("mount source %q: want an absolute path", m.Source)
		}
		t := m.Target
		if !path.IsAbs(t) || path.Clean(t) != t || t == "/" {
			return bad("mount target %q: want a clean absolute path other than /", t)
		}
		for _, r := range reservedTargets {
			if t == r || strings.HasPrefix(t, r+"/") {
				return bad("mount target %q: %s is reserved", t, r)
			}
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.TmpSizeMB, DefaultTmpSizeMB)
	def(&s.MemoryMB, DefaultMemoryMB)
	def(&s.PidsMax, DefaultPidsMax)
	def(&s.CPUWeight, DefaultCPUWeight)
	def(&s.UID, DefaultUID)
	def(&s.GID, DefaultGID)
	switch {
	case s.TmpSizeMB < 0:
		return bad("tmp size %d MB", s.TmpSizeMB)
	case s.MemoryMB < MinMemoryMB:
		return bad("memory %d MB: minimum is %d", s.MemoryMB, MinMemoryMB)
	case s.PidsMax < MinPidsMax:
		return bad("pids max %d: minimum is %d", s.PidsMax, MinPidsMax)
	case s.CPUWeight < 1 || s.CPUWeight > 10000:
		return bad("cpu weight %d: want 1-10000", s.CPUWeight)
	case s.UID < 0 || s.GID < 0:
		return bad("uid/gid %d/%d", s.UID, s.GID)
	}
	if s.ListenAddr != "" {
		// An IP literal only: a name would be resolved on another thread,
		// outside the sandbox's network namespace.
		if _, err := netip.ParseAddrPort(s.ListenAddr); err != nil {
			return bad("listen address %q: want IP:port", s.ListenAddr)
		}
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 63 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validGroupName reports whether name is usable as Config.CgroupParent.
func validGroupName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 200 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
