//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Starting a sandbox with the C init (init_linux.c), and the init pool.
//
// The C init is cloned by the spawner (spawner_linux.go) into new PID,
// mount, network, IPC and UTS namespaces, as host root, with a unix
// socket for its config and no idea yet of its sandbox; its root is a
// copy of the spawner's template (init_linux.c). Its config comes with
// stdout, stderr and the Spec's mount trees (SCM_RIGHTS). It sets up the
// rest of its root, makes its user namespace (mapIDs) and waits for
// goByte before it drops to the sandbox's uid and execs the program.
//
// On cgroup v1, moving a process into a group (cgroup.procs) waits for an
// RCU grace period: 5-15 ms measured on a loaded 2-vCPU host, the largest
// single cost of a Start. So on v1 the Manager can keep Config.InitPool
// inits started ahead, each already in a group of its own named
// _pool-<seq> (no Spec.ID has an underscore) without limits; Start takes
// one, renames its group to the Spec's ID (v1 renames a group in place,
// processes and all), sets the limits and sends the config. A background
// goroutine refills the pool; Shutdown empties it. On v2 the init is
// cloned straight into its group (CLONE_INTO_CGROUP): there is no attach
// to save, and v2 cannot rename groups, so there is no pool.

// initPool holds the ready inits of a Manager.
type initPool struct {
	size      int // Config.InitPool
	mu        sync.Mutex
	ready     []*preparedInit
	refilling bool
	seq       int
	wg        sync.WaitGroup // the refill goroutine
	failed    bool           // preparing one failed: no more refills
	lastTake  time.Time      // when an init was last taken
}

// refillDelay is how long after a start the pool's refill waits: its v1
// cgroup attach (an RCU grace period, about 12 ms here) blocks forks,
// execs and thread creations on the host meanwhile, which are what the
// start just taken does next (the program's exec, its runtime's threads).
// Measured by ember bench: cold invoke p50 17-18 ms with an immediate
// refill, 7-8 ms with this delay.
const refillDelay = 25 * time.Millisecond

// baseConfig is the spawner's config, from which it builds the template
// of every sandbox's root (init_linux.c), with mount points for targets.
func baseConfig(targets []string) []byte {
	return (&childConfig{Targets: targets, SystemDirs: systemDirs, Devices: devices, ProcMasked: procMasked, ProcReadOnly: procReadOnly}).encode()
}

// preparedInit is a C init started and in its cgroup, waiting for its
// sandbox's config. s has no ID, id range nor listener yet.
type preparedInit struct {
	s    *Sandbox
	sync *net.UnixConn // fdSync
	errR *os.File      // fdErr's read end
}

// close releases the parent's ends of the init's pipes.
func (p *preparedInit) close() {
	p.sync.Close()
	p.errR.Close()
}

// prepareInit creates group name (with lim unless zero), starts a C init
// in it and (v1) moves it in.
func (m *Manager) prepareInit(name string, lim limits) (_ *preparedInit, err error) {
	cg, err := m.cg.create(name, lim)
	if err != nil {
		return nil, err
	}
	// child: the init's ends, closed once it started.
	var child []*os.File
	closeChild := func() {
		for _, f := range child {
			f.Close()
		}
	}
	pair, err1 := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	var conn net.Conn
	var syncChild *os.File
	if err1 == nil {
		syncChild = os.NewFile(uintptr(pair[1]), "sync")
		child = append(child, syncChild)
		parent := os.NewFile(uintptr(pair[0]), "sync")
		conn, err1 = net.FileConn(parent) // a dup
		parent.Close()
	}
	errR, errW, err2 := os.Pipe()
	if err2 == nil {
		child = append(child, errW)
	}
	if err := errors.Join(err1, err2); err != nil {
		closeChild()
		if conn != nil {
			conn.Close()
		}
		if errR != nil {
			errR.Close()
		}
		m.removeGroup(context.Background(), cg)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	// The spawner (spawner_linux.go) clones it, as this process's child.
	proc, err := m.spawner.spawn(syncChild, errW, cg.cloneFD())
	cg.closeCloneFD()
	closeChild()
	if err != nil {
		conn.Close()
		errR.Close()
		m.removeGroup(context.Background(), cg)
		return nil, fmt.Errorf("sandbox: start init: %w", err)
	}
	p := &preparedInit{
		s:    &Sandbox{pid: proc.Pid, proc: proc, cg: cg, m: m, done: make(chan struct{})},
		sync: conn.(*net.UnixConn),
		errR: errR,
	}
	go p.s.reap()
	if err := cg.attach(p.s.pid); err != nil {
		m.discard(p)
		return nil, err
	}
	return p, nil
}

// discard kills a prepared init that will not be used and removes its
// group.
func (m *Manager) discard(p *preparedInit) {
	if p.sync != nil {
		p.sync.Close()
	}
	if p.errR != nil {
		p.errR.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
	defer cancel()
	if err := p.s.destroy(ctx); err != nil {
		m.log.Error("discard a pooled init", "err", err)
	}
}

// takeInit returns an init for sandbox id, in its group named id with
// limits lim: from the pool if it has one (v1), else started now.
func (m *Manager) takeInit(id string, lim limits) (*preparedInit, error) {
	if m.cg.version() != 1 {
		return m.prepareInit(id, lim)
	}
	pool := &m.pool
	var p *preparedInit
	pool.mu.Lock()
	pool.lastTake = time.Now()
	for p == nil && len(pool.ready) > 0 {
		p = pool.ready[0]
		pool.ready = pool.ready[1:]
		select {
		case <-p.s.done: // died while waiting (it should not)
			msg, _ := io.ReadAll(io.LimitReader(p.errR, 64*1024))
			m.log.Warn("sandbox init pool: an init died while it waited", "message", initMessage(msg))
			defer m.discard(p)
			p = nil
		default:
		}
	}
	pool.mu.Unlock()
	m.refill()
	if p == nil {
		return m.prepareInit(id, lim)
	}
	g := p.s.cg.(*v1Group)
	err := g.rename(id)
	if err == nil {
		err = g.setLimits(lim)
		if err != nil {
			err = fmt.Errorf("sandbox: cgroup %s: %w", id, err)
		}
	}
	if err != nil {
		m.discard(p)
		return nil, err
	}
	return p, nil
}

// refill starts the pool's refill goroutine unless it runs, the Manager
// is shut down or a refill failed.
func (m *Manager) refill() {
	pool := &m.pool
	pool.mu.Lock()
	defer pool.mu.Unlock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if pool.refilling || pool.failed || closed || len(pool.ready) >= pool.size {
		return
	}
	pool.refilling = true
	pool.wg.Add(1)
	go func() {
		defer pool.wg.Done()
		for {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			pool.mu.Lock()
			if closed || len(pool.ready) >= pool.size {
				pool.refilling = false
				pool.mu.Unlock()
				return
			}
			if wait := time.Until(pool.lastTake.Add(refillDelay)); wait > 0 {
				pool.mu.Unlock()
				time.Sleep(wait) // bounded: refillDelay
				continue
			}
			pool.seq++
			name := "_pool-" + strconv.Itoa(pool.seq)
			pool.mu.Unlock()
			p, err := m.prepareInit(name, limits{})
			pool.mu.Lock()
			if err != nil {
				m.log.Error("sandbox init pool: no more inits prepared ahead", "err", err)
				pool.failed, pool.refilling = true, false
				pool.mu.Unlock()
				return
			}
			pool.ready = append(pool.ready, p)
			pool.mu.Unlock()
		}
	}()
}

// drainPool stops refilling and discards the pooled inits (Shutdown).
func (m *Manager) drainPool() {
	pool := &m.pool
	pool.wg.Wait() // it stops: m.closed is set
	pool.mu.Lock()
	ready := pool.ready
	pool.ready = nil
	pool.mu.Unlock()
	for _, p := range ready {
		m.discard(p)
	}
}

// pooledPids lists the pids of the pooled inits (for the tests).
func (m *Manager) pooledPids() []int {
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	var out []int
	for _, p := range m.pool.ready {
		out = append(out, p.s.pid)
	}
	return out
}

// startC starts a sandbox with the C init.
func (m *Manager) startC(ctx context.Context, spec *Spec) (_ *Sandbox, err error) {
	tr := startTrace{t0: time.Now()}
	ids, err := m.ids.get()
	if err != nil {
		return nil, err
	}
	tr.mark(&tr.ids)
	p, err := m.takeInit(spec.ID, limits{
		memoryBytes: int64(spec.MemoryMB) << 20,
		pidsMax:     spec.PidsMax,
		cpuWeight:   spec.CPUWeight,
		cpuMilli:    spec.CPUMilli,
	})
	if err != nil {
		m.ids.put(ids)
		return nil, err
	}
	tr.mark(&tr.take)
	s := p.s
	s.id = spec.ID
	s.destroyMu.Lock()
	s.ids = &ids // destroy releases it from here on
	s.destroyMu.Unlock()
	defer p.close()
	defer m.destroyIfFailed(ctx, s, &err)
	// Bound the handshake by ctx: expiry unblocks the socket and pipe.
	defer unblockOnDone(ctx, p.sync, p.errR)()
	// The Runtime API's listener is made in the sandbox's network
	// namespace (which the init has from its clone) while the init is
	// sent its config and sets up its root, and its ids are mapped.
	lst := startListening(s.pid, spec.ListenAddr)
	defer lst.discard()

	trees, err := cloneMounts(spec.Mounts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSetup, spec.ID, err)
	}
	out, err := s.outputs(spec.Stdout, spec.Stderr)
	if err != nil {
		for _, f := range trees {
			f.Close()
		}
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	fds := []int{int(out[0].Fd()), int(out[1].Fd())}
	var targets []string
	for i, mt := range spec.Mounts {
		fds = append(fds, int(trees[i].Fd()))
		targets = append(targets, mt.Target)
	}
	cfg := (&childConfig{
		Hostname: spec.ID, Path: spec.Path, Argv: append([]string{spec.Path}, spec.Args...), Env: spec.Env,
		Dir: spec.Dir, Targets: targets, TmpOpts: fmt.Sprintf("size=%dm,mode=1777", spec.TmpSizeMB),
		UID: uint32(spec.UID), GID: uint32(spec.GID),
		// The system directories, devices and /proc lists are the
		// spawner's base config's (its forks have it).
		Seccomp: m.seccomp,
	}).encode()
	// The length with the descriptors, then the rest.
	_, _, err = p.sync.WriteMsgUnix(cfg[:4], unix.UnixRights(fds...), nil)
	for _, f := range append(out[:], trees...) {
		f.Close() // the init has its copies (or will never need them)
	}
	if err == nil {
		_, err = p.sync.Write(cfg[4:])
	}
	if err != nil {
		return nil, m.setupError(spec.ID, p.errR, fmt.Errorf("sandbox: send config: %w", ctxErr(ctx, err)))
	}
	tr.mark(&tr.send)
	// The init sets up its root meanwhile.
	if err := m.mapIDs(ctx, spec.ID, s.pid, ids, p.errR); err != nil {
		return nil, err
	}
	tr.mark(&tr.userns)
	if s.ln, err = lst.wait(); err != nil {
		return nil, err
	}
	tr.mark(&tr.listen)
	if _, err := p.sync.Write([]byte{goByte}); err != nil {
		return nil, m.setupError(spec.ID, p.errR, fmt.Errorf("sandbox: send go: %w", ctxErr(ctx, err)))
	}
	// errW closes at exec (close-on-exec) or when the init dies: EOF with
	// no message means the program was exec'd.
	msg, err := io.ReadAll(io.LimitReader(p.errR, 64*1024))
	if err != nil {
		return nil, fmt.Errorf("sandbox: wait for setup: %w", ctxErr(ctx, err))
	}
	if len(msg) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrSetup, spec.ID, initMessage(msg))
	}
	tr.mark(&tr.exec)
	m.log.DebugContext(ctx, "sandbox started", "sandbox", spec.ID, "pid", s.pid, "ids", tr.ids, "take_init", tr.take,
		"send_config", tr.send, "userns", tr.userns, "listen", tr.listen, "exec", tr.exec, "total", time.Since(tr.t0))
	if traceHook != nil {
		traceHook(tr)
	}
	return s, nil
}

// outputs returns the files to hand the init as its stdout and stderr:
// an *os.File writer itself, /dev/null for nil, else the write end of a
// pipe that a goroutine copies to the writer until every process of the
// sandbox closed it (reap waits for it, at most waitDelay after the
// init's exit). The caller closes the returned files once sent.
func (s *Sandbox) outputs(stdout, stderr io.Writer) ([2]*os.File, error) {
	var out [2]*os.File
	for i, w := range []io.Writer{stdout, stderr} {
		if i == 1 && w == stdout {
			f, err := dup(out[0])
			out[1] = f
			if err != nil {
				out[0].Close()
				return out, err
			}
			continue
		}
		var err error
		switch f := w.(type) {
		case nil:
			out[i], err = os.Open(os.DevNull)
		case *os.File:
			out[i], err = dup(f)
		default:
			var r *os.File
			if r, out[i], err = os.Pipe(); err == nil {
				done := make(chan struct{})
				s.outMu.Lock()
				s.outputs_ = append(s.outputs_, output{r: r, done: done})
				s.outMu.Unlock()
				go func() {
					defer close(done)
					io.Copy(w, r)
				}()
			}
		}
		if err != nil {
			if i == 1 {
				out[0].Close()
			}
			return out, err
		}
	}
	return out, nil
}

// output is a pipe from the sandbox fed to a writer by a goroutine.
type output struct {
	r    *os.File
	done chan struct{}
}

// waitOutputs waits (at most waitDelay) for the output goroutines to
// reach EOF, then closes the pipes (which ends them).
func (s *Sandbox) waitOutputs() {
	s.outMu.Lock()
	outs := s.outputs_
	s.outputs_ = nil
	s.outMu.Unlock()
	t := time.NewTimer(waitDelay)
	defer t.Stop()
	for _, o := range outs {
		select {
		case <-o.done:
		case <-t.C:
		}
		o.r.Close()
		<-o.done
	}
}

// dup returns a close-on-exec copy of f.
func dup(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
