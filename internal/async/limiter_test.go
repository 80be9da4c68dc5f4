package async

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// simulate runs rounds of invocations through l, as many at once as it
// allows; the i-th of a round of n is of function fn and takes d, as
// run(n, i) says. The fake clock moves by the longest of each round. It
// returns the limits seen after each round.
func simulate(l *limiter, clock *time.Time, rounds int, run func(n, i int) (fn string, d time.Duration)) []int {
	var limits []int
	for range rounds {
		n := 0
		for l.free() > 0 && l.acquire(context.Background()) {
			n++
		}
		var longest time.Duration
		for i := range n {
			_, d := run(n, i)
			longest = max(longest, d)
		}
		*clock = clock.Add(longest)
		for i := range n {
			fn, d := run(n, i)
			l.observe(fn, d)
			l.release()
		}
		limits = append(limits, l.Limit())
	}
	return limits
}

// An invocation that needs the CPU (2 CPUs, 0.5 ms each: durations grow
// with what runs at once beyond 2) keeps the limit a few above 2; one that
// waits (the same duration however many run) takes it to the maximum, as
// do a slow and a fast function side by side (each is compared with its
// own least duration).
func TestLimiterAdapts(t *testing.T) {
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }

	noTimers := func(time.Duration, func()) {} // the fake clock ends probes
	cpu := newLimiter(64, now)
	cpu.after = noTimers
	// 100,000 rounds of a few ms: several periods, so several probes.
	limits := simulate(cpu, &clock, 100000, func(n, _ int) (string, time.Duration) {
		return "acct/fn", time.Duration(max(n, 2)) * 250 * time.Microsecond
	})
	settled := limits[len(limits)/2:]
	lo, hi := slices.Min(settled), slices.Max(settled)
	t.Logf("CPU-bound: limit from %v to between %d and %d after %v", limits[:10], lo, hi, clock.Sub(time.Unix(0, 0)))
	if lo < limitMin || hi > 12 {
		t.Errorf("CPU-bound invocations settled between %d and %d at once, want a few above the 2 CPUs", lo, hi)
	}

	for name, run := range map[string]func(n, i int) (string, time.Duration){
		"waiting": func(int, int) (string, time.Duration) { return "acct/fn", 20 * time.Millisecond },
		"slow and fast": func(_, i int) (string, time.Duration) {
			if i%2 == 1 {
				return "acct/slow", time.Second
			}
			return "acct/fast", time.Millisecond
		},
	} {
		l := newLimiter(64, now)
		l.after = noTimers
		limits = simulate(l, &clock, 2000, run)
		t.Logf("%s: limit %v ... %d", name, limits[:20], limits[len(limits)-1])
		if last := limits[len(limits)-1]; last != 64 {
			t.Errorf("%s: settled at %d at once, want the maximum 64", name, last)
		}
	}

	// A limit that is not used does not grow.
	idle := newLimiter(64, now)
	idle.after = noTimers
	for range 1000 {
		if !idle.acquire(context.Background()) {
			t.Fatal("acquire failed")
		}
		clock = clock.Add(time.Millisecond)
		idle.observe("acct/fn", time.Millisecond)
		idle.release()
	}
	if got := idle.Limit(); got != limitStart {
		t.Errorf("one at a time moved the limit from %d to %d", limitStart, got)
	}
}

// The limiter is a semaphore: at most Limit at once, the waiting served
// in order, a wait that ends with its context gives nothing away.
func TestLimiterSemaphore(t *testing.T) {
	l := newLimiter(3, time.Now)
	for range 3 {
		if !l.acquire(context.Background()) {
			t.Fatal("acquire failed")
		}
	}
	if l.free() != 0 {
		t.Fatalf("free %d, want 0", l.free())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if l.acquire(ctx) {
		t.Fatal("a fourth place was given at a limit of 3")
	}
	got := make(chan int, 2)
	for i := range 2 {
		go func() {
			if l.acquire(context.Background()) {
				got <- i
			}
		}()
		waitUntil(t, "the waiter to wait", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.waiters) == i+1
		})
	}
	l.release()
	if first := <-got; first != 0 {
		t.Fatalf("waiter %d served first", first)
	}
	l.release()
	<-got
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight != 3 || len(l.waiters) != 0 {
		t.Fatalf("inflight %d, waiters %d; want 3 and 0", l.inflight, len(l.waiters))
	}
}

// A context that ended gets no place, even when places are free, and a
// place granted as it ends is given back.
func TestLimiterEndedContext(t *testing.T) {
	l := newLimiter(4, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l.acquire(ctx) {
		t.Fatal("a place for a context that ended")
	}
	if l.free() != l.Limit() {
		t.Fatalf("free %d of %d", l.free(), l.Limit())
	}
}

// A probe ends on its own (a timer) even when the invocations in flight
// are long and nothing is given back, and the waiters get their places.
func TestLimiterProbeEndsByItself(t *testing.T) {
	var (
		mu     sync.Mutex
		clock  = time.Unix(0, 0)
		timers []func()
	)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	l := newLimiter(64, now)
	l.after = func(_ time.Duration, f func()) { mu.Lock(); timers = append(timers, f); mu.Unlock() }
	for range 6 {
		if !l.acquire(context.Background()) {
			t.Fatal("acquire failed")
		}
	}
	mu.Lock()
	clock = clock.Add(minPeriod)
	mu.Unlock()
	got := make(chan bool, 1)
	go func() { got <- l.acquire(context.Background()) }() // starts the probe, waits
	waitUntil(t, "a probe with a waiter", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.probing && len(l.waiters) == 1
	})
	if l.Limit() != limitMin {
		t.Fatalf("probe limit %d, want %d", l.Limit(), limitMin)
	}
	// Nothing drains (6 in flight): only the probe's deadline ends it.
	mu.Lock()
	clock = clock.Add(probeMax)
	fire := timers
	mu.Unlock()
	for _, f := range fire {
		f()
	}
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiter got no place")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the probe did not end: the waiter still waits")
	}
	if l.Limit() != 8 {
		t.Fatalf("limit %d after the probe, want 8 back", l.Limit())
	}
}

// Pollers reports the limit and the places taken.
func TestPollersReport(t *testing.T) {
	q := &Queue{limit: newLimiter(64, time.Now)}
	for range 3 {
		if !q.limit.acquire(context.Background()) {
			t.Fatal("acquire failed")
		}
	}
	if limit, running := q.Pollers(); limit != limitStart || running != 3 {
		t.Fatalf("Pollers() = %d, %d; want %d, 3", limit, running, limitStart)
	}
	q.limit.release()
	if _, running := q.Pollers(); running != 2 {
		t.Fatalf("running %d after a release, want 2", running)
	}
}
