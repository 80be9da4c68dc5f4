package workermanager

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/store"
)

func version(name, v, rev string) store.Function {
	f := fn(name, rev)
	f.Version = v
	return *f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestProvisionedKeptUsedFirstNeverReaped(t *testing.T) {
	m, w, clk := setup(4096)
	defer m.Shutdown()
	ctx := context.Background()
	v1 := version("f", "1", "r1")
	key := v1.VersionKey()
	// An on-demand sandbox of the version first, used most recently.
	od, err := m.Acquire(ctx, &v1)
	if err != nil {
		t.Fatal(err)
	}
	m.SetProvisioned("111111111111.f", []store.ProvisionedVersion{{Function: v1, Count: 2}})
	waitUntil(t, "2 provisioned", func() bool { n, _ := m.ProvisionedStatus(key); return n == 2 })
	m.Release(od, true)
	if w.liveCount() != 3 {
		t.Fatalf("%d sandboxes, want 3", w.liveCount())
	}
	// Provisioned ones are handed out first, though the on-demand one was
	// used last.
	a, err := m.Acquire(ctx, &v1)
	if err != nil || a.Cold || a.SandboxID == od.SandboxID {
		t.Fatalf("acquire: %+v %v", a, err)
	}
	m.Release(a, true)
	// Keep-alive reaps the on-demand one only; a reconcile adds nothing.
	clk.add(time.Hour)
	if n := m.ReapIdle(clk.now()); n != 1 {
		t.Fatalf("reaped %d, want 1", n)
	}
	m.reconcileProvisioned(clk.now())
	waitUntil(t, "the reaped one destroyed", func() bool { return w.liveCount() == 2 })
	if n, _ := m.ProvisionedStatus(key); n != 2 {
		t.Fatalf("%d provisioned after reaping", n)
	}
	// Fewer wanted: extras go; none wanted: all go.
	m.SetProvisioned("111111111111.f", []store.ProvisionedVersion{{Function: v1, Count: 1}})
	waitUntil(t, "1 left", func() bool { return w.liveCount() == 1 })
	m.SetProvisioned("111111111111.f", nil)
	waitUntil(t, "none left", func() bool { return w.liveCount() == 0 })
}

func TestProvisionedRecreatedAndFailure(t *testing.T) {
	m, w, clk := setup(4096)
	defer m.Shutdown()
	v1 := version("f", "1", "r1")
	key := v1.VersionKey()
	w.mu.Lock()
	w.failNext = errors.New("boom")
	w.mu.Unlock()
	m.SetProvisioned("111111111111.f", []store.ProvisionedVersion{{Function: v1, Count: 1}})
	waitUntil(t, "the failure", func() bool { _, f := m.ProvisionedStatus(key); return f != "" })
	// Backed off: no retry until its time.
	m.reconcileProvisioned(clk.now())
	if w.liveCount() != 0 {
		t.Fatal("retried before the back-off")
	}
	clk.add(2 * time.Second)
	m.reconcileProvisioned(clk.now())
	waitUntil(t, "the retry", func() bool { n, f := m.ProvisionedStatus(key); return n == 1 && f == "" })
	// A sandbox that exits is replaced on the next reconcile.
	var id string
	w.mu.Lock()
	for k := range w.live {
		id = k
	}
	w.mu.Unlock()
	m.SandboxExited(id)
	waitUntil(t, "the exited one removed", func() bool { n, _ := m.ProvisionedStatus(key); return n == 0 })
	m.reconcileProvisioned(clk.now())
	waitUntil(t, "a replacement", func() bool { n, _ := m.ProvisionedStatus(key); return n == 1 })
	// Retiring the function (deleted) drops its provisioned concurrency.
	m.Retire("111111111111.f")
	m.reconcileProvisioned(clk.now())
	waitUntil(t, "none left", func() bool { return w.liveCount() == 0 })
}
