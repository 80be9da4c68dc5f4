//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCSpawnerArg0: the C spawner answers to SpawnerArg0, and is built
// in when cgo is on.
func TestCSpawnerArg0(t *testing.T) {
	if got := cSpawnerArg0(); got != SpawnerArg0 {
		t.Errorf("C spawner's argv[0] %q, want %q", got, SpawnerArg0)
	}
	t.Logf("C init built in: %v", cInit)
}

// subtests runs the named tests of the package as subtests of t, under
// whatever configuration t's test has set.
func subtests(t *testing.T, names ...string) {
	tests := map[string]func(*testing.T){
		"Isolation": TestIsolation, "UserNamespaceAndCapabilities": TestUserNamespaceAndCapabilities,
		"Seccomp": TestSeccomp, "ProcMasked": TestProcMasked, "Network": TestNetwork,
		"SetupErrors": TestSetupErrors, "StartCancelled": TestStartCancelled,
		"TeardownKillsEverything": TestTeardownKillsEverything, "DestroyLeavesNothing": TestDestroyLeavesNothing,
		"TemplateRoot": TestTemplateRoot,
	}
	for _, name := range names {
		f := tests[name]
		if f == nil {
			t.Fatalf("no test %s", name)
		}
		t.Run(name, f)
	}
}

// TestGoInit runs the isolation tests with the Go init, the fallback of
// builds without cgo (with cgo the C init runs, forked by the spawner),
// so that the two keep the same behaviour.
func TestGoInit(t *testing.T) {
	testInitArg0 = goInitArg0
	defer func() { testInitArg0 = InitArg0 }()
	subtests(t, "Isolation", "UserNamespaceAndCapabilities", "Seccomp", "ProcMasked", "Network",
		"SetupErrors", "StartCancelled", "TeardownKillsEverything")
}

// TestNoInitPool runs isolation and start tests with the C init started
// by Start itself (no Config.InitPool; as on cgroup v2).
func TestNoInitPool(t *testing.T) {
	testInitPool = 0
	defer func() { testInitPool = 2 }()
	subtests(t, "Isolation", "UserNamespaceAndCapabilities", "SetupErrors", "StartCancelled", "DestroyLeavesNothing")
}

// TestFullRoot runs the isolation tests with sandboxes whose mount
// targets are not in the template (no Config.MountTargets), so that each
// C init builds a root of its own and pivots into it (init_linux.c).
func TestFullRoot(t *testing.T) {
	saved := testMountTargets
	testMountTargets = nil
	defer func() { testMountTargets = saved }()
	subtests(t, "Isolation", "UserNamespaceAndCapabilities", "Seccomp", "ProcMasked", "Network",
		"SetupErrors", "TeardownKillsEverything", "TemplateRoot")
}

// TestTemplateRoot: sandboxes whose targets are all in the template share
// its read-only root file system (one tmpfs: the same device in
// mountinfo); one with a target the template lacks gets a root of its
// own, with its mount in place. Under TestFullRoot every sandbox has a
// root of its own.
func TestTemplateRoot(t *testing.T) {
	m := newTestManager(t)
	extra := t.TempDir()
	os.WriteFile(filepath.Join(extra, "marker"), nil, 0o644)
	os.Mkdir(filepath.Join(extra, "sub"), 0o755) // a mount point in the outer of two nested trees
	// rootDev starts a sandbox, which stays alive (so that no device
	// number is freed and reused meanwhile), and returns its root's
	// device and its listing of /srv/extra.
	rootDev := func(id string, mounts ...Mount) (string, string) {
		t.Helper()
		out := &syncBuffer{}
		spec := helperSpec(id, out, "cat:/proc/self/mountinfo", "ls:/srv/extra", "sleep:1h")
		spec.Mounts = append(spec.Mounts, mounts...)
		s, err := m.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { destroy(t, s) })
		waitFor(t, 10*time.Second, id+"'s output", func() bool { return strings.Contains(out.String(), "ls /srv/extra") })
		o := out.String()
		q, err := strconv.QuotedPrefix(line(t, o, "cat /proc/self/mountinfo"))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := strconv.Unquote(q)
		for _, l := range strings.Split(text, "\n") {
			// "id parent major:minor root mountpoint ..."
			if f := strings.Fields(l); len(f) > 4 && f[4] == "/" {
				return f[2], line(t, o, "ls /srv/extra")
			}
		}
		t.Fatalf("%s: no root in mountinfo:\n%s", id, text)
		return "", ""
	}
	a, _ := rootDev("tpl-a")
	b, _ := rootDev("tpl-b")
	c, ls := rootDev("tpl-own", Mount{Source: extra, Target: "/srv/extra", ReadOnly: true})
	// Targets in the template but nested: a root of its own too.
	d, _ := rootDev("tpl-nested", Mount{Source: extra, Target: "/opt/data", ReadOnly: true},
		Mount{Source: extra, Target: "/opt/data/sub", ReadOnly: true})
	if ls != "marker,sub <nil>" {
		t.Errorf("a target outside the template: ls /srv/extra: %s", ls)
	}
	// The Go init (builds without cgo) has no template.
	template := cInit && testInitArg0 == InitArg0 && testMountTargets != nil
	if template && a != b {
		t.Errorf("two sandboxes from the template have roots %s and %s, want one shared", a, b)
	}
	if !template && a == b {
		t.Errorf("two sandboxes with roots of their own share %s", a)
	}
	if c == a || c == b {
		t.Errorf("the sandbox with a target outside the template has root %s, as another (%s, %s)", c, a, b)
	}
	if d == a || d == b || d == c {
		t.Errorf("the sandbox with nested targets has root %s, as another (%s, %s, %s)", d, a, b, c)
	}
}

// TestConfigEncoding: the init's config survives the round trip, and
// damaged ones are refused.
func TestConfigEncoding(t *testing.T) {
	c := childConfig{Hostname: "h", Path: "/p", Argv: []string{"/p", "a b", ""}, Env: []string{"A=1"}, Dir: "/",
		Targets: []string{"/var/task"}, TmpOpts: "size=1m", UID: 993, GID: 990, SystemDirs: systemDirs,
		Devices: devices, ProcMasked: procMasked, ProcReadOnly: procReadOnly, Seccomp: [][]byte{{1, 0, 2, 3, 4, 5, 6, 7}}}
	b := c.encode()
	got, err := decodeChildConfig(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != c.Hostname || !slices.Equal(got.Argv, c.Argv) || got.UID != 993 || got.GID != 990 ||
		!slices.Equal(got.ProcReadOnly, c.ProcReadOnly) || len(got.Seccomp) != 1 || !slices.Equal(got.Seccomp[0], c.Seccomp[0]) ||
		got.Env != nil && !slices.Equal(got.Env, c.Env) || got.TmpOpts != c.TmpOpts {
		t.Errorf("round trip: %+v, want %+v", got, c)
	}
	for _, n := range []int{0, 3, 10, len(b) - 5} { // of len(b)-4
		if _, err := decodeChildConfig(b[4 : 4+n]); err == nil {
			t.Errorf("a config cut at %d bytes decoded", n)
		}
	}
}

// TestBaseSetupError: a template that cannot be built (a host directory
// bound as a device) fails NewManager with the spawner's message and
// leaves no cgroup nor process behind.
func TestBaseSetupError(t *testing.T) {
	requireRoot(t)
	if !cInit {
		t.Fatal("no C init in this build (cgo off)")
	}
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		t.Fatalf("this test needs /dev/shm, a directory: %v", err)
	}
	saved := devices
	devices = append(slices.Clone(devices), "shm")
	defer func() { devices = saved }()
	children, threads := childProcs(), spawnerThreads()
	name := fmt.Sprintf("ember-test-%d-%d", os.Getpid(), testSeq.Add(1))
	m, err := NewManager(Config{CgroupParent: name, InitPool: 2})
	if err == nil {
		shutdownAndCheck(t, m)
		t.Fatal("NewManager succeeded with a base config that cannot be set up")
	}
	if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "bind /dev/shm") {
		t.Fatalf("NewManager: %v, want ErrSetup with the spawner's message about /dev/shm", err)
	}
	if c := childProcs(); !slices.Equal(c, children) {
		t.Errorf("child processes %v after the failed NewManager, %v before", c, children)
	}
	waitFor(t, 10*time.Second, "the failed NewManager's spawner thread to end", func() bool {
		return spawnerThreads() == threads
	})
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == name {
			t.Errorf("parent cgroup left: %s", p)
		}
		return nil
	})
}

// spawnerThreads counts the goroutines that hold a spawner's thread
// (spawner.onThread).
func spawnerThreads() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*spawner).onThread.func1")
		}
		buf = make([]byte, 2*len(buf))
	}
}
