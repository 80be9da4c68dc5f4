// Package sandbox runs one isolated process tree per sandbox on Linux. It
// knows nothing of Lambda: a Spec says what to run, with which mounts,
// limits, user and listening socket, and a Sandbox is the running result.
//
// # Isolation
//
// Each sandbox gets its own user, PID, mount, network, IPC, UTS and cgroup
// namespaces (see "The init re-exec" for which user namespace owns
// which). Its user namespace maps root inside to the first id of a
// range of IDRangeSize host uids and gids that belongs to this sandbox
// alone (see IDMap), so no two sandboxes, and no sandbox and the host,
// share a uid, and uid 0 inside is an unprivileged uid outside. The
// setup runs as root of that namespace; the program then runs as the
// Spec's uid/gid (Lambda's 993/990) with no supplementary groups, all five
// capability sets empty (bounding, permitted, effective, inheritable,
// ambient), the securebits locked so that uid 0 could not regain any,
// no_new_privs, no controlling terminal (its own session) and a seccomp
// filter (seccomp_linux.go) that makes the dangerous system calls fail
// with EPERM: mount, ptrace, bpf, new namespaces, kexec, keyrings,
// modules, io_uring and others (the list is in the file), plus a second
// filter refusing every system call of another ABI (on x86-64 the i386
// int 0x80 entry, which would bypass the first).
//
// The file system is a read-only root (a tmpfs holding read-only binds of
// the host's /usr, /lib, /lib64, /bin, /sbin and /etc, symlinked ones
// recreated as symlinks), the Spec's Mounts, a private size-limited tmpfs
// /tmp, a fresh /proc with Docker's masked paths (/proc/kcore, /proc/keys,
// ... hidden; /proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus
// read-only), a minimal read-only /dev (null, zero, full, random, urandom,
// tty bound from the host, a small /dev/shm). The Spec's Mounts are cloned
// by this process (open_tree) and handed to the init as detached mount
// trees, so their host paths need not be reachable by the sandbox's ids
// (the worker's code cache is in a 0700 directory). The network is a
// loopback interface only (Spec.Network): no route to anything, the
// host's 127.0.0.1 included. The hostname is the Spec's ID. Its cgroups
// hold a hard memory limit without swap, a pids limit, a CPU weight and
// optionally a CPU cap (Spec.CPUMilli); they belong to host root and are
// not mounted inside, so the sandbox cannot change its limits. The
// program runs as PID 1 of its PID namespace, so when it exits the kernel
// kills every other process of the sandbox.
//
// A Manager may instead use the process backend (Config.Backend): no
// isolation at all, for development on machines where this process is not
// root; see BackendProcess.
//
// # Lifecycle
//
// Start returns once the program has been exec'd; a setup failure is
// reported by Start as ErrSetup (with the step that failed) and leaves
// nothing behind. Done closes when the program (PID 1) has exited, which
// kills the rest of the sandbox. Destroy must be called in every case: it
// kills what is left (SIGKILL to PID 1, which takes the whole PID
// namespace with it, also processes that double-forked or ignore SIGTERM,
// and to every process of the cgroups), closes the listener, removes the
// cgroups and releases the host id range. The sandbox's mount, network,
// IPC, UTS, cgroup and user namespaces, and with them its /tmp and
// /dev/shm memory, are freed by the kernel once its last process is gone.
//
// The init and the program get SIGKILL when the thread of this process
// that is their parent dies (Pdeathsig, re-armed after the credential
// change, which clears it). With the C init that is the thread that
// started the spawner, which a goroutine keeps locked until Shutdown, so
// that no other goroutine can end it; the Go init's parent is the thread
// that started it. The Go runtime ends a thread only when a goroutine
// exits while locked to it with runtime.LockOSThread, so a process using
// this package must not do that. When this process dies its sandboxes die
// with it, but their (empty) cgroups stay until NewManager, in the next
// process on the host, removes them: it removes the groups named
// ember-<pid>[-...] or ember-<word>-...-<pid>[-...] next to its own whose
// pid is not alive and that hold no processes.
//
// # The init re-exec
//
// Each sandbox's init is the current binary (/proc/self/exe): without
// cgo re-executed by Start with argv[0] set to InitArg0, with cgo forked
// from the spawner, a copy of it re-executed once per Manager with
// argv[0] SpawnerArg0. The init performs the in-sandbox setup (mounts,
// hostname, credentials, capabilities, seccomp last) and then execs the
// Spec's program; it never returns to the importing program's main. Any
// binary that imports this package therefore works as its own sandbox
// init, including `go test` binaries, with no extra wiring. The parent
// computes the whole plan (childConfig: the program, the mount targets,
// the host directories, devices and /proc paths, the compiled seccomp
// programs) and sends it over a socket.
//
// Built with cgo (the default where a C compiler is found), the init is C
// (init_linux.c), in a constructor that runs before the Go runtime and
// any package init of the binary, and does nothing in any process whose
// argv[0] is not SpawnerArg0. The spawner (spawner_linux.go says why
// there is one) builds once, in a mount namespace of its own, the part
// of the root that is the same in every sandbox (a read-only template:
// the system directories, /dev, and the mount points of
// Config.MountTargets) and pivots into it. For each sandbox it clones an
// init with CLONE_PARENT, so that the init is this process's child, as
// host root, without a user namespace, into new PID, mount (a copy of
// the template), network, IPC and UTS namespaces. The init mounts its
// own /proc, /dev/shm, /tmp and the Spec's trees (or, if a target is not
// in the template, makes a root of its own and pivots into it), then
// makes its user namespace, which the parent maps, drops to the Spec's
// uid and execs. Those five namespaces thus belong to the host's user
// namespace: the sandbox's root has no capability over them. On cgroup
// v1 a few such inits are started ahead, already in groups of their own
// (initpool_linux.go): moving a process into a v1 group waits for an RCU
// grace period, 5-15 ms on a loaded host.
//
// Built without cgo, the init is this package's Go init function, run
// after the package inits of the binary that come before it (in the
// ember binary about 13 ms: the AWS SDK's tables and others), which must
// therefore be cheap and free of side effects; it is cloned straight into
// all its namespaces, the user namespace included. Both inits take the
// same steps in the same order (TestGoInit runs the isolation tests with
// the Go one). If an init crashes (say, the Go runtime cannot start a
// thread) Start cannot tell that from an exec'd program exiting at once:
// the message is on Stderr and Done closes with exit status 2. The Go init
// is executed as the sandbox's root, an unprivileged host uid: the binary
// must be executable by others (mode o+x); its directory need not be
// reachable.
//
// # cgroups
//
// Groups are created only below the cgroup this process is in (read from
// /proc/self/cgroup): <own>/<Config.CgroupParent>/<Spec.ID>. On cgroup v1
// (detected when /sys/fs/cgroup is not a cgroup2 file system) that is done
// in each of the memory, pids and cpu hierarchies, and the init is moved
// into its groups before it may proceed (with the C init: ahead of time,
// in a group named _pool-<n> that Start renames to the Spec's ID and then
// limits; such groups also lie under the parent). On v2 the init is cloned straight
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
// a sandbox's Go init, in builds without cgo (see the package
// documentation).
const InitArg0 = "ember-sandbox-init"

// SpawnerArg0 is the argv[0] under which the current binary is
// re-executed as the Manager's spawner, which clones the C inits
// (spawner_linux.go).
const SpawnerArg0 = "ember-sandbox-spawner"

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
	// ErrNoIDs is returned by Start when every host id range of the
	// Manager's IDMap is in use by a live sandbox.
	ErrNoIDs = errors.New("sandbox: no free host id range")
)

// Backend selects how a Manager runs sandboxes.
type Backend string

const (
	// BackendNative (the default) isolates each sandbox with namespaces,
	// cgroups, capabilities and seccomp, as the package documentation
	// says. It needs root.
	BackendNative Backend = "native"
	// BackendProcess runs the program as a plain child process of this
	// one, with no isolation whatsoever: same user, same file system, same
	// network (the listener is on the host's loopback, on a port of the
	// kernel's choosing), no resource limits. It exists for development
	// on machines where the native backend cannot run (no root), with one
	// trusted user: NewManager logs ProcessBackendWarning at error level.
	// What it does: the program path, working directory and environment
	// values that lie under a Mount's Target are rewritten to the Mount's
	// Source; TMPDIR is set to a temporary directory of the sandbox's own
	// (removed by Destroy); the program gets its own process group, which
	// Destroy (and the program's exit) kill; a process that leaves the
	// group (setsid) escapes. OOMKilled is always false; MaxMemoryBytes is
	// the program's own peak RSS.
	BackendProcess Backend = "process"
)

// ProcessBackendWarning is what a Manager with BackendProcess logs, and
// what a command offering that backend should print.
const ProcessBackendWarning = "SANDBOX BACKEND \"process\": FUNCTIONS RUN WITHOUT ANY ISOLATION, as this user, " +
	"with full access to this machine's files, network and processes. For development with trusted code only; never with more than one tenant."

// Network selects a sandbox's network.
type Network string

const (
	// NetworkNone (also the zero value) gives the sandbox a network
	// namespace with only a loopback interface: it reaches nothing outside,
	// not even the host's 127.0.0.1, and only the listener of
	// Spec.ListenAddr can be reached from outside.
	NetworkNone Network = "none"
	// NetworkOutbound is reserved for outbound access through a veth pair
	// and NAT (docs/security.md has the design). It is not implemented:
	// Start refuses it with ErrInvalidSpec.
	NetworkOutbound Network = "outbound"
)

// IDRangeSize is the number of host uids (and gids) mapped into each
// sandbox's user namespace: ids 0-65535 inside.
const IDRangeSize = 65536

// Default host id space of the sandboxes when Config.IDMap is zero and
// /etc/subuid and /etc/subgid have no "ember" entry: 4,096 ranges from
// 2^30. docs/security.md says how to reserve a range.
const (
	DefaultIDMapStart = 1 << 30
	DefaultIDMapCount = 4096 * IDRangeSize
)

// IDMap is the host uid and gid space from which each live sandbox gets a
// range of IDRangeSize ids of its own: the i-th range is UIDStart +
// i*IDRangeSize (and GIDStart + i*IDRangeSize). No host user or group
// should own ids in it. Count is the size of the space, a multiple of
// IDRangeSize; it bounds the number of live sandboxes of the Manager. A
// range in use is also locked host-wide (an flock on a file in
// /run/ember/sandbox-ids named by its first uid), so Managers of other
// processes with the same IDMap skip it.
type IDMap struct {
	UIDStart, GIDStart, Count uint32
}

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

// MemoryPerCPU is the memory that comes with one whole CPU: Lambda gives
// a function one vCPU per 1,769 MB, in proportion below and above.
const MemoryPerCPU = 1769

// MinCPUMilli is the floor of CPUMilliForMemory: 64 thousandths of a CPU
// (6.4 ms every 100 ms), below which a 128 MB runtime would take over a
// second to start; Lambda's own figure for 128 MB is 72.
const MinCPUMilli = 64

// CPUMilliForMemory returns the Lambda-like CPU cap of a sandbox of
// memoryMB (Spec.CPUMilli): memoryMB/MemoryPerCPU of one CPU, at least
// MinCPUMilli (128 MB: 72, 1,769 MB: 1,000, 10,240 MB: 5,788; the host's
// CPUs bound it anyway).
func CPUMilliForMemory(memoryMB int) int {
	return max(MinCPUMilli, memoryMB*1000/MemoryPerCPU)
}

// Config configures a Manager.
type Config struct {
	// CgroupParent is the name of the group created under the cgroup this
	// process is in (per controller on v1) to hold the sandboxes' groups,
	// e.g. "ember-sandboxes-<pid>". It must be a single path element of
	// [a-zA-Z0-9._-]. Default "ember-<pid>".
	CgroupParent string
	// Logger receives the package's logs; default: discarded.
	Logger *slog.Logger
	// Backend is BackendNative (default) or BackendProcess.
	Backend Backend
	// InitPool is the number of sandbox inits a Manager keeps started
	// ahead on cgroup v1 hosts (with the C init, that is built with cgo):
	// moving a process into v1 groups waits for an RCU grace period,
	// 5-15 ms on a loaded host, which a pooled init has done before its
	// Start. Pooled inits are host-root processes blocked reading their
	// config, each in a group _pool-<n> under the parent group (and so
	// among its processes). 0, the default, keeps none.
	InitPool int
	// MountTargets are the Mount targets (directories) most sandboxes
	// use. With the C init (cgo) every sandbox's root is a copy of a
	// template built once, which has these mount points ready (as empty
	// directories in every sandbox); a sandbox with a Mount target
	// missing from it builds a root of its own, at about 1.5 ms more CPU
	// (init_linux.c). Each must be a valid Mount target.
	MountTargets []string
	// IDMap is the host id space of the sandboxes' user namespaces.
	// Zero: the entries of user "ember" in /etc/subuid and /etc/subgid if
	// both exist, else DefaultIDMapStart and DefaultIDMapCount.
	IDMap IDMap
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
	// CPUMilli, if not 0, caps the sandbox's CPU time at this many
	// thousandths of one CPU (1000 = one CPU; Lambda gives one vCPU per
	// 1,769 MB: CPUMilliForMemory), measured over 100 ms periods: v1
	// cpu.cfs_quota_us, v2 cpu.max. Unlike the weight, which shares CPUs
	// under contention only, the cap holds on an idle machine too. At
	// least 10 (1%).
	CPUMilli int
	// UID and GID are the unprivileged user and group the program runs as
	// inside its user namespace (default 993 and 990; 0 means the default,
	// root is not possible; below IDRangeSize). On the host they are the
	// sandbox's id range start plus UID (GID).
	UID, GID int
	// ListenAddr, if set, is an IP:port (e.g. "127.0.0.1:9001") on which a
	// TCP listener is opened inside the sandbox's network namespace before
	// the program starts; Sandbox.Listener returns it.
	ListenAddr string
	// ListenAddrEnv, if set (with ListenAddr), names an environment
	// variable that Start sets (replacing any value in Env) to the address
	// at which the program reaches the listener: ListenAddr in the native
	// backend, the host address picked in the process backend.
	ListenAddrEnv string
	// Network is the sandbox's network; default NetworkNone.
	Network Network
	// Stdout and Stderr receive the program's output (nil discards). They
	// may be the same writer; a non-*os.File writer is fed by a goroutine
	// that ends when the sandbox's processes are gone.
	Stdout, Stderr io.Writer
}

// reservedTargets are the sandbox paths a Mount may not cover or lie in:
// the sandbox's own system directories, and paths whose host counterparts
// may be symlinks during setup.
var reservedTargets = []string{"/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev", "/tmp"}

// checkTarget validates a Mount target (or a Config.MountTargets entry).
func checkTarget(t string) error {
	if !path.IsAbs(t) || path.Clean(t) != t || t == "/" {
		return fmt.Errorf("mount target %q: want a clean absolute path other than /", t)
	}
	for _, r := range reservedTargets {
		if t == r || strings.HasPrefix(t, r+"/") {
			return fmt.Errorf("mount target %q: %s is reserved", t, r)
		}
	}
	return nil
}

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
		if err := checkTarget(m.Target); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
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
	case s.CPUMilli != 0 && (s.CPUMilli < 10 || s.CPUMilli > 1000*1024):
		return bad("cpu milli %d: want 0 or 10-%d", s.CPUMilli, 1000*1024)
	case s.UID < 0 || s.GID < 0:
		return bad("uid/gid %d/%d", s.UID, s.GID)
	}
	switch s.Network {
	case "", NetworkNone:
		s.Network = NetworkNone
	case NetworkOutbound:
		return bad("network %q is not implemented yet", s.Network)
	default:
		return bad("network %q: want %q", s.Network, NetworkNone)
	}
	if s.UID >= IDRangeSize || s.GID >= IDRangeSize {
		return bad("uid/gid %d/%d: want below %d", s.UID, s.GID, IDRangeSize)
	}
	if s.ListenAddrEnv != "" && (s.ListenAddr == "" || strings.ContainsAny(s.ListenAddrEnv, "=\x00")) {
		return bad("listen address env %q: needs ListenAddr and a name without = or NUL", s.ListenAddrEnv)
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

// setEnv returns env with name set to value: an existing entry is
// replaced (later duplicates dropped), else one is appended.
func setEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	done := false
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name || !ok && kv == name {
			if !done {
				out = append(out, name+"="+value)
				done = true
			}
			continue
		}
		out = append(out, kv)
	}
	if !done {
		out = append(out, name+"="+value)
	}
	return out
}
