//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// statusOf returns the helper's "status" lines as a map.
func statusOf(out string) map[string]string {
	m := map[string]string{}
	for _, l := range lines(out, "status") {
		k, v, _ := strings.Cut(l, ": ")
		m[k] = v
	}
	return m
}

func TestUserNamespaceAndCapabilities(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	spec := helperSpec("userns-1", &out, "status", "cat:/proc/self/uid_map", "cat:/proc/self/gid_map",
		"write:/tmp/owned", "setuid", "sleep:1h")
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, s)
	waitFor(t, 30*time.Second, "the helper's report", func() bool { return strings.Contains(out.String(), "setuid ") })
	o := out.String()
	t.Logf("output:\n%s", o)
	st := statusOf(o)
	zero := "0000000000000000"
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if st[k] != zero {
			t.Errorf("%s = %q, want %s", k, st[k], zero)
		}
	}
	if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || st["Seccomp_filters"] != "2" {
		t.Errorf("NoNewPrivs %q, Seccomp %q, Seccomp_filters %q; want 1, 2, 2", st["NoNewPrivs"], st["Seccomp"], st["Seccomp_filters"])
	}
	if st["Uid"] != "993 993 993 993" || st["Gid"] != "990 990 990 990" || st["Groups"] != "" {
		t.Errorf("inside: Uid %q Gid %q Groups %q", st["Uid"], st["Gid"], st["Groups"])
	}
	uid, gid := s.HostIDs()
	if uid < DefaultIDMapStart && uid < 100000 || gid <= 0 {
		t.Fatalf("host ids %d/%d", uid, gid)
	}
	if got, want := line(t, o, "cat /proc/self/uid_map"), fmt.Sprintf("%10d %10d %10d", 0, uid, IDRangeSize); !strings.Contains(got, want) {
		t.Errorf("uid_map %s, want %q", got, want)
	}
	if got, want := line(t, o, "cat /proc/self/gid_map"), fmt.Sprintf("%10d %10d %10d", 0, gid, IDRangeSize); !strings.Contains(got, want) {
		t.Errorf("gid_map %s, want %q", got, want)
	}
	// From outside: the program is an unprivileged host uid.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	hostStatus := string(b)
	wantUID := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid+993, uid+993, uid+993, uid+993)
	if !strings.Contains(hostStatus, wantUID) {
		t.Errorf("host view lacks %q:\n%s", wantUID, hostStatus)
	}
	if !strings.Contains(hostStatus, "CapBnd:\t0000000000000000") {
		t.Errorf("host view: bounding set not empty")
	}
	var fst unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/tmp/owned", s.Pid()), &fst); err != nil {
		t.Fatal(err)
	}
	if int(fst.Uid) != uid+993 || int(fst.Gid) != gid+990 {
		t.Errorf("a file written in /tmp belongs to host %d:%d, want %d:%d", fst.Uid, fst.Gid, uid+993, gid+990)
	}
	if got := line(t, o, "setuid"); got != "EPERM" {
		t.Errorf("setuid(0): %s, want EPERM", got)
	}
	// Each live sandbox has a range of its own.
	var out2 syncBuffer
	s2, err := m.Start(context.Background(), helperSpec("userns-2", &out2, "sleep:1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, s2)
	if u2, _ := s2.HostIDs(); u2 == uid || u2 < uid+IDRangeSize && u2 > uid-IDRangeSize {
		t.Errorf("two sandboxes' ranges overlap: %d and %d", uid, u2)
	}
}

func TestSeccomp(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	spec := helperSpec("seccomp-1", &out, "mount", "umount:/proc", "unshare", "clonens", "ptrace", "chroot",
		"sethostname", "bpf", "keyctl", "iouring", "int80", "tty", "hello")
	_, o := run(t, m, spec)
	t.Logf("output:\n%s", o)
	want := map[string]string{
		"mount": "EPERM", "umount": "EPERM", "unshare": "EPERM", "clonens": "EPERM", "ptrace": "EPERM",
		"chroot": "EPERM", "sethostname": "EPERM",
		// No controlling terminal (a session of its own).
		"tty": "ENXIO",
	}
	if runtime.GOARCH == "amd64" {
		want["bpf"], want["keyctl"], want["iouring"] = "EPERM", "EPERM", "EPERM"
		// getpid through the i386 entry: refused by the ABI filter
		// (it would answer 1 without it).
		want["int80"] = "-38"
	}
	for k, v := range want {
		if got := line(t, o, k); got != v {
			t.Errorf("%s: %s, want %s", k, got, v)
		}
	}
	if !strings.Contains(o, "hello\n") {
		t.Error("the helper did not run to its end")
	}
}

func TestProcMasked(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	masked := []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"}
	readOnly := []string{"/proc/sys/kernel/hostname", "/proc/sysrq-trigger"}
	args := []string{"ls:/proc/acpi", "cat:/proc/self/comm"}
	for _, p := range masked {
		args = append(args, "cat:"+p)
	}
	for _, p := range readOnly {
		args = append(args, "write:"+p)
	}
	_, o := run(t, m, helperSpec("proc-1", &out, args...))
	t.Logf("output:\n%s", o)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, p := range masked {
		if got := line(t, o, "cat "+p); exists(p) && got != `"" <nil>` {
			t.Errorf("%s: %s, want empty", p, got)
		}
	}
	for _, p := range readOnly {
		if got := line(t, o, "write "+p); exists(p) && !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s: %s, want read-only file system", p, got)
		}
	}
	if exists("/proc/acpi") {
		if got := line(t, o, "ls /proc/acpi"); got != " <nil>" {
			t.Errorf("/proc/acpi: %q, want empty", got)
		}
	}
	if got := line(t, o, "cat /proc/self/comm"); got != `"helper\n" <nil>` {
		t.Errorf("/proc/self/comm: %s", got)
	}
}

// hostPidsOf lists the host pids of the sandbox's processes.
func hostPidsOf(t *testing.T, s *Sandbox) []int {
	t.Helper()
	return pidsInGroup("/" + filepath.Base(filepath.Dir(s.cg.dirs()[0])) + "/" + s.ID())
}

// TestTeardownKillsEverything: a grandchild in a session of its own that
// ignores SIGTERM dies with the sandbox, whether Destroy kills it or the
// program (PID 1) exits on its own.
func TestTeardownKillsEverything(t *testing.T) {
	m := newTestManager(t)
	for _, tc := range []struct {
		name string
		last string
	}{{"destroyed", "sleep:1h"}, {"init exits", "exit:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			id := "daemon-" + strings.ReplaceAll(tc.name, " ", "-")
			s, err := m.Start(context.Background(), helperSpec(id, &out, "daemon", "sleep:200ms", tc.last))
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the grandchild", func() bool { return strings.Contains(out.String(), "grandchild ") })
			waitFor(t, 30*time.Second, "the daemon's parent to exit", func() bool { return strings.Contains(out.String(), "daemon <nil>") })
			var pids []int
			if tc.last == "sleep:1h" {
				pids = hostPidsOf(t, s)
				if len(pids) != 2 {
					t.Fatalf("processes in the sandbox: %v, want the helper and its grandchild", pids)
				}
			} else {
				waitDone(t, s)
				// PID 1 exited: the kernel killed the rest of the namespace.
				waitFor(t, 10*time.Second, "the orphan to die with PID 1", func() bool { return len(hostPidsOf(t, s)) == 0 })
				if err := s.ExitError(); err != nil {
					t.Errorf("ExitError %v, want nil", err)
				}
				destroy(t, s)
				return
			}
			checkDestroyLeavesNothing(t, s)
			for _, p := range pids {
				if alive(p) {
					t.Errorf("pid %d alive after Destroy", p)
				}
			}
		})
	}
}

// shmem reads the host's tmpfs/shared memory in bytes.
func shmem(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Shmem:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	t.Fatal("no Shmem in /proc/meminfo")
	return 0
}

func TestTmpMemoryFreed(t *testing.T) {
	m := newTestManager(t)
	before := shmem(t)
	var out syncBuffer
	spec := helperSpec("tmpfree-1", &out, "fill:/tmp/big:96", "fill:/tmp/too-big:200", "sleep:1h")
	spec.TmpSizeMB, spec.MemoryMB = 160, 512
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "/tmp to fill", func() bool { return strings.Contains(out.String(), "fill /tmp/too-big") })
	if got := line(t, out.String(), "fill /tmp/big"); got != "<nil>" {
		t.Fatalf("fill: %s", got)
	}
	// /tmp is bounded by its size.
	if got := line(t, out.String(), "fill /tmp/too-big"); !strings.Contains(got, "no space left on device") {
		t.Errorf("writing past /tmp's size: %s", got)
	}
	full := shmem(t)
	t.Logf("Shmem: %d MB before, %d MB with /tmp full", before>>20, full>>20)
	if full-before < 120<<20 {
		t.Logf("note: Shmem grew by only %d MB (other processes of the host change it too)", (full-before)>>20)
	}
	destroy(t, s)
	waitFor(t, 10*time.Second, "the sandbox's /tmp pages to be freed", func() bool { return shmem(t) < full-120<<20 })
}

// TestStaleCgroupsRemoved kills a process that runs a Manager with the
// default parent group name and checks that the next NewManager removes
// the group it left.
func TestStaleCgroupsRemoved(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanParentEnv+"=default", "SANDBOX_TEST_HELPER_DIR="+helperDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(l)
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil || len(f) < 3 || f[0] != "pid" {
		t.Fatalf("orphan parent: %q %v", l, err)
	}
	var pid int
	fmt.Sscan(f[1], &pid)
	waitFor(t, 10*time.Second, "the sandbox to die with its parent", func() bool { return !alive(pid) })
	var parents []string
	for _, d := range f[2:] {
		p := filepath.Dir(d)
		if filepath.Base(p) != fmt.Sprintf("ember-%d", cmd.Process.Pid) {
			t.Fatalf("orphan's group %s is not under ember-%d", d, cmd.Process.Pid)
		}
		parents = append(parents, p)
	}
	waitFor(t, 10*time.Second, "the dead sandbox's group to empty", func() bool {
		for _, d := range f[2:] {
			if pids, _ := readProcs(d); len(pids) > 0 {
				return false
			}
		}
		return true
	})
	for _, p := range parents {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the dead process's group %s is not there to clean: %v", p, err)
		}
	}
	newTestManager(t) // its NewManager cleans up
	for _, p := range parents {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale group %s left (%v)", p, err)
		}
	}
}

func TestStaleName(t *testing.T) {
	for name, pid := range map[string]string{
		"ember-123": "123", "ember-123.manager": "123", "ember-test-77-3": "77", "ember-test-77-orphan": "77", "ember-runtimes-test-5-x": "5",
		"ember-x": "", "other-123": "", "ember-123/x": "", "ember-": "", "ember-12a": "",
	} {
		m := staleName.FindStringSubmatch(name)
		if got := ""; m != nil {
			got = m[1]
			if got != pid {
				t.Errorf("%q: pid %q, want %q", name, got, pid)
			}
		} else if pid != "" {
			t.Errorf("%q: no match, want pid %s", name, pid)
		}
	}
}

func TestIDRanges(t *testing.T) {
	r, err := newIDRanges(IDMap{UIDStart: 100000, GIDStart: 200000, Count: 3 * IDRangeSize})
	if err != nil {
		t.Fatal(err)
	}
	var got []idRange
	for range 3 {
		ir, err := r.get()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ir)
	}
	if _, err := r.get(); !errors.Is(err, ErrNoIDs) {
		t.Errorf("fourth range: %v, want ErrNoIDs", err)
	}
	if got[1].uid != 100000+IDRangeSize || got[2].gid != 200000+2*IDRangeSize {
		t.Errorf("ranges %+v", got)
	}
	r.put(got[1])
	if ir, err := r.get(); err != nil || ir.index != 1 {
		t.Errorf("after put: %+v %v", ir, err)
	}
	if r.inUse() != 3 {
		t.Errorf("in use %d", r.inUse())
	}
	// Another Manager (in this process or another) skips the ranges held.
	other, err := newIDRanges(IDMap{UIDStart: 100000, GIDStart: 200000, Count: 4 * IDRangeSize})
	if err != nil {
		t.Fatal(err)
	}
	if ir, err := other.get(); err != nil || ir.index != 3 {
		t.Errorf("a second allocator got %+v %v, want the one free range (3)", ir, err)
	}
	if _, err := other.get(); !errors.Is(err, ErrNoIDs) {
		t.Errorf("second allocator, second range: %v, want ErrNoIDs", err)
	}
	for _, ir := range got {
		r.put(ir)
	}
	if ir, err := other.get(); err != nil || ir.index != 0 {
		t.Errorf("after the first released its ranges: %+v %v", ir, err)
	}
	for _, bad := range []IDMap{{UIDStart: 1, GIDStart: 1, Count: 100}, {UIDStart: 0, GIDStart: 1, Count: IDRangeSize}, {UIDStart: 1 << 31, GIDStart: 1, Count: 1 << 31}} {
		if _, err := newIDRanges(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	sub := []byte("alice:100000:65536\nember:300000:262144\nember:900000:65536\n")
	if got, ok := parseSubID(sub, "ember"); !ok || got != [2]uint32{300000, 262144} {
		t.Errorf("parseSubID: %v %v", got, ok)
	}
	if _, ok := parseSubID(sub, "bob"); ok {
		t.Error("parseSubID found bob")
	}
}

func TestSetEnv(t *testing.T) {
	got := setEnv([]string{"A=1", "X=old", "B=2", "X=dup"}, "X", "new")
	if want := []string{"A=1", "X=new", "B=2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := setEnv(nil, "X", "1"); !slices.Equal(got, []string{"X=1"}) {
		t.Errorf("append: %q", got)
	}
}

func TestProcessBackend(t *testing.T) {
	requireRoot(t) // the helper is built only as root
	m, err := NewManager(Config{Backend: BackendProcess})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if m.Backend() != BackendProcess || m.CgroupVersion() != 0 {
		t.Errorf("backend %s, cgroup version %d", m.Backend(), m.CgroupVersion())
	}
	var out syncBuffer
	spec := helperSpec("proc-backend", &out, "cwd", "getenv:TMPDIR", "getenv:TASK", "getenv:API", "dialenv:API", "fork:2", "daemon", "sleep:1h")
	spec.Env = []string{"TASK=/var/task/lib", "API=wrong"}
	spec.ListenAddr, spec.ListenAddrEnv = "127.0.0.1:9001", "API"
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ln := s.Listener()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, 30*time.Second, "the daemon", func() bool {
		return strings.Contains(out.String(), "daemon <nil>") && strings.Contains(out.String(), "grandchild ")
	})
	o := out.String()
	t.Logf("output:\n%s", o)
	if got := line(t, o, "cwd"); got != helperDir+" <nil>" {
		t.Errorf("cwd %s, want %s", got, helperDir)
	}
	tmp := strings.TrimPrefix(line(t, o, "getenv"), "TMPDIR=")
	if fi, err := os.Stat(tmp); err != nil || !fi.IsDir() {
		t.Errorf("TMPDIR %q: %v", tmp, err)
	}
	if got := lines(o, "getenv"); !slices.Contains(got, "TASK="+helperDir+"/lib") || !slices.Contains(got, "API="+ln.Addr().String()) {
		t.Errorf("env: %q", got)
	}
	if got := line(t, o, "dial "+ln.Addr().String()); got != "<nil>" {
		t.Errorf("dial the listener: %s", got)
	}
	gc, _ := strconv.Atoi(line(t, o, "grandchild"))
	if gc <= 0 || !alive(gc) {
		t.Fatalf("grandchild %d not alive", gc)
	}
	// It left the process group with setsid: the process backend cannot
	// catch that, as documented. (It holds the output pipe: Destroy would
	// wait for it.)
	syscall.Kill(gc, syscall.SIGKILL)
	destroy(t, s)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TMPDIR left: %v", err)
	}
	// The children in its process group died with it.
	if err := syscall.Kill(-s.Pid(), 0); err != syscall.ESRCH {
		t.Errorf("process group %d: %v, want ESRCH", s.Pid(), err)
	}
	if s.ExitError() == nil || s.OOMKilled() {
		t.Errorf("ExitError %v, OOMKilled %v", s.ExitError(), s.OOMKilled())
	}
}

// TestCPUCap: a CPU burner capped at a fifth of a CPU gets that, not more,
// however idle the machine.
func TestCPUCap(t *testing.T) {
	m := newTestManager(t)
	var out syncBuffer
	spec := helperSpec("cpu-cap", &out, "spin:1500ms")
	spec.CPUMilli = 200
	spec.Env = []string{"GOMAXPROCS=2"}
	_, o := run(t, m, spec)
	f := strings.Fields(line(t, o, "spin"))
	ms, _ := strconv.Atoi(f[0])
	t.Logf("CPU time of a 1.5 s burner capped at 200 millicpu: %d ms", ms)
	if ms > 450 || ms < 50 {
		t.Errorf("CPU time %d ms, want about 300 ms (a fifth of 1.5 s)", ms)
	}
}

// TestCPUShareOfMemory: a CPU burner in a sandbox capped as the worker
// caps it (CPUMilliForMemory: 885 MB is half a CPU) gets about that share
// of one second, and not more, even with two threads on two CPUs.
func TestCPUShareOfMemory(t *testing.T) {
	for mb, want := range map[int]int{128: 72, 885: 500, 1769: 1000, 3538: 2000, 64: MinCPUMilli} {
		if got := CPUMilliForMemory(mb); got != want {
			t.Errorf("CPUMilliForMemory(%d) = %d, want %d", mb, got, want)
		}
	}
	m := newTestManager(t)
	var out syncBuffer
	// Started uncapped and capped at once, as the worker caps a sandbox
	// once its runtime initialised (SetCPUMilli).
	spec := helperSpec("cpu-share", &out, "spin:1s")
	spec.MemoryMB = 885
	spec.Env = []string{"GOMAXPROCS=2"}
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetCPUMilli(CPUMilliForMemory(spec.MemoryMB)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, s)
	destroy(t, s)
	if err := s.SetCPUMilli(100); err == nil {
		t.Error("SetCPUMilli after Destroy: no error")
	}
	o := out.String()
	ms, _ := strconv.Atoi(strings.Fields(line(t, o, "spin"))[0])
	t.Logf("CPU time of a 1 s burner of 885 MB (cap %d millicpu): %d ms", CPUMilliForMemory(spec.MemoryMB), ms)
	// Its share is 500 ms; the cap is enforced per 100 ms period, so at
	// most one period's quota more. Less on a loaded machine.
	if ms > 600 || ms < 150 {
		t.Errorf("CPU time %d ms, want about 500 ms (half of 1 s), never more than 600", ms)
	}
}

// TestMountsArePrivate: a Mount whose source is a shared mount (as on
// systemd hosts) reaches the sandbox as a private copy: mounts made on the
// host afterwards do not appear inside.
func TestMountsArePrivate(t *testing.T) {
	m := newTestManager(t)
	src := t.TempDir()
	os.Chmod(src, 0o755)
	if err := unix.Mount(src, src, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(src, unix.MNT_DETACH)
	if err := unix.Mount("", src, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	var out syncBuffer
	spec := helperSpec("private-1", &out, "sleep:1h")
	spec.Mounts = append(spec.Mounts, Mount{Source: src, Target: "/opt/shared", ReadOnly: true})
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer destroy(t, s)
	if err := unix.Mount("tmpfs", filepath.Join(src, "sub"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(src, "sub"), unix.MNT_DETACH)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", s.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || !strings.HasPrefix(f[4], "/opt/shared") {
			continue
		}
		if f[4] != "/opt/shared" {
			t.Errorf("a host mount propagated into the sandbox: %s", l)
		}
		if strings.Contains(l, "shared:") || strings.Contains(l, "master:") {
			t.Errorf("the sandbox's copy propagates: %s", l)
		}
	}
}
