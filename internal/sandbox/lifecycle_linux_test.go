//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCgroupV2Hybrid runs the v2 code path on the host's cgroup2 hierarchy
// when this process sits in one. On a hybrid host (v1 controllers, an
// empty /sys/fs/cgroup/unified) no controller can be delegated, so the
// limits are not set: the test covers CLONE_INTO_CGROUP, cgroup.kill and
// the removal of the groups, not memory/pids/cpu.
func TestCgroupV2Hybrid(t *testing.T) {
	requireRoot(t)
	own, err := readProcCgroup("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := readCgroupMounts("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := hierarchyDir(mounts, own, "")
	if err != nil {
		t.Skipf("no cgroup2 hierarchy: %v", err)
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skip("pure cgroup v2 host: the other tests use v2 with its controllers")
	}
	d, err := newV2Driver(dir, fmt.Sprintf("ember-test-v2-%d", os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := newIDRanges(IDMap{UIDStart: DefaultIDMapStart, GIDStart: DefaultIDMapStart, Count: DefaultIDMapCount})
	if err != nil {
		t.Fatal(err)
	}
	filters, err := buildSeccomp()
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(Config{}, d, ids, filters)
	t.Cleanup(func() { shutdownAndCheck(t, m) })
	if m.CgroupVersion() != 2 {
		t.Fatalf("version %d", m.CgroupVersion())
	}
	var out syncBuffer
	s, err := m.Start(context.Background(), helperSpec("v2-1", &out, "fork:3", "sleep:1h"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "children", func() bool { return strings.Contains(out.String(), "fork started=3") })
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.Pid()))
	if want := fmt.Sprintf("0::/ember-test-v2-%d/v2-1\n", os.Getpid()); !strings.Contains(string(b), want) {
		t.Errorf("/proc/<pid>/cgroup: %q, want %q", b, want)
	}
	if pids, _ := readProcs(s.cg.dirs()[0]); len(pids) != 4 {
		t.Errorf("cgroup.procs: %v, want 4 processes", pids)
	}
	checkDestroyLeavesNothing(t, s)
}

// orphanParentEnv makes the test binary act as a Manager's process that
// starts a sandbox, reports it and waits to be killed (TestParentDeath).
const orphanParentEnv = "SANDBOX_TEST_ORPHAN_PARENT"

func runOrphanParent() {
	parent := os.Getenv(orphanParentEnv)
	if parent == "default" {
		parent = ""
	}
	m, err := NewManager(Config{CgroupParent: parent})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var out syncBuffer
	spec := helperSpec("orphan", &out, "sleep:1h")
	spec.Mounts[0].Source = os.Getenv("SANDBOX_TEST_HELPER_DIR")
	s, err := m.Start(context.Background(), spec)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("pid", s.Pid(), strings.Join(s.cg.dirs(), " "))
	select {}
}

// TestParentDeath checks that a sandbox dies with the process that
// started it (Pdeathsig, re-armed after the credential change).
func TestParentDeath(t *testing.T) {
	requireRoot(t)
	parent := fmt.Sprintf("ember-test-%d-orphan", os.Getpid())
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanParentEnv+"="+parent, "SANDBOX_TEST_HELPER_DIR="+helperDir)
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
	if err != nil || len(f) < 3 || f[0] != "pid" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("orphan parent: %q %v", l, err)
	}
	var pid int
	fmt.Sscan(f[1], &pid)
	dirs := f[2:]
	cmd.Process.Kill()
	cmd.Wait()
	// Dead means gone or a zombie: the orphan is reaped by the host's
	// PID 1, which may take its time.
	waitFor(t, 10*time.Second, "the sandbox to die with its parent", func() bool { return !alive(pid) })
	// The dead parent could not remove its groups: do it here.
	waitFor(t, 10*time.Second, "empty cgroups", func() bool {
		for _, d := range dirs {
			if pids, _ := readProcs(d); len(pids) > 0 {
				return false
			}
		}
		return true
	})
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil {
			t.Errorf("rmdir %s: %v", d, err)
		}
	}
	// The parent's init pool (its inits died with it too: their groups
	// are empty) and the parent groups.
	waitFor(t, 10*time.Second, "the parent's groups to empty", func() bool {
		for _, d := range dirs {
			if err := removeTree(filepath.Dir(d), time.Now().Add(time.Second)); err != nil && err.Error() == "it holds processes" {
				return false
			} else if err != nil {
				t.Fatalf("remove %s: %v", filepath.Dir(d), err)
			}
		}
		return true
	})
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}
