//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waitDelay bounds how long a sandbox's exit waits for its output pipes to
// close after its init is reaped (every process of the sandbox dies with
// the init, so this is a safety net only).
const waitDelay = 5 * time.Second

// destroyTimeout bounds Destroy and Shutdown when their ctx has no
// deadline, and the clean-up of a sandbox whose Start failed.
const destroyTimeout = 30 * time.Second

// Manager starts sandboxes and owns their cgroups. It is safe for
// concurrent use.
type Manager struct {
	log     *slog.Logger
	backend Backend
	cg      cgroupDriver // nil with BackendProcess
	ids     *idRanges    // nil with BackendProcess
	seccomp [][]byte     // the filters' programs (buildSeccomp)
	// initArg0 is InitArg0; the tests set goInitArg0 to exercise the
	// Go init where the C one would run.
	initArg0 string
	pool     initPool // C init on cgroup v1: inits started ahead
	spawner  spawner  // C init: clones the inits (spawner_linux.go)

	starting sync.WaitGroup // Starts in progress; Shutdown waits for them
	mu       sync.Mutex     // guards the fields below
	closed   bool
	live     map[string]*Sandbox // by ID; nil while the ID's Start runs
}

// NewManager checks for root, detects the cgroup version, removes the
// groups a dead process left (see the package documentation), creates the
// parent group(s) (see Config.CgroupParent) and builds the seccomp filter.
// With Config.Backend BackendProcess it needs none of that.
func NewManager(cfg Config) (*Manager, error) {
	switch cfg.Backend {
	case BackendProcess:
		return newProcessManager(cfg), nil
	case "", BackendNative:
	default:
		return nil, fmt.Errorf("sandbox: unknown backend %q", cfg.Backend)
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return nil, fmt.Errorf("%w: user namespaces are disabled (sysctl user.max_user_namespaces=0)", ErrUnsupported)
	}
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return nil, fmt.Errorf("%w: no user namespaces: %v", ErrUnsupported, err)
	}
	// The Go init's re-exec runs as the sandbox's root, an unprivileged
	// uid (the C inits are forks of the spawner, which host root execs).
	if !cInit {
		if fi, err := os.Stat("/proc/self/exe"); err != nil || fi.Mode().Perm()&0o001 == 0 {
			exe, _ := os.Executable()
			return nil, fmt.Errorf("%w: %s must be executable by other users (chmod o+x): sandboxes re-execute it as an unprivileged uid", ErrUnsupported, exe)
		}
	}
	for _, t := range cfg.MountTargets {
		if err := checkTarget(t); err != nil {
			return nil, fmt.Errorf("sandbox: Config.MountTargets: %w", err)
		}
	}
	source := "Config"
	if cfg.IDMap == (IDMap{}) {
		cfg.IDMap, source = defaultIDMap()
	}
	ids, err := newIDRanges(cfg.IDMap)
	if err != nil {
		return nil, err
	}
	filters, err := buildSeccomp()
	if err != nil {
		return nil, err
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = fmt.Sprintf("ember-%d", os.Getpid())
	}
	if !validGroupName(cfg.CgroupParent) {
		return nil, fmt.Errorf("sandbox: invalid cgroup parent name %q", cfg.CgroupParent)
	}
	cg, err := newDriver(cfg.CgroupParent, logger(cfg))
	if err != nil {
		return nil, err
	}
	m := newManager(cfg, cg, ids, filters)
	if cInit {
		// The spawner now, so that a host where it cannot run (or build
		// the template) fails here rather than at the first Start.
		if err := m.spawner.start(); err != nil {
			m.spawner.stop() // its thread's goroutine
			if err2 := cg.removeParent(context.Background()); err2 != nil {
				m.log.Error("remove the parent cgroup", "err", err2)
			}
			return nil, err
		}
	}
	if cInit && cg.version() == 1 && cfg.InitPool > 0 {
		m.pool.size = cfg.InitPool
		m.refill() // the init pool (initpool_linux.go)
	}
	m.log.Info("sandbox id map", "uid_start", cfg.IDMap.UIDStart, "gid_start", cfg.IDMap.GIDStart,
		"ranges", cfg.IDMap.Count/IDRangeSize, "from", source)
	return m, nil
}

func logger(cfg Config) *slog.Logger {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return log.With("component", "sandbox")
}

// newManager makes a native Manager on cg (the tests give it a v2 driver
// of their own).
func newManager(cfg Config, cg cgroupDriver, ids *idRanges, filters [][]byte) *Manager {
	log := logger(cfg)
	log.Info("sandbox manager ready", "backend", BackendNative, "cgroup_version", cg.version(), "cgroup_parent", cfg.CgroupParent)
	m := &Manager{log: log, backend: BackendNative, cg: cg, ids: ids, seccomp: filters, initArg0: InitArg0, live: map[string]*Sandbox{}}
	m.spawner.base = baseConfig(cfg.MountTargets)
	return m
}

// Backend returns the Manager's backend.
func (m *Manager) Backend() Backend { return m.backend }

// CgroupVersion returns 1 or 2, or 0 with BackendProcess.
func (m *Manager) CgroupVersion() int {
	if m.cg == nil {
		return 0
	}
	return m.cg.version()
}

// Start creates a sandbox and starts spec.Path in it. It returns once the
// program has been exec'd (or the setup failed: then nothing of the
// sandbox is left). ctx bounds the start only, not the sandbox's life.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	if err := spec.normalize(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	switch _, dup := m.live[spec.ID]; {
	case m.closed:
		m.mu.Unlock()
		return nil, ErrClosed
	case dup:
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, spec.ID)
	}
	m.live[spec.ID] = nil
	m.starting.Add(1)
	m.mu.Unlock()
	defer m.starting.Done()

	s, err := m.start(ctx, &spec)
	m.mu.Lock()
	if err != nil {
		delete(m.live, spec.ID)
	} else {
		m.live[spec.ID] = s
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (m *Manager) start(ctx context.Context, spec *Spec) (_ *Sandbox, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.backend == BackendProcess {
		return m.startProcess(ctx, spec)
	}
	if spec.ListenAddrEnv != "" {
		spec.Env = setEnv(spec.Env, spec.ListenAddrEnv, spec.ListenAddr)
	}
	if cInit && m.initArg0 == InitArg0 {
		return m.startC(ctx, spec)
	}
	// The Go init (built without cgo, or goInitArg0 in the tests).
	tr := startTrace{t0: time.Now()}
	ids, err := m.ids.get()
	if err != nil {
		return nil, err
	}
	// Until the sandbox exists its destroy cannot release these.
	release := func() {
		m.ids.put(ids)
	}
	tr.mark(&tr.ids)
	cg, err := m.cg.create(spec.ID, limits{
		memoryBytes: int64(spec.MemoryMB) << 20,
		pidsMax:     spec.PidsMax,
		cpuWeight:   spec.CPUWeight,
		cpuMilli:    spec.CPUMilli,
	})
	if err != nil {
		release()
		return nil, err
	}
	var targets []string
	for _, mt := range spec.Mounts {
		targets = append(targets, mt.Target)
	}
	cfg := (&childConfig{
		Hostname: spec.ID, Path: spec.Path, Argv: append([]string{spec.Path}, spec.Args...), Env: spec.Env,
		Dir: spec.Dir, Targets: targets, TmpOpts: fmt.Sprintf("size=%dm,mode=1777", spec.TmpSizeMB),
		UID: uint32(spec.UID), GID: uint32(spec.GID),
		SystemDirs: systemDirs, Devices: devices, ProcMasked: procMasked, ProcReadOnly: procReadOnly,
		Seccomp: m.seccomp,
	}).encode()

	// Pipes: the config goes down syncR, a setup error comes up errW.
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	syncR, syncW, err1 := os.Pipe()
	errR, errW, err2 := os.Pipe()
	files = append(files, syncR, syncW, errR, errW)
	selfFD, err3 := unix.PidfdOpen(os.Getpid(), 0)
	self := os.NewFile(uintptr(selfFD), "pidfd")
	if err3 == nil {
		files = append(files, self)
	}
	trees, err4 := cloneMounts(spec.Mounts)
	files = append(files, trees...)
	if err := errors.Join(err1, err2, err3); err != nil || err4 != nil {
		closeAll()
		m.removeGroup(ctx, cg)
		release()
		if err4 != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrSetup, spec.ID, err4)
		}
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	extra := append([]*os.File{syncR, errW, self}, trees...) // fdSync, fdErr, fdParent, fdMounts...
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{m.initArg0},
		Env:        []string{},
		Stdout:     spec.Stdout,
		Stderr:     spec.Stderr,
		ExtraFiles: extra,
		WaitDelay:  waitDelay,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
				syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
			// Root inside is the first id of the sandbox's range; the
			// init execs as that root, with all capabilities in its
			// namespaces (without Credential it would exec as the
			// unmapped host root and lose them).
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.uid, Size: IDRangeSize}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: ids.gid, Size: IDRangeSize}},
			// setgroups stays allowed so that the host root's
			// supplementary groups can be dropped (an unprivileged
			// process of the sandbox lacks CAP_SETGID anyway).
			GidMappingsEnableSetgroups: true,
			Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
			// A session of its own: no controlling terminal to inject
			// input into (TIOCSTI) or to signal.
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if fd := cg.cloneFD(); fd >= 0 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	tr.mark(&tr.cgroup)
	err = cmd.Start()
	tr.mark(&tr.clone)
	cg.closeCloneFD()
	// The child has its copies; keep only syncW and errR.
	for _, f := range append([]*os.File{syncR, errW, self}, trees...) {
		f.Close()
	}
	files = []*os.File{syncW, errR}
	defer closeAll()
	if err != nil {
		m.removeGroup(ctx, cg)
		release()
		return nil, fmt.Errorf("sandbox: start init: %w", err)
	}
	s := &Sandbox{id: spec.ID, pid: cmd.Process.Pid, proc: cmd.Process, cmd: cmd, cg: cg, m: m, ids: &ids, done: make(chan struct{})}
	go s.reap()
	defer m.destroyIfFailed(ctx, s, &err)

	// Bound the handshake by ctx: expiry unblocks the pipe operations.
	defer unblockOnDone(ctx, syncW, errR)()
	// The init sets up its root file system while this process puts it
	// into its cgroups and opens its listener; it waits for goByte before
	// it drops its privileges and execs the program.
	if _, err := syncW.Write(cfg); err != nil {
		return nil, m.setupError(spec.ID, errR, fmt.Errorf("sandbox: send config: %w", ctxErr(ctx, err)))
	}
	if err := cg.attach(s.pid); err != nil {
		return nil, err
	}
	tr.mark(&tr.attach)
	if spec.ListenAddr != "" {
		if s.ln, err = listenInNetns(s.pid, spec.ListenAddr); err != nil {
			return nil, err
		}
	}
	tr.mark(&tr.listen)
	if _, err := syncW.Write([]byte{goByte}); err != nil {
		return nil, m.setupError(spec.ID, errR, fmt.Errorf("sandbox: send go: %w", ctxErr(ctx, err)))
	}
	syncW.Close()
	// errW closes at exec (close-on-exec) or when the init dies: EOF with
	// no message means the program was exec'd.
	msg, err := io.ReadAll(io.LimitReader(errR, 64*1024))
	if err != nil {
		return nil, fmt.Errorf("sandbox: wait for setup: %w", ctxErr(ctx, err))
	}
	if len(msg) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrSetup, spec.ID, initMessage(msg))
	}
	tr.mark(&tr.exec)
	m.log.DebugContext(ctx, "sandbox started", "sandbox", spec.ID, "pid", s.pid, "ids", tr.ids, "cgroup", tr.cgroup,
		"clone", tr.clone, "attach", tr.attach, "listen", tr.listen, "userns", tr.userns, "exec", tr.exec, "total", time.Since(tr.t0))
	if traceHook != nil {
		traceHook(tr)
	}
	return s, nil
}

// startTrace is how long each step of a native Start took: taking an id
// range, creating the cgroups, cloning and exec'ing the init, attaching it
// to its cgroups (v1), opening its listener, waiting for the init's user
// namespace and mapping it (C init), and from there until the program was
// exec'd. The init's setup runs from the clone on, in parallel with
// attach and listen.
type startTrace struct {
	t0, last                                         time.Time
	ids, cgroup, clone, attach, listen, userns, exec time.Duration
	take, send                                       time.Duration // C init: take (or start) one, send its config
}

// destroyIfFailed destroys s, a sandbox whose Start is ending, if *errp
// says the start failed.
func (m *Manager) destroyIfFailed(ctx context.Context, s *Sandbox, errp *error) {
	if *errp == nil {
		return
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if derr := s.destroy(cctx); derr != nil {
		m.log.Error("clean up after failed start", "id", s.id, "err", derr)
	}
}

// unblockOnDone sets a deadline in the past on each of fs once ctx is
// done, which unblocks a handshake's reads and writes on them; call what
// it returns when the handshake is over.
func unblockOnDone(ctx context.Context, fs ...interface{ SetDeadline(time.Time) error }) func() bool {
	return context.AfterFunc(ctx, func() {
		for _, f := range fs {
			f.SetDeadline(time.Now())
		}
	})
}

func (t *startTrace) mark(d *time.Duration) {
	now := time.Now()
	if t.last.IsZero() {
		t.last = t.t0
	}
	*d = now.Sub(t.last)
	t.last = now
}

// traceHook, if set (by tests and benchmarks), receives every successful
// native Start's trace.
var traceHook func(startTrace)

// userNSReady is the byte the C init writes on its error pipe once it has
// made its user namespace: no error message starts with it.
const userNSReady = 1

// mapIDs waits for the C init to make its user namespace and writes the
// namespace's id maps: root inside is the first id of the sandbox's range.
//
// Why the C init makes it, not the clone: with CLONE_NEWUSER Go's
// os/exec cannot use vfork (the child must wait for its maps), and a
// plain fork of a big Go process (the ember server, with its heap and
// threads) copies its page tables: 15-70 ms measured, against well under
// 1 ms for a vfork. So the init is cloned by host root into new PID,
// mount, network, IPC and UTS namespaces, which it sets up as host root
// (they belong to the host's user namespace: the sandbox's root has no
// capability over them at all), then unshares its user namespace,
// which this maps, before it drops to the sandbox's uid.
func (m *Manager) mapIDs(ctx context.Context, id string, pid int, ids idRange, errR *os.File) error {
	var b [1]byte
	if _, err := io.ReadFull(errR, b[:]); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sandbox: wait for the init: %w", ctx.Err())
		}
		return fmt.Errorf("%w: %s: the init died before it made its user namespace (%v)", ErrSetup, id, err)
	}
	if b[0] != userNSReady {
		msg, _ := io.ReadAll(io.LimitReader(errR, 64*1024))
		return fmt.Errorf("%w: %s: %s", ErrSetup, id, initMessage(append(b[:], msg...)))
	}
	// setgroups stays allowed (the default for a privileged writer) so
	// that the init can drop host root's supplementary groups.
	proc := "/proc/" + strconv.Itoa(pid)
	if err := writeFile(proc+"/uid_map", fmt.Sprintf("0 %d %d\n", ids.uid, IDRangeSize)); err != nil {
		return fmt.Errorf("sandbox: %s: uid map: %w", id, err)
	}
	if err := writeFile(proc+"/gid_map", fmt.Sprintf("0 %d %d\n", ids.gid, IDRangeSize)); err != nil {
		return fmt.Errorf("sandbox: %s: gid map: %w", id, err)
	}
	return nil
}

// setupError returns the init's own message if it reported one (a write
// to the sync pipe fails with EPIPE when the init died of a setup error),
// else err.
func (m *Manager) setupError(id string, errR *os.File, err error) error {
	if !errors.Is(err, syscall.EPIPE) {
		return err
	}
	if msg, _ := io.ReadAll(io.LimitReader(errR, 64*1024)); len(msg) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrSetup, id, initMessage(msg))
	}
	return err
}

// initMessage renders an init's error message. The C init sends the
// failed step, a NUL and the errno in decimal (0: none), which is
// rendered as the Go init would ("exec /x: no such file or directory").
func initMessage(msg []byte) string {
	text, num, ok := strings.Cut(string(msg), "\x00")
	if !ok {
		return text
	}
	if n, err := strconv.Atoi(num); err == nil && n != 0 {
		return text + ": " + syscall.Errno(n).Error()
	}
	return text
}

// cleanupContext returns a context for cleaning up after a failed Start:
// not cancelled with ctx, bounded by destroyTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
}

// removeGroup removes the group of a sandbox whose init never started.
func (m *Manager) removeGroup(ctx context.Context, cg cgroup) {
	cg.closeCloneFD()
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := removeDirs(ctx, cg); err != nil {
		m.log.Error("clean up after failed start", "err", err)
	}
}

// ctxErr prefers ctx's error over the deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Shutdown stops accepting Starts, destroys every live sandbox and removes
// the parent cgroup(s). It returns the joined errors; after an error it may
// be called again.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.starting.Wait() // Starts end within their own ctx
	if m.cg != nil {
		m.drainPool()
	}
	m.mu.Lock()
	var all []*Sandbox
	for _, s := range m.live {
		all = append(all, s)
	}
	m.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() { errs[i] = s.Destroy(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err // the spawner's thread stays the parent of what is left
	}
	// No Start runs any more, nor the pool's refill, and no init is left.
	m.spawner.stop()
	if m.cg == nil {
		return nil
	}
	return m.cg.removeParent(ctx)
}

// forget drops a destroyed sandbox.
func (m *Manager) forget(s *Sandbox) {
	m.mu.Lock()
	if m.live[s.id] == s {
		delete(m.live, s.id)
	}
	m.mu.Unlock()
}

// Sandbox is one running (or exited, not yet destroyed) sandbox. Its
// methods are safe for concurrent use. Destroy it when done, also after
// it exited: that releases its cgroups and listener.
type Sandbox struct {
	id   string
	pid  int
	proc *os.Process // the init (the program)
	cmd  *exec.Cmd   // the init if os/exec started it (nil for a spawned C init)
	cg   cgroup
	m    *Manager
	ln   net.Listener // nil without ListenAddr
	ids  *idRange     // host ids, released by destroy; nil with BackendProcess
	tmp  string       // BackendProcess: the sandbox's TMPDIR

	done    chan struct{} // closed by reap
	exitErr error         // set before done closes

	destroyMu sync.Mutex // serialises Destroy
	destroyed bool

	outMu    sync.Mutex // guards outputs_
	outputs_ []output   // C init: pipes fed to non-file Stdout/Stderr

	statsMu sync.Mutex // guards the stats below
	final   bool       // set by reap: the stats below are final
	oom     bool
	peak    int64
}

// ID returns the Spec's ID.
func (s *Sandbox) ID() string { return s.id }

// Pid returns the host pid of the sandbox's program (PID 1 inside).
func (s *Sandbox) Pid() int { return s.pid }

// Listener returns the listener opened inside the sandbox's network
// namespace, or nil without Spec.ListenAddr. Destroy closes it.
func (s *Sandbox) Listener() net.Listener { return s.ln }

// Done is closed when the sandbox's process tree has exited, for any
// reason (the program exited or was killed, or Destroy).
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// ExitError returns, after Done, nil if the program exited with status 0,
// else an *exec.ExitError ("exit status 2", "signal: killed"). Before
// Done it returns nil.
func (s *Sandbox) ExitError() error {
	select {
	case <-s.done:
		return s.exitErr
	default:
		return nil
	}
}

// OOMKilled reports whether the sandbox's memory cgroup saw an OOM kill.
// On cgroup v1 this is memory.oom_control's oom_kill (or a non-zero
// memory.failcnt on kernels without it), on v2 memory.events' oom_kill.
func (s *Sandbox) OOMKilled() bool {
	oom, _ := s.stats()
	return oom
}

// MaxMemoryBytes returns the peak memory use of the sandbox's cgroup (v1
// memory.max_usage_in_bytes, v2 memory.peak or else memory.current).
func (s *Sandbox) MaxMemoryBytes() int64 {
	_, peak := s.stats()
	return peak
}

// stats reads the cgroup's figures while it exists, else the last ones.
func (s *Sandbox) stats() (bool, int64) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if !s.final {
		s.oom, s.peak = s.cg.stats()
	}
	return s.oom, s.peak
}

// reap waits for the init (the program) and records how it ended; PID 1's
// exit makes the kernel kill the rest of the sandbox first.
func (s *Sandbox) reap() {
	err := s.wait()
	s.waitOutputs()
	if pg, ok := s.cg.(*processGroup); ok {
		pg.exited(s.cmd.ProcessState)
	}
	// Nothing runs in the cgroup any more: its figures are final.
	s.statsMu.Lock()
	s.oom, s.peak = s.cg.stats()
	s.final = true
	s.statsMu.Unlock()
	s.exitErr = err
	close(s.done)
}

// wait waits for the init to exit and returns as exec.Cmd.Wait would.
func (s *Sandbox) wait() error {
	if s.cmd != nil {
		return s.cmd.Wait()
	}
	ps, err := s.proc.Wait()
	if err != nil {
		return err
	}
	if !ps.Success() {
		return &exec.ExitError{ProcessState: ps}
	}
	return nil
}

// Destroy kills every process of the sandbox, waits for them, closes the
// listener and removes the sandbox's cgroups. It is idempotent; when it
// returns nil nothing of the sandbox is left. If ctx ends first (without a
// deadline, after 30 s) it returns an error and may be called again.
func (s *Sandbox) Destroy(ctx context.Context) error {
	err := s.destroy(ctx)
	if err == nil {
		s.m.forget(s)
	}
	return err
}

func (s *Sandbox) destroy(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, destroyTimeout)
		defer cancel()
	}
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	if s.destroyed {
		return nil
	}
	select {
	case <-s.done:
	default:
		// SIGKILL to PID 1 of the namespace kills the rest with it; the
		// group kill also catches any process that would not be in the
		// namespace (none should be).
		if err := s.proc.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.m.log.Warn("kill sandbox init", "id", s.id, "err", err)
		}
		if err := s.cg.kill(); err != nil {
			s.m.log.Warn("kill sandbox cgroup", "id", s.id, "err", err)
		}
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("sandbox: destroy %s: %w", s.id, ctx.Err())
		}
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if err := removeDirs(ctx, s.cg); err != nil {
		return err
	}
	if s.tmp != "" {
		if err := os.RemoveAll(s.tmp); err != nil {
			return fmt.Errorf("sandbox: destroy %s: %w", s.id, err)
		}
	}
	// Nothing of the sandbox runs any more: its ids may be reused.
	if s.ids != nil {
		s.m.ids.put(*s.ids)
		s.ids = nil
	}
	s.destroyed = true
	return nil
}

// SetCPUMilli changes the sandbox's CPU cap (Spec.CPUMilli; 0 removes
// it). A caller may start a sandbox uncapped and cap it once its program
// has initialised: a cap of a few percent of a CPU (Lambda's 128 MB get
// 72 thousandths) otherwise stretches a runtime's start-up to the next
// 100 ms period as soon as it needs more CPU than one period's quota
// (measured: a Go runtime's cold start p90 of 75-95 ms against 25 ms
// uncapped). With BackendProcess it does nothing.
func (s *Sandbox) SetCPUMilli(milli int) error {
	if milli != 0 && (milli < 10 || milli > 1000*1024) {
		return fmt.Errorf("%w: cpu milli %d: want 0 or 10-%d", ErrInvalidSpec, milli, 1000*1024)
	}
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	if s.destroyed {
		return fmt.Errorf("sandbox: %s: destroyed", s.id)
	}
	s.statsMu.Lock()
	cg := s.cg
	s.statsMu.Unlock()
	if err := cg.setCPUMilli(milli); err != nil {
		return fmt.Errorf("sandbox: %s: %w", s.id, err)
	}
	return nil
}

// HostIDs returns the host uid and gid that are uid 0 and gid 0 inside
// the sandbox (its range is IDRangeSize long), or -1, -1 with
// BackendProcess.
func (s *Sandbox) HostIDs() (uid, gid int) {
	s.destroyMu.Lock()
	defer s.destroyMu.Unlock()
	if s.ids == nil {
		return -1, -1
	}
	return s.ids.uid, s.ids.gid
}

// cloneMounts clones each Mount's source as a detached mount tree
// (open_tree, with its submounts) and sets its attributes (read-only if
// asked, always nosuid and nodev, private propagation). The init attaches the trees with
// move_mount: it needs no access to the sources' host paths.
func cloneMounts(mounts []Mount) ([]*os.File, error) {
	var out []*os.File
	for _, mt := range mounts {
		fd, err := unix.OpenTree(unix.AT_FDCWD, mt.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("mount source %s: %w", mt.Source, err)
		}
		f := os.NewFile(uintptr(fd), "mount:"+mt.Target)
		out = append(out, f)
		// Private: no mount event propagates between the host's tree
		// (shared on systemd hosts) and the sandbox's copy.
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Propagation: unix.MS_PRIVATE}
		if mt.ReadOnly {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
		}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("mount source %s: set attributes: %w", mt.Source, err)
		}
	}
	return out, nil
}
