//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testSeq atomic.Int64

// newTestManager returns a Manager with a parent group of its own, shut
// down (and checked to leave no parent group) at the end of the test.
func newTestManager(t *testing.T) *Manager {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("ember-test-%d-%d", os.Getpid(), testSeq.Add(1))
	m, err := NewManager(Config{CgroupParent: name, InitPool: testInitPool, MountTargets: testMountTargets})
	if err != nil {
		t.Fatal(err)
	}
	m.initArg0 = testInitArg0
	t.Cleanup(func() { shutdownAndCheck(t, m) })
	return m
}

// settle waits until m's init pool (initpool_linux.go) is full or no
// longer refilled, so that counts of fds and goroutines are stable.
func settle(t *testing.T, m *Manager) {
	t.Helper()
	waitFor(t, 10*time.Second, "the init pool", func() bool {
		m.pool.mu.Lock()
		defer m.pool.mu.Unlock()
		return !m.pool.refilling
	})
}

// testInitArg0 is the init newTestManager's Managers use: InitArg0 (the C
// init when cgo is on), or goInitArg0 in TestGoInit.
var testInitArg0 = InitArg0

// testMountTargets is newTestManager's Config.MountTargets: the targets
// the tests mount, so that their sandboxes' roots come from the template
// (init_linux.c), or nil in TestFullRoot.
var testMountTargets = []string{"/var/task", "/opt/data", "/opt/shared", "/out"}

// testInitPool is newTestManager's Config.InitPool: 2, or 0 in
// TestNoInitPool.
var testInitPool = 2

func shutdownAndCheck(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spawner := m.spawner.pid()
	if err := m.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if spawner != 0 && slices.Contains(childProcs(), spawner) {
		t.Errorf("spawner %d left after Shutdown", spawner)
	}
	for _, d := range parentDirs(m) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("parent cgroup %s left after Shutdown (%v)", d, err)
		}
	}
}

func parentDirs(m *Manager) []string {
	switch d := m.cg.(type) {
	case *v1Driver:
		var out []string
		for _, p := range d.parents {
			out = append(out, p)
		}
		return out
	case *v2Driver:
		return []string{d.parent}
	}
	return nil
}

// helperSpec returns a Spec running the helper with args.
func helperSpec(id string, out *syncBuffer, args ...string) Spec {
	return Spec{
		ID:        id,
		Path:      "/var/task/helper",
		Args:      args,
		Env:       []string{"A=1"},
		Dir:       "/var/task",
		Mounts:    []Mount{{Source: helperDir, Target: "/var/task", ReadOnly: true}},
		TmpSizeMB: 8,
		MemoryMB:  64,
		Stdout:    out,
		Stderr:    out,
	}
}

// waitDone waits for the sandbox to exit.
func waitDone(t *testing.T, s *Sandbox) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("sandbox %s did not exit", s.ID())
	}
}

func destroy(t *testing.T, s *Sandbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
}

// run starts spec, waits for the exit and destroys the sandbox.
func run(t *testing.T, m *Manager, spec Spec) (*Sandbox, string) {
	t.Helper()
	out := spec.Stdout.(*syncBuffer)
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitDone(t, s)
	destroy(t, s)
	return s, out.String()
}

// waitFor polls until cond holds or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestIsolation(t *testing.T) {
	m := newTestManager(t)
	data := t.TempDir()
	os.Chmod(data, 0o755)
	os.WriteFile(filepath.Join(data, "data.txt"), []byte("payload"), 0o644)
	outDir := t.TempDir()
	os.Chmod(outDir, 0o777)

	var out syncBuffer
	spec := helperSpec("iso-1", &out, "id", "env", "cwd", "ls:/", "ps", "status",
		"write:/x", "write:/var/task/x", "write:/usr/x", "write:/etc/x", "write:/dev/x", "write:/tmp/x", "write:/dev/shm/x", "fds",
		"write:/out/x", "cat:/opt/data/data.txt", "cat:/proc/self/cgroup", "statfs:/tmp", "ls:/dev", "exit:3")
	spec.Env = []string{"A=1", "B=two words", "EMPTY=", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"}
	spec.UID, spec.GID = 4242, 4343
	spec.TmpSizeMB = 16
	spec.Mounts = append(spec.Mounts,
		Mount{Source: data, Target: "/opt/data", ReadOnly: true},
		Mount{Source: outDir, Target: "/out"})
	s, o := run(t, m, spec)
	t.Logf("output:\n%s", o)

	if got, want := line(t, o, "id"), "pid=1 uid=4242 gid=4343 euid=4242 egid=4343 groups=[] hostname=iso-1"; got != want {
		t.Errorf("id: got %q, want %q", got, want)
	}
	var env []string
	for _, l := range lines(o, "env") {
		v, err := strconv.Unquote(l)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, v)
	}
	if !slices.Equal(env, spec.Env) {
		t.Errorf("env: got %q, want %q", env, spec.Env)
	}
	if got := line(t, o, "cwd"); got != "/var/task <nil>" {
		t.Errorf("cwd: %q", got)
	}
	root := strings.Fields(line(t, o, "ls /"))[0]
	for _, want := range []string{"bin", "dev", "etc", "lib", "opt", "out", "proc", "tmp", "usr", "var"} {
		if !slices.Contains(strings.Split(root, ","), want) {
			t.Errorf("/ lacks %s: %s", want, root)
		}
	}
	for _, not := range []string{"work", "root", "home", "old_root", "boot"} {
		if slices.Contains(strings.Split(root, ","), not) {
			t.Errorf("/ has host's %s: %s", not, root)
		}
	}
	if got := line(t, o, "ps"); got != "1" {
		t.Errorf("processes visible: %s, want only 1", got)
	}
	st := lines(o, "status")
	if !slices.Contains(st, "CapEff: 0000000000000000") || !slices.Contains(st, "NoNewPrivs: 1") {
		t.Errorf("status: %q", st)
	}
	for _, p := range []string{"/x", "/var/task/x", "/usr/x", "/etc/x", "/dev/x"} {
		if got := line(t, o, "write "+p); !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s: %s, want read-only file system", p, got)
		}
	}
	for _, p := range []string{"/tmp/x", "/dev/shm/x", "/out/x"} {
		if got := line(t, o, "write "+p); got != "<nil>" {
			t.Errorf("write %s: %s", p, got)
		}
	}
	// The program holds its stdio and what its own runtime opened, nothing
	// of Ember's, the spawner's or the init's (sockets, pidfds, files).
	if got := line(t, o, "fds"); !strings.HasSuffix(got, " <nil>") {
		t.Errorf("fds: %s", got)
	}
	for _, fd := range lines(o, "fd") {
		n, target, _ := strings.Cut(fd, " ")
		ok := target == "/dev/null" || strings.HasPrefix(target, "pipe:[") || target == "/proc/1/fd" ||
			target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]"
		if !ok || n != "0" && target == "/dev/null" {
			t.Errorf("fd %s: %s", n, target)
		}
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "x")); err != nil || string(b) != "x" {
		t.Errorf("read-write mount: %q %v", b, err)
	}
	if got := line(t, o, "cat /opt/data/data.txt"); got != `"payload" <nil>` {
		t.Errorf("cat: %s", got)
	}
	if got := line(t, o, "statfs /tmp"); got != fmt.Sprint(16<<20, " <nil>") {
		t.Errorf("statfs /tmp: %s, want %d", got, 16<<20)
	}
	// The cgroup namespace makes the sandbox's own groups its root.
	if cg := line(t, o, "cat /proc/self/cgroup"); strings.Contains(cg, "ember") {
		t.Errorf("host cgroup paths visible: %s", cg)
	}
	wantDev := []string{"fd", "shm", "stderr", "stdin", "stdout"}
	for _, d := range devices {
		if _, err := os.Stat("/dev/" + d); err == nil {
			wantDev = append(wantDev, d)
		}
	}
	sort.Strings(wantDev)
	if devs := strings.Fields(line(t, o, "ls /dev"))[0]; devs != strings.Join(wantDev, ",") {
		t.Errorf("/dev: %s, want %s", devs, strings.Join(wantDev, ","))
	}
	if err := s.ExitError(); err == nil || err.Error() != "exit status 3" {
		t.Errorf("ExitError: %v, want exit status 3", err)
	}
	if s.OOMKilled() {
		t.Error("OOMKilled without OOM")
	}
}

func TestExitZero(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	s, o := run(t, m, helperSpec("exit0", &out, "hello"))
	if err := s.ExitError(); err != nil || o != "hello\n" {
		t.Errorf("ExitError %v, output %q", err, o)
	}
}

func TestNetwork(t *testing.T) {
	m := newTestManager(t)
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	var out syncBuffer
	spec := helperSpec("net-1", &out, "dial:"+host.Addr().String(), "dial:127.0.0.1:9001", "dial:1.1.1.1:53")
	spec.ListenAddr = "127.0.0.1:9001"
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, s)
	ln := s.Listener()
	if ln == nil {
		t.Fatal("no listener")
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if msg != "hello from inside\n" {
		t.Errorf("from inside: %q %v", msg, err)
	}
	waitDone(t, s)
	o := out.String()
	if got := line(t, o, "dial "+host.Addr().String()); !strings.Contains(got, "connection refused") {
		t.Errorf("dial to the host's loopback: %s, want connection refused", got)
	}
	if got := line(t, o, "dial 127.0.0.1:9001"); got != "<nil>" {
		t.Errorf("dial ListenAddr: %s", got)
	}
	if got := line(t, o, "dial 1.1.1.1:53"); !strings.Contains(got, "network is unreachable") {
		t.Errorf("dial outside: %s, want network is unreachable", got)
	}
	// The listener is not reachable from the host's namespace.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("listener reachable from the host")
	}
}

func TestMemoryLimit(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	spec := helperSpec("oom-1", &out, "alloc:100", "exit:0")
	spec.MemoryMB = 32
	s, o := run(t, m, spec)
	if err := s.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError %v, want signal: killed; output %q", err, o)
	}
	if !s.OOMKilled() {
		t.Error("OOMKilled false")
	}
	// v1 may charge a page or so past the limit to a task being killed
	// (seen in 3 runs of 10 before the init pool too).
	if peak := s.MaxMemoryBytes(); peak < 24<<20 || peak > 32<<20+64<<10 {
		t.Errorf("MaxMemoryBytes %d, want near the 32 MB limit", peak)
	}
	t.Logf("OOM peak %d bytes", s.MaxMemoryBytes())

	var out2 syncBuffer
	spec = helperSpec("mem-ok", &out2, "alloc:20")
	spec.MemoryMB = 64
	s, o = run(t, m, spec)
	if s.ExitError() != nil || s.OOMKilled() || !strings.Contains(o, "alloc 20 ok") {
		t.Errorf("20 MB in 64 MB: %v oom=%v %q", s.ExitError(), s.OOMKilled(), o)
	}
	if peak := s.MaxMemoryBytes(); peak < 20<<20 || peak > 64<<20 {
		t.Errorf("MaxMemoryBytes %d, want 20-64 MB", peak)
	}
	t.Logf("20 MB allocation: peak %d bytes", s.MaxMemoryBytes())
}

func TestPidsLimit(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	spec := helperSpec("pids-1", &out, "fork:500", "sleep:1h")
	spec.Env = []string{"GOMAXPROCS=1"}
	spec.PidsMax = 40
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "fork result", func() bool {
		return strings.Contains(out.String(), "fork started=") || isDone(s)
	})
	o := out.String()
	res := line(t, o, "fork")
	var n int
	fmt.Sscanf(res, "started=%d", &n)
	if n >= spec.PidsMax || !strings.Contains(res, "resource temporarily unavailable") {
		t.Errorf("fork bomb: %s (limit %d)", res, spec.PidsMax)
	}
	cur, _ := readInt(filepath.Join(s.cg.(v1GroupOrV2).pidsDir(), "pids.current"))
	if cur > int64(spec.PidsMax) {
		t.Errorf("pids.current %d > %d", cur, spec.PidsMax)
	}
	t.Logf("fork bomb: %s; pids.current %d", res, cur)
	checkDestroyLeavesNothing(t, s)
}

func isDone(s *Sandbox) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// v1GroupOrV2 lets the tests find the pids controller's directory.
type v1GroupOrV2 interface{ pidsDir() string }

func (g *v1Group) pidsDir() string { return g.dirs_["pids"] }
func (g *v2Group) pidsDir() string { return g.dir }

// checkDestroyLeavesNothing destroys s and checks that no process, cgroup
// directory, listener or Done-less state is left.
func checkDestroyLeavesNothing(t *testing.T, s *Sandbox) {
	t.Helper()
	dirs := s.cg.dirs()
	rel := "/" + filepath.Base(filepath.Dir(dirs[0])) + "/" + s.ID()
	destroy(t, s)
	if !isDone(s) {
		t.Fatal("Done open after Destroy")
	}
	if err := s.ExitError(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("ExitError after Destroy: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.Pid())); err == nil {
		t.Errorf("pid %d still exists", s.Pid())
	}
	if pids := pidsInGroup(rel); len(pids) > 0 {
		t.Errorf("processes left in %s: %v", rel, pids)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left (%v)", d, err)
		}
	}
	if ln := s.Listener(); ln != nil {
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("listener still open: %v", err)
		}
	}
	if err := s.Destroy(context.Background()); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

// pidsInGroup scans /proc for processes whose cgroup path ends in rel.
func pidsInGroup(rel string) []int {
	es, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range es {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && inGroup(pid, rel) {
			out = append(out, pid)
		}
	}
	return out
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestDestroyLeavesNothing(t *testing.T) {
	m := newTestManager(t)
	mountsBefore := sandboxMounts(t)
	// A first sandbox warms up lazily created runtime state (netpoller).
	var warm syncBuffer
	run(t, m, helperSpec("warm", &warm, "hello"))
	settle(t, m)
	goroutines, fds := runtime.NumGoroutine(), countFDs(t)

	var out syncBuffer
	spec := helperSpec("destroy-1", &out, "fork:3", "sleep:1h")
	spec.ListenAddr = "127.0.0.1:9001"
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "children", func() bool { return strings.Contains(out.String(), "fork started=3") })
	rel := "/" + filepath.Base(filepath.Dir(s.cg.dirs()[0])) + "/" + s.ID()
	if n := len(pidsInGroup(rel)); n != 4 {
		t.Errorf("%d processes in the sandbox, want 4", n)
	}
	if runtime.NumGoroutine() <= goroutines || countFDs(t) <= fds {
		t.Logf("note: a live sandbox holds %d goroutines and %d fds more", runtime.NumGoroutine()-goroutines, countFDs(t)-fds)
	}
	checkDestroyLeavesNothing(t, s)
	settle(t, m)
	waitFor(t, 10*time.Second, fmt.Sprintf("goroutines back to %d", goroutines), func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
	if n := countFDs(t); n != fds {
		t.Errorf("fds: %d after, %d before", n, fds)
	}
	if after := sandboxMounts(t); !slices.Equal(after, mountsBefore) {
		t.Errorf("host mounts changed: %q, before %q", after, mountsBefore)
	}
}

// sandboxMounts lists the mounts of this mount namespace that a sandbox
// could have leaked into it: on its new root's place or of the helper.
func sandboxMounts(t *testing.T) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == newRootAt || strings.Contains(l, helperDir)) {
			out = append(out, l)
		}
	}
	return out
}

func TestSetupErrors(t *testing.T) {
	m := newTestManager(t)
	tests := []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"missing program", func(s *Spec) { s.Path = "/var/task/nope" }, "exec /var/task/nope: no such file or directory"},
		{"missing dir", func(s *Spec) { s.Dir = "/nope" }, "chdir /nope"},
		{"missing mount source", func(s *Spec) { s.Mounts[0].Source = "/nonexistent/dir" }, "mount source /nonexistent/dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			spec := helperSpec("fail-1", &out, "hello")
			tc.edit(&spec)
			_, err := m.Start(context.Background(), spec)
			if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want ErrSetup with %q", err, tc.want)
			}
			if pids := pidsInGroup("/" + filepath.Base(parentDirs(m)[0]) + "/fail-1"); len(pids) > 0 {
				t.Errorf("processes left: %v", pids)
			}
			for _, d := range parentDirs(m) {
				if _, err := os.Stat(filepath.Join(d, "fail-1")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("cgroup left: %v", err)
				}
			}
		})
	}
	// The ID is free again.
	var out syncBuffer
	run(t, m, helperSpec("fail-1", &out, "hello"))
}

func TestInvalidSpecAndDuplicate(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	bad := helperSpec("bad id!", &out)
	if _, err := m.Start(context.Background(), bad); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("bad id: %v", err)
	}
	s, err := m.Start(context.Background(), helperSpec("dup", &out, "sleep:1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, s)
	if _, err := m.Start(context.Background(), helperSpec("dup", &out, "hello")); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	requireRoot(t)
	m, err := NewManager(Config{CgroupParent: fmt.Sprintf("ember-test-%d-shutdown", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if m.CgroupVersion() != 1 && m.CgroupVersion() != 2 {
		t.Errorf("CgroupVersion %d", m.CgroupVersion())
	}
	var sbs []*Sandbox
	for i := range 3 {
		var out syncBuffer
		s, err := m.Start(context.Background(), helperSpec(fmt.Sprint("sd-", i), &out, "sleep:1h"))
		if err != nil {
			t.Fatal(err)
		}
		sbs = append(sbs, s)
	}
	shutdownAndCheck(t, m)
	for _, s := range sbs {
		if !isDone(s) {
			t.Errorf("%s alive after Shutdown", s.ID())
		}
	}
	var out syncBuffer
	if _, err := m.Start(context.Background(), helperSpec("late", &out, "hello")); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Shutdown: %v", err)
	}
}

// firstWrite records when its first Write happens.
type firstWrite struct {
	ch chan time.Time
}

func (w *firstWrite) Write(p []byte) (int, error) {
	select {
	case w.ch <- time.Now():
	default:
	}
	return len(p), nil
}

// TestStartLatency measures create-to-ready: from Start to its return
// (the program exec'd, with its listener open), which excludes the
// program's own initialisation; also to its first output and its exit.
func TestStartLatency(t *testing.T) {
	m := newTestManager(t)
	const n = 50
	var first, start, exit []time.Duration
	for i := range n {
		w := &firstWrite{ch: make(chan time.Time, 1)}
		spec := helperSpec(fmt.Sprint("lat-", i), nil, "hello")
		spec.Stdout, spec.Stderr = w, w
		spec.ListenAddr = "127.0.0.1:9001"
		t0 := time.Now()
		s, err := m.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		var tf time.Time
		select {
		case tf = <-w.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no output")
		}
		<-s.Done()
		t2 := time.Now()
		destroy(t, s)
		first = append(first, tf.Sub(t0))
		start = append(start, t1.Sub(t0))
		exit = append(exit, t2.Sub(t0))
	}
	pct := func(d []time.Duration, p int) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[(len(d)-1)*p/100]
	}
	t.Logf("LATENCY (%d starts, race=%v): create-to-ready (Start returns) median %v p90 %v; first output median %v p90 %v; exit median %v p90 %v",
		n, raceEnabled, pct(start, 50), pct(start, 90), pct(first, 50), pct(first, 90), pct(exit, 50), pct(exit, 90))
}

// TestStartCancelled cancels Starts at various points: each either
// succeeds or fails with the context's error, and a failed one leaves
// nothing behind.
func TestStartCancelled(t *testing.T) {
	m := newTestManager(t)
	settle(t, m)
	fds := countFDs(t)
	failed := 0
	for i := range 24 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*500*time.Microsecond)
		var out syncBuffer
		spec := helperSpec("cancel", &out, "sleep:1h")
		spec.ListenAddr = "127.0.0.1:9001"
		s, err := m.Start(ctx, spec)
		cancel()
		if err == nil {
			destroy(t, s)
			continue
		}
		failed++
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("timeout %d×0.5ms: %v", i, err)
		}
		for _, d := range parentDirs(m) {
			if _, err := os.Stat(filepath.Join(d, "cancel")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("cgroup left after a cancelled Start: %v", err)
			}
		}
		if pids := pidsInGroup("/" + filepath.Base(parentDirs(m)[0]) + "/cancel"); len(pids) > 0 {
			t.Fatalf("processes left: %v", pids)
		}
	}
	t.Logf("%d of 24 Starts timed out", failed)
	settle(t, m)
	if n := countFDs(t); n != fds {
		t.Errorf("fds: %d after, %d before", n, fds)
	}
}
