//go:build linux

package sandbox

import (
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// listenInNetns opens a TCP listener on addr (an IP literal) inside the
// network namespace of process pid, bringing its loopback up first.
//
// It runs on a goroutine of its own locked to its OS thread: setns changes
// the namespace of that thread only. If switching the thread back fails the
// goroutine exits still locked, so the runtime discards the thread instead
// of reusing it in the wrong namespace. (A discarded thread that had forked
// a Go init would deliver that sandbox's Pdeathsig; this only happens
// when setns back to our own namespace fails, which it does not short of
// resource exhaustion. The C inits' parent thread is the spawner's, which
// no other goroutine runs on: spawner_linux.go.)
func listenInNetns(pid int, addr string) (net.Listener, error) {
	ch := make(chan listenResult, 1)
	go listenOnLockedThread(pid, addr, ch)
	r := <-ch
	return r.ln, r.err
}

// listenOnLockedThread is listenInNetns's goroutine: it sends the
// listener (or the error) on ch.
func listenOnLockedThread(pid int, addr string, ch chan<- listenResult) {
	runtime.LockOSThread()
	ln, restored, err := listenLocked(pid, addr)
	if restored {
		runtime.UnlockOSThread()
	}
	ch <- listenResult{ln, err}
}

// listening is a listener being made by listenInNetns on a goroutine of
// its own while a start goes on; nil when there is no address.
type listening struct {
	ch    chan listenResult
	taken bool
}

type listenResult struct {
	ln  net.Listener
	err error
}

// startListening starts making a listener on addr in the network
// namespace of pid ("" : none).
func startListening(pid int, addr string) *listening {
	if addr == "" {
		return nil
	}
	l := &listening{ch: make(chan listenResult, 1)}
	go listenOnLockedThread(pid, addr, l.ch)
	return l
}

// wait returns the listener (nil, nil without an address); from then on
// it is the caller's.
func (l *listening) wait() (net.Listener, error) {
	if l == nil {
		return nil, nil
	}
	l.taken = true
	r := <-l.ch
	return r.ln, r.err
}

// discard closes the listener unless wait took it.
func (l *listening) discard() {
	if l == nil || l.taken {
		return
	}
	if r := <-l.ch; r.ln != nil {
		r.ln.Close()
	}
}

// listenLocked does listenInNetns's work on the locked thread; restored
// reports whether the thread is back in its original namespace.
func listenLocked(pid int, addr string) (ln net.Listener, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("sandbox: open own netns: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("sandbox: open sandbox netns: %w", err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("sandbox: setns: %w", err)
	}
	if err = loopbackUp(); err == nil {
		// Socket creation happens on this thread, in the sandbox's netns.
		ln, err = net.Listen("tcp", addr)
	}
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, false, fmt.Errorf("sandbox: setns back: %w", rerr)
	}
	if err != nil {
		return nil, true, fmt.Errorf("sandbox: listen in sandbox: %w", err)
	}
	return ln, true, nil
}

// loopbackUp sets IFF_UP on "lo" in the calling thread's network
// namespace (a new namespace has it down).
//
// It sets the flag even when it reads it set: the sandbox's init brings
// "lo" up too, at the same time, and the kernel sets IFF_UP before it
// adds 127.0.0.1 to the device (in the NETDEV_UP notifiers, under the
// RTNL lock), so a listener made as soon as the flag reads set could find
// no such address yet (EADDRNOTAVAIL, seen in TestCreateDestroy200 under
// CI's load). SIOCSIFFLAGS takes the RTNL lock, so it returns only once
// the init's bringing up, address included, is done.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: set flags: %w", err)
	}
	return nil
}
