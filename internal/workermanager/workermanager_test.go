package workermanager

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/placement"
	"github.com/emberfn/ember/internal/store"
)

type fakeWorker struct {
	mu        sync.Mutex
	live      map[string]bool
	created   int
	failNext  error
	destroyed []string
}

func (w *fakeWorker) Invoke(context.Context, string, *invoke.Request) (*invoke.Result, error) {
	return &invoke.Result{}, nil
}

func (w *fakeWorker) CreateSandbox(_ context.Context, id string, _ *store.Function) (time.Duration, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.failNext; err != nil {
		w.failNext = nil
		return 0, err
	}
	w.created++
	w.live[id] = true
	return time.Millisecond, nil
}

func (w *fakeWorker) DestroySandbox(_ context.Context, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.live, id)
	w.destroyed = append(w.destroyed, id)
	return nil
}

func (w *fakeWorker) liveCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.live)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(memMB int) (*Manager, *fakeWorker, *clock) {
	w := &fakeWorker{live: map[string]bool{}}
	p := placement.New()
	p.Register(placement.Worker{ID: "w1", MemoryMB: memMB})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Config{Placement: p, Workers: func(id string) (Worker, bool) { return w, id == "w1" },
		KeepAlive: time.Minute, Now: clk.now})
	return m, w, clk
}

func fn(name, rev string) *store.Function {
	return &store.Function{AccountID: "111111111111", Name: name, RevisionID: rev, MemorySize: 128}
}

func TestWarmReuseMostRecentlyUsedFirst(t *testing.T) {
	m, w, clk := setup(4096)
	ctx := context.Background()
	a, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil || !a.Cold {
		t.Fatalf("first acquire: %+v %v", a, err)
	}
	b, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil || !b.Cold || b.SandboxID == a.SandboxID {
		t.Fatalf("concurrent acquire must make a second sandbox: %+v %v", b, err)
	}
	m.Release(a, true)
	clk.add(time.Second)
	m.Release(b, true)
	c, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil || c.Cold || c.SandboxID != b.SandboxID {
		t.Fatalf("want warm MRU sandbox %s, got %+v %v", b.SandboxID, c, err)
	}
	if w.created != 2 {
		t.Fatalf("created %d sandboxes", w.created)
	}
	m.Release(c, true)
	if got := m.Counts(); got[Idle] != 2 {
		t.Fatalf("counts %v", got)
	}
}

func TestNewRevisionRetiresOldSandboxes(t *testing.T) {
	m, w, _ := setup(4096)
	ctx := context.Background()
	a, _ := m.Acquire(ctx, fn("f", "r1"))
	busy, _ := m.Acquire(ctx, fn("f", "r1"))
	m.Release(a, true)
	n, err := m.Acquire(ctx, fn("f", "r2"))
	if err != nil || !n.Cold {
		t.Fatalf("new revision must start cold: %+v %v", n, err)
	}
	m.Release(busy, true) // old revision: destroyed, not pooled
	m.Release(n, true)
	m.Shutdown()
	if w.liveCount() != 0 || len(w.destroyed) != 3 {
		t.Fatalf("live %d destroyed %v", w.liveCount(), w.destroyed)
	}
}

func TestFailuresLeaveNothing(t *testing.T) {
	m, w, _ := setup(256)
	ctx := context.Background()
	w.failNext = &invoke.InitError{Type: "Runtime.ExitError", Message: "exit status 1"}
	_, err := m.Acquire(ctx, fn("f", "r1"))
	var ie *invoke.InitError
	if !errors.As(err, &ie) {
		t.Fatalf("init failure: %v", err)
	}
	if len(m.Counts()) != 0 {
		t.Fatalf("a failed sandbox stayed in the table: %v", m.Counts())
	}
	a, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil {
		t.Fatalf("memory of the failed sandbox was not freed: %v", err)
	}
	m.Release(a, false) // unhealthy: destroyed
	m.Shutdown()
	if w.liveCount() != 0 || len(m.Counts()) != 0 {
		t.Fatalf("live %d counts %v", w.liveCount(), m.Counts())
	}
}

func TestKeepAliveAndReclaimUnderPressure(t *testing.T) {
	m, w, clk := setup(256) // room for two 128 MB sandboxes
	ctx := context.Background()
	a, _ := m.Acquire(ctx, fn("f", "r1"))
	b, _ := m.Acquire(ctx, fn("g", "r1"))
	m.Release(a, true)
	clk.add(10 * time.Second)
	m.Release(b, true)
	// Full: a third function reclaims the least recently used idle one (f's).
	c, err := m.Acquire(ctx, fn("h", "r1"))
	if err != nil {
		t.Fatalf("no reclaim under pressure: %v", err)
	}
	if w.destroyed[0] != a.SandboxID {
		t.Fatalf("reclaimed %v, want the oldest %s", w.destroyed, a.SandboxID)
	}
	m.Release(c, true)
	if n := m.ReapIdle(clk.now().Add(30 * time.Second)); n != 0 {
		t.Fatalf("reaped %d before keep-alive", n)
	}
	clk.add(time.Minute)
	if n := m.ReapIdle(clk.now()); n != 2 {
		t.Fatalf("reaped %d after keep-alive, want 2", n)
	}
	m.Shutdown()
	if w.liveCount() != 0 {
		t.Fatalf("%d sandboxes left", w.liveCount())
	}
	if _, err := m.Acquire(ctx, fn("f", "r1")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("acquire after shutdown: %v", err)
	}
}

func TestIllegalTransitionPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("idle -> idle did not panic")
		}
	}()
	sb := &sandbox{id: "x", state: Idle}
	sb.transition(Idle)
}

// Each version of a function has its own sandboxes: a new revision of
// $LATEST retires only $LATEST's, retiring a version only that one's, and
// retiring the function every version's.
func TestSandboxesPerVersion(t *testing.T) {
	m, w, _ := setup(4096)
	ctx := context.Background()
	v := func(version, rev string) *store.Function {
		f := fn("f", rev)
		f.Version = version
		return f
	}
	acquire := func(f *store.Function) invoke.Assignment {
		t.Helper()
		a, err := m.Acquire(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	latest, one, two := acquire(v("", "r1")), acquire(v("1", "v1")), acquire(v("2", "v2"))
	other := acquire(fn("g", "r1"))
	for _, a := range []invoke.Assignment{latest, one, two, other} {
		m.Release(a, true)
	}
	// Warm per version: each gets its own sandbox back.
	if a := acquire(v("1", "v1")); a.Cold || a.SandboxID != one.SandboxID {
		t.Fatalf("version 1 got %+v, want its warm %s", a, one.SandboxID)
	} else {
		m.Release(a, true)
	}
	// A new $LATEST revision leaves the versions' sandboxes warm.
	if a := acquire(v("", "r2")); !a.Cold {
		t.Fatal("a new revision of $LATEST started warm")
	} else {
		m.Release(a, true)
	}
	waitDestroyed := func(ids ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			w.mu.Lock()
			n := 0
			for _, id := range ids {
				if !w.live[id] {
					n++
				}
			}
			w.mu.Unlock()
			if n == len(ids) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandboxes %v not destroyed", ids)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitDestroyed(latest.SandboxID)
	if a := acquire(v("2", "v2")); a.Cold || a.SandboxID != two.SandboxID {
		t.Fatalf("version 2 lost its warm sandbox to a $LATEST change: %+v", a)
	} else {
		m.Release(a, true)
	}
	m.Retire("111111111111.f:2")
	waitDestroyed(two.SandboxID)
	if a := acquire(v("1", "v1")); a.Cold {
		t.Fatal("retiring version 2 retired version 1")
	} else {
		m.Release(a, true)
	}
	m.Retire("111111111111.f")
	waitDestroyed(one.SandboxID)
	if got := m.Counts(); got[Idle] != 1 {
		t.Fatalf("after retiring f: %v, want only g's sandbox", got)
	}
	if a := acquire(fn("g", "r1")); a.Cold || a.SandboxID != other.SandboxID {
		t.Fatal("retiring f retired g")
	} else {
		m.Release(a, true)
	}
	m.Shutdown()
}

// prewarmPolicy asks for every sandbox to be given back at once and a new
// one pre-warmed a minute later, kept for 30 s.
type prewarmPolicy struct{}

func (prewarmPolicy) Observe(string, time.Time) {}
func (prewarmPolicy) Released(string, time.Time) WarmWindow {
	return WarmWindow{Prewarm: time.Minute, KeepAlive: 30 * time.Second}
}
func (prewarmPolicy) Forget(string) {}

func TestPolicyPrewarms(t *testing.T) {
	w := &fakeWorker{live: map[string]bool{}}
	p := placement.New()
	p.Register(placement.Worker{ID: "w1", MemoryMB: 4096})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Config{Placement: p, Workers: func(id string) (Worker, bool) { return w, true },
		KeepAlive: time.Minute, Now: clk.now, Policy: prewarmPolicy{}})
	ctx := context.Background()
	a, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	m.Release(a, true)
	m.wg.Wait()
	if w.liveCount() != 0 {
		t.Fatal("the policy said release at once, but the sandbox stayed")
	}
	m.startPrewarms(clk.now().Add(30 * time.Second))
	m.wg.Wait()
	if w.created != 1 {
		t.Fatal("pre-warmed before it was due")
	}
	clk.add(time.Minute)
	m.startPrewarms(clk.now())
	m.wg.Wait()
	if w.created != 2 || m.Counts()[Idle] != 1 {
		t.Fatalf("no pre-warmed sandbox: created %d, %v", w.created, m.Counts())
	}
	b, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil || b.Cold {
		t.Fatalf("the invoke after a pre-warm was cold: %+v %v", b, err)
	}
	m.Release(b, true)
	// A pre-warmed sandbox nobody uses goes after its keep-alive.
	clk.add(2 * time.Minute)
	m.startPrewarms(clk.now())
	m.wg.Wait()
	if n := m.ReapIdle(clk.now().Add(31 * time.Second)); n != 1 {
		t.Fatalf("reaped %d", n)
	}
	m.Shutdown()
	if w.liveCount() != 0 {
		t.Fatalf("%d left", w.liveCount())
	}
}

func fnMem(name string, memMB int) *store.Function {
	f := fn(name, "r1")
	f.MemorySize = memMB
	return f
}

// TestNoCapacityFailsFast: with the only slot's memory held by a busy
// sandbox, a new sandbox is refused at once with Lambda's 429
// TooManyRequestsException (no Reason: none of Lambda's fits), the busy
// one untouched; an idle one that cannot make room is not destroyed
// either. Once the busy one is idle, it is reclaimed for the new one.
func TestNoCapacityFailsFast(t *testing.T) {
	m, w, _ := setup(128)
	ctx := context.Background()
	busy, err := m.Acquire(ctx, fn("f", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	acquire := func(f *store.Function) (invoke.Assignment, error) {
		t.Helper()
		type result struct {
			a   invoke.Assignment
			err error
		}
		done := make(chan result, 1)
		go func() {
			a, err := m.Acquire(ctx, f)
			done <- result{a, err}
		}()
		select {
		case r := <-done:
			return r.a, r.err
		case <-time.After(5 * time.Second):
			t.Fatal("acquire with no capacity hangs")
		}
		return invoke.Assignment{}, nil
	}
	_, err = acquire(fn("g", "r1"))
	var le *lambdaapi.Error
	if !errors.As(err, &le) || le.Status() != 429 || le.Type != lambdaapi.TooManyRequests ||
		le.Reason != "" || le.RetryAfterSeconds == "" {
		t.Fatalf("no capacity answered %#v", err)
	}
	if w.liveCount() != 1 || len(w.destroyed) != 0 || w.created != 1 {
		t.Fatalf("live %d, destroyed %v, created %d", w.liveCount(), w.destroyed, w.created)
	}
	// Idle now, but 256 MB do not fit even without it: it stays.
	m.Release(busy, true)
	if _, err := acquire(fnMem("big", 256)); !errors.As(err, &le) || le.Status() != 429 {
		t.Fatalf("256 MB on a 128 MB worker: %v", err)
	}
	if len(w.destroyed) != 0 {
		t.Fatalf("destroyed %v for a sandbox that could not fit anyway", w.destroyed)
	}
	// 128 MB fit once the idle one is reclaimed.
	g, err := acquire(fn("g", "r1"))
	if err != nil || !g.Cold {
		t.Fatalf("after the busy sandbox went idle: %+v %v", g, err)
	}
	if len(w.destroyed) != 1 || w.destroyed[0] != busy.SandboxID {
		t.Fatalf("destroyed %v, want %s", w.destroyed, busy.SandboxID)
	}
}

// TestReclaimOnTheFullWorker: under memory pressure the idle sandbox
// reclaimed is one on a worker where that makes room, even when an older
// idle one sits on a worker where it would not.
func TestReclaimOnTheFullWorker(t *testing.T) {
	w1 := &fakeWorker{live: map[string]bool{}}
	w2 := &fakeWorker{live: map[string]bool{}}
	p := placement.New()
	p.Register(placement.Worker{ID: "w1", MemoryMB: 256})
	p.Register(placement.Worker{ID: "w2", MemoryMB: 512})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	m := New(Config{Placement: p, KeepAlive: time.Minute, Now: clk.now,
		Workers: func(id string) (Worker, bool) {
			switch id {
			case "w1":
				return w1, true
			case "w2":
				return w2, true
			}
			return nil, false
		}})
	ctx := context.Background()
	must := func(f *store.Function, worker string) invoke.Assignment {
		t.Helper()
		a, err := m.Acquire(ctx, f)
		if err != nil || a.WorkerID != worker {
			t.Fatalf("%s: %+v %v, want it on %s", f.Name, a, err, worker)
		}
		return a
	}
	// Placement puts each on the worker with the most free memory.
	must(fnMem("a", 256), "w2")      // w1 256 free, w2 256
	b := must(fnMem("b", 128), "w1") // w1 128, w2 256
	c := must(fnMem("c", 256), "w2") // w1 128, w2 0
	must(fnMem("d", 128), "w1")      // both full
	m.Release(b, true)               // the oldest idle, on w1 (128 MB)
	clk.add(time.Second)
	m.Release(c, true) // a newer idle one, on w2 (256 MB)

	// 256 MB: reclaiming b would leave w1 at 128 MB; c makes room on w2.
	e := must(fnMem("e", 256), "w2")
	if len(w1.destroyed) != 0 || len(w2.destroyed) != 1 || w2.destroyed[0] != c.SandboxID {
		t.Fatalf("reclaimed w1 %v, w2 %v; want only %s on w2", w1.destroyed, w2.destroyed, c.SandboxID)
	}
	// b is still warm.
	if again := must(fnMem("b", 128), "w1"); again.Cold || again.SandboxID != b.SandboxID {
		t.Fatalf("b's idle sandbox was not kept: %+v", again)
	}
	m.Release(e, true)
	m.Shutdown()
}
