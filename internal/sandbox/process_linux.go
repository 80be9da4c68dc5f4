//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// newProcessManager makes a Manager of the process backend (no isolation).
func newProcessManager(cfg Config) *Manager {
	log := logger(cfg)
	log.Error(ProcessBackendWarning)
	return &Manager{log: log, backend: BackendProcess, live: map[string]*Sandbox{}}
}

// startProcess starts spec.Path as a plain child process (BackendProcess).
func (m *Manager) startProcess(ctx context.Context, spec *Spec) (_ *Sandbox, err error) {
	tmp, err := os.MkdirTemp("", "ember-sandbox-"+spec.ID+"-")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	s := &Sandbox{id: spec.ID, m: m, tmp: tmp, done: make(chan struct{})}
	defer func() {
		if err != nil {
			if s.ln != nil {
				s.ln.Close()
			}
			os.RemoveAll(tmp)
		}
	}()
	env := make([]string, 0, len(spec.Env)+2)
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, k+"="+hostPath(spec.Mounts, v))
	}
	env = setEnv(env, "TMPDIR", tmp)
	if spec.ListenAddr != "" {
		// The host's network: the same address, any free port.
		ap, _ := netip.ParseAddrPort(spec.ListenAddr)
		if s.ln, err = net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), 0).String()); err != nil {
			return nil, fmt.Errorf("sandbox: listen: %w", err)
		}
		if spec.ListenAddrEnv != "" {
			env = setEnv(env, spec.ListenAddrEnv, s.ln.Addr().String())
		}
	}
	prog := hostPath(spec.Mounts, spec.Path)
	args := []string{prog}
	for _, a := range spec.Args {
		args = append(args, hostPath(spec.Mounts, a))
	}
	cmd := &exec.Cmd{
		Path:      prog,
		Args:      args,
		Env:       env,
		Dir:       hostPath(spec.Mounts, spec.Dir),
		Stdout:    spec.Stdout,
		Stderr:    spec.Stderr,
		WaitDelay: waitDelay,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if spec.Dir == "/" {
		cmd.Dir = ""
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSetup, spec.ID, err)
	}
	s.cmd, s.proc, s.pid = cmd, cmd.Process, cmd.Process.Pid
	s.cg = &processGroup{pgid: s.pid}
	go s.reap()
	m.log.Warn("sandbox started without isolation", "id", spec.ID, "pid", s.pid, "backend", BackendProcess)
	return s, nil
}

// hostPath maps a path of the sandbox's view to the host: a value under a
// Mount's Target is moved under its Source (the last matching Mount wins,
// as the last mount would cover the others).
func hostPath(mounts []Mount, p string) string {
	if !path.IsAbs(p) {
		return p
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		t := mounts[i].Target
		if p == t {
			return mounts[i].Source
		}
		if rest, ok := strings.CutPrefix(p, t+"/"); ok {
			return filepath.Join(mounts[i].Source, rest)
		}
	}
	return p
}

// processGroup stands for a cgroup in the process backend: the sandbox's
// process group.
type processGroup struct {
	pgid int
	peak atomic.Int64 // set by exited
}

func (g *processGroup) cloneFD() int         { return -1 }
func (g *processGroup) closeCloneFD()        {}
func (g *processGroup) attach(pid int) error { return nil }
func (g *processGroup) dirs() []string       { return nil }

func (g *processGroup) setLimits(limits) error { return nil }

func (g *processGroup) setCPUMilli(int) error { return nil }

func (g *processGroup) kill() error {
	if err := unix.Kill(-g.pgid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return err
	}
	return nil
}

func (g *processGroup) empty() (bool, error) {
	err := unix.Kill(-g.pgid, 0)
	switch {
	case err == unix.ESRCH:
		return true, nil
	case err == nil || err == unix.EPERM:
		return false, nil
	default:
		return false, err
	}
}

// exited records the program's peak RSS and kills what is left of its
// group, as the native backend's PID namespace does; reap calls it.
func (g *processGroup) exited(ps *os.ProcessState) {
	if ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			g.peak.Store(ru.Maxrss << 10)
		}
	}
	g.kill()
}

// stats is the program's peak RSS once it exited; no OOM kills.
func (g *processGroup) stats() (bool, int64) { return false, g.peak.Load() }
