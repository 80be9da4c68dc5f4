package counting

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func reason(t *testing.T, err error) string {
	t.Helper()
	var le *lambdaapi.Error
	if !errors.As(err, &le) || le.Status() != 429 || le.RetryAfterSeconds == "" {
		t.Fatalf("want a 429 with retryAfterSeconds, got %v", err)
	}
	return le.Reason
}

func TestAccountLimitAcrossFunctions(t *testing.T) {
	s := New(Config{AccountLimit: 3})
	ctx := context.Background()
	var rel []func()
	for _, fn := range []string{"f", "g", "f"} {
		r, err := s.Acquire(ctx, "a", fn, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, r)
	}
	_, err := s.Acquire(ctx, "a", "g", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason")
	}
	if _, err := s.Acquire(ctx, "b", "f", time.Second); err != nil {
		t.Fatalf("another account is limited by the first: %v", err)
	}
	rel[0]()
	rel[0]() // twice is harmless
	if u := s.AccountUsage("a"); u.InUse != 2 || u.Limit != 3 {
		t.Fatalf("usage %+v", u)
	}
	if _, err := s.Acquire(ctx, "a", "g", time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestReservedConcurrency(t *testing.T) {
	s := New(Config{AccountLimit: 10})
	ctx := context.Background()
	two := 2
	s.SetReserved("a", "r", &two)
	if u := s.AccountUsage("a"); u.Unreserved != 8 {
		t.Fatalf("unreserved %d, want 8", u.Unreserved)
	}
	// The reserved function is capped at 2 ...
	for i := 0; i < 2; i++ {
		if _, err := s.Acquire(ctx, "a", "r", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Acquire(ctx, "a", "r", time.Second)
	if reason(t, err) != lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit {
		t.Fatal("wrong reason")
	}
	// ... and others share the 8 left, never the reserved 2.
	for i := 0; i < 8; i++ {
		if _, err := s.Acquire(ctx, "a", "other", time.Second); err != nil {
			t.Fatalf("unreserved slot %d: %v", i, err)
		}
	}
	_, err = s.Acquire(ctx, "a", "third", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason")
	}
	zero := 0
	s.SetReserved("a", "z", &zero)
	_, err = s.Acquire(ctx, "a", "z", time.Second)
	if reason(t, err) != lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit {
		t.Fatal("reserved 0 must throttle every invoke")
	}
	s.SetReserved("a", "z", nil)
	if u := s.AccountUsage("a"); u.Unreserved != 8 {
		t.Fatalf("unreserved after delete %d", u.Unreserved)
	}
}

func TestLeasesExpire(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := New(Config{AccountLimit: 1, LeaseGrace: 5 * time.Second, Now: clk.now})
	ctx := context.Background()
	rel, err := s.Acquire(ctx, "a", "f", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(7 * time.Second) // timeout + grace not yet over
	if n := s.Reap(clk.t); n != 0 {
		t.Fatalf("reaped %d early", n)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if n := s.Reap(clk.t); n != 1 {
		t.Fatalf("reaped %d, want the vanished invoke's slot", n)
	}
	if _, err := s.Acquire(ctx, "a", "f", time.Second); err != nil {
		t.Fatalf("slot not back: %v", err)
	}
	rel() // the late release of a reaped lease changes nothing
	if u := s.AccountUsage("a"); u.InUse != 1 {
		t.Fatalf("in use %d after a late release", u.InUse)
	}
}

func TestScalingRate(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := New(Config{ScaleBurst: 5, ScaleWindow: 10 * time.Second, Now: clk.now})
	for i := 0; i < 5; i++ {
		if err := s.AllowNewSandbox("a", "f"); err != nil {
			t.Fatalf("sandbox %d: %v", i, err)
		}
	}
	if reason(t, s.AllowNewSandbox("a", "f")) != lambdaapi.ReasonFunctionInvocationRateLimitExceeded {
		t.Fatal("wrong reason")
	}
	if err := s.AllowNewSandbox("a", "g"); err != nil {
		t.Fatalf("another function shares the budget: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Second) // one token refilled (5 per 10 s)
	if err := s.AllowNewSandbox("a", "f"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if s.AllowNewSandbox("a", "f") == nil {
		t.Fatal("refill gave more than one token")
	}
	clk.t = clk.t.Add(time.Hour) // not banked beyond the burst
	for i := 0; i < 5; i++ {
		if err := s.AllowNewSandbox("a", "f"); err != nil {
			t.Fatal(err)
		}
	}
	if s.AllowNewSandbox("a", "f") == nil {
		t.Fatal("an hour of quiet banked more than the burst")
	}
}

func TestConcurrentAcquireNeverExceeds(t *testing.T) {
	s := New(Config{AccountLimit: 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	max, cur := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				rel, err := s.Acquire(context.Background(), "a", "f", time.Second)
				if err != nil {
					continue
				}
				mu.Lock()
				if cur++; cur > max {
					max = cur
				}
				cur--
				mu.Unlock()
				rel()
			}
		}()
	}
	wg.Wait()
	if max > 5 {
		t.Fatalf("%d concurrent slots with limit 5", max)
	}
	if u := s.AccountUsage("a"); u.InUse != 0 || s.FunctionInUse("a", "f") != 0 {
		t.Fatalf("leaked slots: %+v", u)
	}
}
