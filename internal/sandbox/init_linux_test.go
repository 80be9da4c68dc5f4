//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCInitArg0: the C init answers to InitArg0 and the spawner to
// SpawnerArg0, and they are built in when cgo is on.
func TestCInitArg0(t *testing.T) {
	if got := cInitArg0(); got != InitArg0 {
		t.Errorf("C init's argv[0] %q, want %q", got, InitArg0)
	}
	if got := cSpawnerArg0(); got != SpawnerArg0 {
		t.Errorf("C spawner's argv[0] %q, want %q", got, SpawnerArg0)
	}
	t.Logf("C init built in: %v", cInit)
}

// TestGoInit runs the isolation tests with the Go init, the fallback of
// builds without cgo (with cgo the C init runs for InitArg0), so that the
// two keep the same behaviour.
func TestGoInit(t *testing.T) {
	testInitArg0 = goInitArg0
	defer func() { testInitArg0 = InitArg0 }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Isolation", TestIsolation},
		{"UserNamespaceAndCapabilities", TestUserNamespaceAndCapabilities},
		{"Seccomp", TestSeccomp},
		{"ProcMasked", TestProcMasked},
		{"Network", TestNetwork},
		{"SetupErrors", TestSetupErrors},
		{"StartCancelled", TestStartCancelled},
		{"TeardownKillsEverything", TestTeardownKillsEverything},
	} {
		t.Run(tc.name, tc.f)
	}
}

// TestNoInitPool runs isolation and start tests with the C init started
// by Start itself (no Config.InitPool; as on cgroup v2).
func TestNoInitPool(t *testing.T) {
	testInitPool = 0
	defer func() { testInitPool = 2 }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Isolation", TestIsolation},
		{"UserNamespaceAndCapabilities", TestUserNamespaceAndCapabilities},
		{"SetupErrors", TestSetupErrors},
		{"StartCancelled", TestStartCancelled},
		{"DestroyLeavesNothing", TestDestroyLeavesNothing},
	} {
		t.Run(tc.name, tc.f)
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

// A C init whose base set-up fails (here a device that is a directory on
// the host, which cannot be bound onto the file made for it) fails the
// Start with the init's own message, whether the init came from the pool
// (it died there) or was started by Start; nothing is left behind.
func TestBaseSetupError(t *testing.T) {
	requireRoot(t)
	if !cInit {
		t.Fatal("no C init in this build (cgo off)")
	}
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		t.Fatalf("this test needs /dev/shm, a directory: %v", err)
	}
	saved := baseConfig
	baseConfig = (&childConfig{SystemDirs: systemDirs, Devices: append(slices.Clone(devices), "shm"),
		ProcMasked: procMasked, ProcReadOnly: procReadOnly}).encode()
	defer func() { baseConfig = saved }()
	for _, pool := range []int{2, 0} {
		t.Run(fmt.Sprintf("pool %d", pool), func(t *testing.T) {
			testInitPool = pool
			defer func() { testInitPool = 2 }()
			m := newTestManager(t)
			var out syncBuffer
			_, err := m.Start(context.Background(), helperSpec("base-fail", &out, "hello"))
			if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "bind /dev/shm") {
				t.Fatalf("Start: %v, want ErrSetup with the init's message about /dev/shm", err)
			}
			for _, d := range parentDirs(m) {
				if _, err := os.Stat(filepath.Join(d, "base-fail")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("cgroup left: %v", err)
				}
			}
		})
	}
}
