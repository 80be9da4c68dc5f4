//go:build linux

package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The spawner: the process that clones the C inits.
//
// Cloning an init straight from this process (os/exec) costs in
// proportion to this process's open files: the child copies the file
// table at the clone and closes it at the exec of the init, and this
// process holds about 5 files per sandbox (measured: 0.58 ms of the
// child's CPU per spawn with no extra files, 1.49 ms with 5,000, a tenth
// of a sandbox's whole cost at 1,000 sandboxes). The exec itself (a big
// dynamically linked binary, whose C constructor is the init) costs
// again. So a Manager with the C init starts one small helper, this
// binary re-executed as SpawnerArg0 (run_spawner in init_linux.c: C only,
// no Go runtime, five open files), and asks it for each init over a
// SOCK_SEQPACKET socket: each request carries the init's sync socket and
// error pipe (and on cgroup v2 the descriptor of its group, for
// CLONE_INTO_CGROUP); the spawner clones the init with CLONE_PARENT, so
// that the init is this process's child as before (reaped, signalled and
// Pdeathsig'd as if this process had cloned it), and answers its pid. The
// clone is a plain fork of the small spawner: the init runs the same C
// code (run_init) with no exec.
//
// Before its first request the spawner gets the base config (baseConfig:
// the system directories, devices, /proc lists and Config.MountTargets),
// builds the template of every sandbox's root from it and pivots into it
// (init_linux.c says how, and what that saves), then answers {0, 0}. A
// template that cannot be built is an ErrSetup with its message.
//
// NewManager starts the spawner (so that it fails if the spawner cannot
// run); a spawn restarts it if it died, and Shutdown ends it. It gets
// SIGKILL when this process dies (Pdeathsig and its pidfd of this
// process).

// spawner is a Manager's connection to its spawner process.
type spawner struct {
	base []byte     // its base config (baseConfig), set before the first start
	mu   sync.Mutex // one request at a time; guards the fields below
	cmd  *exec.Cmd  // nil until started, and after it died or stopped
	conn *net.UnixConn
	done chan struct{} // closed when cmd has been reaped
	// thread runs the spawner's starts, on an OS thread locked to a
	// goroutine that does nothing else until stop: the spawner's parent,
	// and through CLONE_PARENT every init's, whose Pdeathsig fires when
	// that thread exits. So no other goroutine can end that thread (the
	// Go runtime ends one when a goroutine exits locked to it).
	thread chan func()
}

// onThread runs f on the spawner's thread (starting it if needed).
func (sp *spawner) onThread(f func()) {
	if sp.thread == nil {
		sp.thread = make(chan func())
		go func(fs <-chan func()) {
			runtime.LockOSThread()
			for f := range fs {
				f()
			}
			// Nothing of this Manager depends on it any more.
			runtime.UnlockOSThread()
		}(sp.thread)
	}
	done := make(chan struct{})
	sp.thread <- func() {
		f()
		close(done)
	}
	<-done
}

// spawn clones an init (see above) with sync as its fdSync and errW as
// its fdErr, into the group of cgroupFD unless it is -1, and returns its
// process, a child of this process. A spawner that died before it got
// the request is restarted once; one that fails after it (or does not
// answer within spawnTimeout) is stopped, to be restarted by the next
// spawn, and the request fails: it may have cloned an init, which then
// dies when the caller closes its ends (an unreaped zombie, in that rare
// case: its pid never reached this process).
func (sp *spawner) spawn(sync, errW *os.File, cgroupFD int) (*os.Process, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if sp.cmd == nil {
			if err := sp.startLocked(); err != nil {
				return nil, err
			}
		}
		pid, sent, err := sp.requestLocked(sync, errW, cgroupFD)
		if err == nil {
			// Our child, not yet reaped: its pid cannot be reused.
			return os.FindProcess(pid)
		}
		var ce cloneError
		if errors.As(err, &ce) {
			return nil, err // the clone failed; the spawner is fine
		}
		sp.stopLocked() // the spawner is gone or broken
		if sent || attempt > 0 {
			return nil, err
		}
	}
}

// spawnTimeout bounds one request to the spawner (a clone takes about a
// millisecond).
const spawnTimeout = 30 * time.Second

// cloneError is the errno of an init's clone in the spawner.
type cloneError struct{ errno syscall.Errno }

func (e cloneError) Error() string { return "sandbox: clone the init: " + e.errno.Error() }
func (e cloneError) Unwrap() error { return e.errno }

// requestLocked sends one request and reads its answer: the pid, or the
// clone's errno (a cloneError); any other error is the spawner's, and
// sent says whether the request had reached it.
func (sp *spawner) requestLocked(sync, errW *os.File, cgroupFD int) (pid int, sent bool, err error) {
	fds := []int{int(sync.Fd()), int(errW.Fd())}
	req := make([]byte, 4)
	if cgroupFD >= 0 {
		fds = append(fds, cgroupFD)
		binary.NativeEndian.PutUint32(req, 1)
	}
	sp.conn.SetDeadline(time.Now().Add(spawnTimeout))
	if _, _, err := sp.conn.WriteMsgUnix(req, unix.UnixRights(fds...), nil); err != nil {
		return 0, false, fmt.Errorf("sandbox: spawner: %w", err)
	}
	var reply [8]byte
	n, _, _, _, err := sp.conn.ReadMsgUnix(reply[:], nil)
	if err == nil && n != len(reply) {
		err = fmt.Errorf("an answer of %d bytes", n)
	}
	if err != nil {
		return 0, true, fmt.Errorf("sandbox: spawner: %w", err)
	}
	if p := int32(binary.NativeEndian.Uint32(reply[:4])); p > 0 {
		return int(p), true, nil
	}
	return 0, true, cloneError{syscall.Errno(binary.NativeEndian.Uint32(reply[4:]))}
}

// spawnerStartTimeout bounds the spawner's start: its exec and the
// template's mounts take a few milliseconds.
const spawnerStartTimeout = 30 * time.Second

// startLocked starts the spawner process, sends its base config and
// waits until it has built the template. A failure of the template is
// an ErrSetup with the spawner's message.
func (sp *spawner) startLocked() (err error) {
	var files []*os.File // closed on return; the child has its copies
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: spawner: %w", err)
	}
	child := os.NewFile(uintptr(pair[1]), "spawner")
	parent := os.NewFile(uintptr(pair[0]), "spawner")
	files = append(files, child, parent)
	c, err := net.FileConn(parent) // a dup
	if err != nil {
		return fmt.Errorf("sandbox: spawner: %w", err)
	}
	conn := c.(*net.UnixConn)
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	errR, errW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: spawner: %w", err)
	}
	files = append(files, errR, errW)
	selfFD, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("sandbox: spawner: %w", err)
	}
	self := os.NewFile(uintptr(selfFD), "pidfd")
	files = append(files, self)
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{SpawnerArg0},
		Env:        []string{},
		ExtraFiles: []*os.File{child, errW, self}, // fdSync, fdErr, fdParent
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	sp.onThread(func() { err = cmd.Start() })
	if err != nil {
		return fmt.Errorf("sandbox: start the spawner: %w", err)
	}
	// The spawner's ends are its own now: EOF when it closes them or dies.
	child.Close()
	errW.Close()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	// The base config as the inits' configs go: its length, then the rest
	// (two packets); then the answer {0, 0} once the template is built.
	conn.SetDeadline(time.Now().Add(spawnerStartTimeout))
	_, err = conn.Write(sp.base[:4])
	if err == nil {
		_, err = conn.Write(sp.base[4:])
	}
	var reply [8]byte
	n := 0
	if err == nil {
		n, _, _, _, err = conn.ReadMsgUnix(reply[:], nil)
	}
	if err == nil && (n != len(reply) || reply != [8]byte{}) {
		err = fmt.Errorf("answered %x", reply[:n])
	}
	if err != nil {
		// It died (or hung): its message says why, if it left one.
		cmd.Process.Kill()
		errR.SetReadDeadline(time.Now().Add(spawnerStartTimeout))
		msg, _ := io.ReadAll(io.LimitReader(errR, 64*1024))
		if len(msg) > 0 {
			return fmt.Errorf("%w: the sandbox spawner: %s", ErrSetup, initMessage(msg))
		}
		return fmt.Errorf("sandbox: start the spawner: %w", err)
	}
	conn.SetDeadline(time.Time{})
	sp.cmd, sp.conn, sp.done = cmd, conn, done
	return nil
}

// start starts the spawner unless it runs.
func (sp *spawner) start() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.cmd != nil {
		return nil
	}
	return sp.startLocked()
}

// stop ends the spawner (Shutdown) and waits for it; it is started again
// by the next spawn.
func (sp *spawner) stop() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.stopLocked()
	if sp.thread != nil {
		close(sp.thread)
		sp.thread = nil
	}
}

func (sp *spawner) stopLocked() {
	if sp.cmd == nil {
		return
	}
	// Closing our end ends it (EOF); the kill is for one that is stuck.
	sp.conn.Close()
	sp.cmd.Process.Kill()
	<-sp.done
	sp.cmd, sp.conn, sp.done = nil, nil, nil
}

// pid returns the spawner's pid, or 0 if it is not running (for the
// tests).
func (sp *spawner) pid() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.cmd == nil {
		return 0
	}
	return sp.cmd.Process.Pid
}
