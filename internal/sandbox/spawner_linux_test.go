//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpawner: with the C init, the inits are cloned by the spawner
// (spawner_linux.go) yet are this process's children; a spawner that
// died is replaced at the next start, its sandboxes live on, and
// Shutdown ends it.
func TestSpawner(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("ember-test-%d-%d", os.Getpid(), testSeq.Add(1))
	// No pool: every Start asks the spawner.
	m, err := NewManager(Config{CgroupParent: name})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			shutdownAndCheck(t, m)
		}
	})
	first := m.spawner.pid()
	if !cInit { // built without cgo: the Go init, started by os/exec
		if first != 0 {
			t.Errorf("a spawner (%d) without the C init", first)
		}
		return
	}
	if first == 0 {
		t.Fatal("NewManager did not start the spawner")
	}
	// Its command line is set a moment after the exec that Start saw
	// (the kernel closes the exec's close-on-exec pipe first).
	waitFor(t, 10*time.Second, "the spawner's command line", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", first))
		return strings.HasPrefix(string(b), SpawnerArg0+"\x00")
	})
	start := func(id string) *Sandbox {
		t.Helper()
		var out syncBuffer
		s, err := m.Start(context.Background(), helperSpec(id, &out, "sleep:1h"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(childProcs(), s.Pid()) {
			t.Fatalf("sandbox %s's init %d is not this process's child (children %v)", id, s.Pid(), childProcs())
		}
		return s
	}
	a := start("spawn-a")

	// Kill the spawner: the next Start starts another.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the spawner's exit", func() bool {
		return !slices.Contains(childProcs(), first)
	})
	b := start("spawn-b")
	second := m.spawner.pid()
	if second == 0 || second == first {
		t.Fatalf("spawner after the kill: %d (the first was %d)", second, first)
	}
	select {
	case <-a.Done():
		t.Fatalf("sandbox a ended with its spawner: %v", a.ExitError())
	default:
	}
	destroy(t, a)
	destroy(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped = true
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if pid := m.spawner.pid(); pid != 0 {
		t.Errorf("spawner %d still known after Shutdown", pid)
	}
	if c := childProcs(); slices.Contains(c, second) {
		t.Errorf("spawner %d still running after Shutdown", second)
	}
}
