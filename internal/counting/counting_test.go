package counting

import (
	"context"
	"errors"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
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
		r, err := s.Acquire(ctx, "a", fn, "1", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, r)
	}
	_, err := s.Acquire(ctx, "a", "g", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason")
	}
	if _, err := s.Acquire(ctx, "b", "f", "1", time.Second); err != nil {
		t.Fatalf("another account is limited by the first: %v", err)
	}
	rel[0]()
	rel[0]() // twice is harmless
	if u := s.AccountUsage("a"); u.InUse != 2 || u.Limit != 3 {
		t.Fatalf("usage %+v", u)
	}
	if _, err := s.Acquire(ctx, "a", "g", "1", time.Second); err != nil {
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
		if _, err := s.Acquire(ctx, "a", "r", "1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Acquire(ctx, "a", "r", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit {
		t.Fatal("wrong reason")
	}
	// ... and others share the 8 left, never the reserved 2.
	for i := 0; i < 8; i++ {
		if _, err := s.Acquire(ctx, "a", "other", "1", time.Second); err != nil {
			t.Fatalf("unreserved slot %d: %v", i, err)
		}
	}
	_, err = s.Acquire(ctx, "a", "third", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason")
	}
	zero := 0
	s.SetReserved("a", "z", &zero)
	_, err = s.Acquire(ctx, "a", "z", "1", time.Second)
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
	rel, err := s.Acquire(ctx, "a", "f", "1", 3*time.Second)
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
	if _, err := s.Acquire(ctx, "a", "f", "1", time.Second); err != nil {
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

// TestConcurrentAcquireNeverExceeds: many goroutines take slots and hold
// each across yields, outside any lock of the test, so that a limit that
// let a sixth slot through would be seen holding it with five others.
func TestConcurrentAcquireNeverExceeds(t *testing.T) {
	s := New(Config{AccountLimit: 5})
	var wg sync.WaitGroup
	var cur, max, throttled atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				rel, err := s.Acquire(context.Background(), "a", "f", "1", time.Second)
				if err != nil {
					throttled.Add(1)
					runtime.Gosched()
					continue
				}
				n := cur.Add(1)
				for m := max.Load(); n > m && !max.CompareAndSwap(m, n); m = max.Load() {
				}
				for k := 0; k < 3; k++ {
					runtime.Gosched() // hold the slot while the others run
				}
				cur.Add(-1)
				rel()
			}
		}()
	}
	wg.Wait()
	if max.Load() > 5 {
		t.Fatalf("%d concurrent slots with limit 5", max.Load())
	}
	if throttled.Load() == 0 {
		t.Fatal("no acquire was ever refused: the test did not contend for the limit")
	}
	if u := s.AccountUsage("a"); u.InUse != 0 || s.FunctionInUse("a", "f") != 0 {
		t.Fatalf("leaked slots: %+v", u)
	}
}

// TestProvisionedCarvedOut: provisioned concurrency of a function without
// a reservation is taken out of the unreserved pool (other functions
// cannot use it up); past it the function shares the pool; with a
// reservation it counts against the reservation, not again.
func TestProvisionedCarvedOut(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s := New(Config{AccountLimit: 6, Now: clk.now})
	ctx := context.Background()
	s.SetProvisioned("a", "p", map[string]int{"1": 2})
	if u := s.AccountUsage("a"); u.Unreserved != 4 {
		t.Fatalf("unreserved %d, want 6-2", u.Unreserved)
	}
	// Other functions use up the pool: 4, not 6.
	var others []func()
	for i := 0; i < 4; i++ {
		rel, err := s.Acquire(ctx, "a", "other", "1", time.Second)
		if err != nil {
			t.Fatalf("unreserved slot %d: %v", i, err)
		}
		others = append(others, rel)
	}
	_, err := s.Acquire(ctx, "a", "other", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason")
	}
	// The provisioned function still has its 2 ...
	var prov []func()
	for i := 0; i < 2; i++ {
		rel, err := s.Acquire(ctx, "a", "p", "1", time.Second)
		if err != nil {
			t.Fatalf("provisioned slot %d with the pool used up: %v", i, err)
		}
		prov = append(prov, rel)
	}
	// ... and past them shares the full pool.
	_, err = s.Acquire(ctx, "a", "p", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("wrong reason past the provisioned concurrency")
	}
	others[0]()
	spill, err := s.Acquire(ctx, "a", "p", "1", time.Second)
	if err != nil {
		t.Fatalf("past its provisioned concurrency, with room in the pool: %v", err)
	}
	if s.FunctionInUse("a", "p") != 3 || s.AccountUsage("a").InUse != 6 {
		t.Fatalf("in use: p %d, account %+v", s.FunctionInUse("a", "p"), s.AccountUsage("a"))
	}
	// The pool is charged by amount: once p holds no more than its
	// provisioned 2 (whichever of its slots ended), it uses none of the
	// pool, and the pool's slot goes to another function.
	prov[0]()
	if _, err := s.Acquire(ctx, "a", "other", "1", time.Second); err != nil {
		t.Fatalf("p within its provisioned concurrency still charged to the pool: %v", err)
	}
	_, err = s.Acquire(ctx, "a", "p", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonConcurrentInvocationLimitExceeded {
		t.Fatal("p past its provisioned concurrency with the pool full")
	}
	if u := s.AccountUsage("a"); u.InUse != 6 {
		t.Fatalf("in use %d, want the limit 6", u.InUse)
	}
	spill()
	if _, err := s.Acquire(ctx, "a", "p", "1", time.Second); err != nil {
		t.Fatalf("p's provisioned slot not back: %v", err)
	}

	// With a reservation, provisioned concurrency is part of it: the
	// reservation caps the function and is the carve-out.
	s2 := New(Config{AccountLimit: 10, Now: clk.now})
	three := 3
	s2.SetProvisioned("a", "r", map[string]int{"1": 2})
	s2.SetReserved("a", "r", &three)
	if u := s2.AccountUsage("a"); u.Unreserved != 7 {
		t.Fatalf("unreserved %d, want 10-3 (the provisioned 2 are inside the 3)", u.Unreserved)
	}
	for i := 0; i < 3; i++ {
		if _, err := s2.Acquire(ctx, "a", "r", "1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s2.Acquire(ctx, "a", "r", "1", time.Second)
	if reason(t, err) != lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit {
		t.Fatal("a reserved function with provisioned concurrency went past its reservation")
	}
	s2.SetReserved("a", "r", nil)
	if u := s2.AccountUsage("a"); u.Unreserved != 8 {
		t.Fatalf("unreserved %d after the reservation went, want 10-2", u.Unreserved)
	}
	s2.SetProvisioned("a", "r", nil)
	if u := s2.AccountUsage("a"); u.Unreserved != 10 {
		t.Fatalf("unreserved %d with nothing carved", u.Unreserved)
	}

	// A provisioned lease that expires is taken back as provisioned.
	s3 := New(Config{AccountLimit: 3, LeaseGrace: time.Second, Now: clk.now})
	s3.SetProvisioned("a", "p", map[string]int{"1": 1})
	if _, err := s3.Acquire(ctx, "a", "p", "1", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(3 * time.Second)
	if n := s3.Reap(clk.t); n != 1 {
		t.Fatalf("reaped %d", n)
	}
	for i := 0; i < 2; i++ {
		if _, err := s3.Acquire(ctx, "a", "other", "1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s3.Acquire(ctx, "a", "other", "1", time.Second); err == nil {
		t.Fatal("the reaped provisioned slot went to the pool")
	}
	if _, err := s3.Acquire(ctx, "a", "p", "1", time.Second); err != nil {
		t.Fatalf("the reaped provisioned slot is not back: %v", err)
	}
}

// A configuration changed while slots are held never lets the account go
// past its limit: a reservation removed from a function with provisioned
// concurrency, provisioned concurrency removed, a reservation lowered.
func TestLimitHeldThroughConfigurationChanges(t *testing.T) {
	ctx := context.Background()
	ten := 10
	for name, change := range map[string]func(s *Service){
		"reservation removed (provisioned 10 left)": func(s *Service) { s.SetReserved("a", "f", nil) },
		"provisioned removed":                       func(s *Service) { s.SetProvisioned("a", "f", nil); s.SetReserved("a", "f", nil) },
		"reservation lowered":                       func(s *Service) { one := 1; s.SetReserved("a", "f", &one) },
	} {
		s := New(Config{AccountLimit: 110})
		s.SetProvisioned("a", "f", map[string]int{"1": 10})
		s.SetReserved("a", "f", &ten)
		for i := 0; i < 10; i++ {
			if _, err := s.Acquire(ctx, "a", "f", "1", time.Minute); err != nil {
				t.Fatalf("%s: f's slot %d: %v", name, i, err)
			}
		}
		change(s)
		granted := 10
		for i := 0; i < 200; i++ {
			fn := "g"
			if i%2 == 0 {
				fn = "f"
			}
			if _, err := s.Acquire(ctx, "a", fn, "1", time.Minute); err == nil {
				granted++
			}
		}
		if u := s.AccountUsage("a"); u.InUse != granted || granted > 110 {
			t.Errorf("%s: %d slots granted (%d in use), limit 110", name, granted, u.InUse)
		}
	}
}

// A function past its provisioned concurrency charges the pool only for
// what it holds beyond it: when its earlier slots end, the pool is free
// for the others again (it cannot keep the account to itself).
func TestSpilloverChargedByAmount(t *testing.T) {
	ctx := context.Background()
	s := New(Config{AccountLimit: 1000})
	s.SetProvisioned("a", "f", map[string]int{"1": 500})
	var first []func()
	for i := 0; i < 1000; i++ {
		rel, err := s.Acquire(ctx, "a", "f", "1", time.Minute)
		if err != nil {
			t.Fatalf("f's slot %d: %v", i, err)
		}
		if i < 500 {
			first = append(first, rel)
		}
	}
	if _, err := s.Acquire(ctx, "a", "g", "1", time.Minute); err == nil {
		t.Fatal("g got a slot with the account full")
	}
	for _, rel := range first {
		rel()
	}
	// f holds 500, within its provisioned 500: the pool (500) is free.
	for i := 0; i < 500; i++ {
		if _, err := s.Acquire(ctx, "a", "g", "1", time.Minute); err != nil {
			t.Fatalf("g's slot %d with f within its provisioned concurrency: %v", i, err)
		}
	}
	if _, err := s.Acquire(ctx, "a", "f", "1", time.Minute); err == nil {
		t.Fatal("f got a slot past its provisioned concurrency with the pool full")
	}
}

// TestProvisionedPerVersion: a version's provisioned concurrency is its
// own; the function's other versions cannot use it. With a reservation,
// the others share what the reservation leaves past the provisioned
// concurrency, so a function whose provisioned concurrency adds up to its
// reservation cannot run $LATEST (as in Lambda). Provisioned concurrency
// set while slots are held counts them against the new figures.
func TestProvisionedPerVersion(t *testing.T) {
	ctx := context.Background()
	// grant takes n slots of fn's version v, which must be granted.
	grant := func(s *Service, fn, v string, n int, what string) []func() {
		t.Helper()
		var rels []func()
		for i := 0; i < n; i++ {
			rel, err := s.Acquire(ctx, "a", fn, v, time.Second)
			if err != nil {
				t.Fatalf("%s (slot %d): %v", what, i, err)
			}
			rels = append(rels, rel)
		}
		return rels
	}
	// refuse expects a 429 for one more slot of fn's version v.
	refuse := func(s *Service, fn, v, want, what string) {
		t.Helper()
		_, err := s.Acquire(ctx, "a", fn, v, time.Second)
		if err == nil {
			t.Fatalf("granted: %s", what)
		}
		if got := reason(t, err); got != want {
			t.Fatalf("%s: reason %q, want %q", what, got, want)
		}
	}
	const unreserved, reservedLimit = lambdaapi.ReasonConcurrentInvocationLimitExceeded, lambdaapi.ReasonReservedFunctionConcurrentInvocationLimit

	// Without a reservation: limit 4, version 1 of p has 2 provisioned.
	s := New(Config{AccountLimit: 4})
	s.SetProvisioned("a", "p", map[string]int{"1": 2})
	grant(s, "other", "$LATEST", 2, "the unreserved pool")
	refuse(s, "p", "$LATEST", unreserved, "$LATEST took version 1's provisioned slot")
	grant(s, "p", "1", 2, "version 1's provisioned slots")
	refuse(s, "p", "1", unreserved, "version 1 went past its provisioned concurrency with the pool full")

	// reserved is p with reservation r and 2 provisioned on version 1.
	reserved := func(r int) *Service {
		s := New(Config{AccountLimit: 10})
		s.SetReserved("a", "p", &r)
		s.SetProvisioned("a", "p", map[string]int{"1": 2})
		return s
	}
	// A reservation equal to the provisioned concurrency: $LATEST is
	// throttled even with nothing running.
	s = reserved(2)
	refuse(s, "p", "$LATEST", reservedLimit, "$LATEST ran on a function whose provisioned concurrency fills its reservation")
	grant(s, "p", "1", 2, "version 1's provisioned slots")
	refuse(s, "p", "1", reservedLimit, "version 1 went past the reservation")

	// Reservation 3, version 1 provisioned 2: one shared slot, taken by
	// $LATEST; version 1 keeps its 2 and spills only into the shared one.
	s = reserved(3)
	latest := grant(s, "p", "$LATEST", 1, "$LATEST in the reservation's shared slot")
	refuse(s, "p", "$LATEST", reservedLimit, "$LATEST took a provisioned slot")
	grant(s, "p", "1", 2, "version 1's provisioned slots with the shared one taken")
	refuse(s, "p", "1", reservedLimit, "version 1 spilled past the shared slot")
	latest[0]()
	grant(s, "p", "1", 1, "version 1's spill into the freed shared slot")
	if n := s.FunctionInUse("a", "p"); n != 3 {
		t.Fatalf("p holds %d, want 3", n)
	}

	// Provisioned concurrency set while a slot is held: version 2's slot,
	// charged to the pool, is provisioned from then on; released, it
	// leaves nothing behind.
	s = New(Config{AccountLimit: 3})
	held := grant(s, "p", "2", 1, "version 2 before it is provisioned")
	s.SetProvisioned("a", "p", map[string]int{"2": 1})
	grant(s, "other", "$LATEST", 2, "the pool, no longer charged for version 2's slot")
	held[0]()
	if u := s.AccountUsage("a"); u.InUse != 2 || u.Unreserved != 2 {
		t.Fatalf("after the release: %+v, want 2 in use, 2 unreserved", u)
	}
	grant(s, "p", "2", 1, "version 2's provisioned slot after its earlier one ended")
	refuse(s, "p", "2", unreserved, "version 2 went past its provisioned concurrency with the pool full")
}

// TestRandomSequences runs seeded random sequences of Acquire, release,
// Reap and configuration changes (reservations, per-version provisioned
// concurrency, the account limit) against one account. After every step
// the service's running figures (in use, spill, pool, carve-out) must
// equal what the live leases and the configuration give when counted
// afresh, and each Acquire must be granted exactly when Lambda's rule,
// applied to those fresh counts, allows it; no grant may take the account
// past its limit or a function past its reservation. Once every lease
// ends, nothing is left counted.
func TestRandomSequences(t *testing.T) {
	fns := []string{"f", "g", "h"}
	versions := []string{"$LATEST", "1", "2"}
	for seed := int64(1); seed <= 200; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		clk := &clock{t: time.Unix(1_700_000_000, 0)}
		s := New(Config{AccountLimit: 8, LeaseGrace: time.Second, Now: clk.now})
		limit := 8
		reserved := map[string]int{}
		provisioned := map[string]map[string]int{}
		var held []func()
		for step := 0; step < 300; step++ {
			switch op := rnd.Intn(10); {
			case op < 5:
				fn, v := fns[rnd.Intn(len(fns))], versions[rnd.Intn(len(versions))]
				want := modelAllows(s, "a", fn, v, limit, reserved, provisioned)
				rel, err := s.Acquire(context.Background(), "a", fn, v, time.Duration(1+rnd.Intn(3))*time.Second)
				if (err == nil) != want {
					t.Fatalf("seed %d step %d: Acquire(%s, %s) err %v, the rule allows it: %v", seed, step, fn, v, err, want)
				}
				if err == nil {
					held = append(held, rel)
				}
			case op < 7 && len(held) > 0:
				i := rnd.Intn(len(held))
				held[i]()
				held = append(held[:i], held[i+1:]...)
			case op == 7:
				clk.t = clk.t.Add(time.Duration(rnd.Intn(3000)) * time.Millisecond)
				s.Reap(clk.t)
			case op == 8:
				fn := fns[rnd.Intn(len(fns))]
				m := map[string]int{}
				for _, v := range versions[1:] {
					if rnd.Intn(2) == 0 {
						m[v] = rnd.Intn(3)
					}
				}
				provisioned[fn] = m
				s.SetProvisioned("a", fn, m)
			default:
				fn := fns[rnd.Intn(len(fns))]
				switch rnd.Intn(3) {
				case 0:
					delete(reserved, fn)
					s.SetReserved("a", fn, nil)
				case 1:
					n := rnd.Intn(5)
					reserved[fn] = n
					s.SetReserved("a", fn, &n)
				default:
					limit = 3 + rnd.Intn(8)
					s.SetAccountLimit("a", limit)
				}
			}
			checkFigures(t, s, "a", seed, step)
		}
		for _, rel := range held {
			rel()
		}
		checkFigures(t, s, "a", seed, -1)
		s.mu.Lock()
		a := s.accounts["a"]
		if a.inUse != 0 || a.pool != 0 || len(s.leases) != 0 {
			t.Fatalf("seed %d: left counted: in use %d, pool %d, leases %d", seed, a.inUse, a.pool, len(s.leases))
		}
		for name, f := range a.functions {
			if f.inUse != 0 || f.spill != 0 {
				t.Fatalf("seed %d: %s left with %d in use, spill %d", seed, name, f.inUse, f.spill)
			}
		}
		s.mu.Unlock()
	}
}

// fresh counts an account's live leases: per function, and per function
// and version.
func fresh(s *Service, acct string) (total int, byFn map[string]int, byVersion map[string]map[string]int) {
	byFn, byVersion = map[string]int{}, map[string]map[string]int{}
	for _, l := range s.leases {
		if l.account != acct {
			continue
		}
		total++
		byFn[l.function]++
		if byVersion[l.function] == nil {
			byVersion[l.function] = map[string]int{}
		}
		byVersion[l.function][l.version]++
	}
	return total, byFn, byVersion
}

// freshSpill is what fn holds beyond its versions' provisioned
// concurrency, from the leases.
func freshSpill(byVersion map[string]int, prov map[string]int) int {
	n := 0
	for v, held := range byVersion {
		n += max(0, held-prov[v])
	}
	return n
}

// modelAllows is Lambda's rule for one more invoke of fn's version v,
// from the leases and the configuration as the test set it.
func modelAllows(s *Service, acct, fn, v string, limit int, reserved map[string]int, provisioned map[string]map[string]int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, byFn, byVersion := fresh(s, acct)
	withinProvisioned := byVersion[fn][v] < provisioned[fn][v]
	if r, ok := reserved[fn]; ok {
		provSum := 0
		for _, n := range provisioned[fn] {
			provSum += n
		}
		return (withinProvisioned || freshSpill(byVersion[fn], provisioned[fn]) < r-provSum) && byFn[fn] < r && total < limit
	}
	carved, pool := 0, 0
	for f := range byFn {
		if _, ok := reserved[f]; !ok {
			pool += freshSpill(byVersion[f], provisioned[f])
		}
	}
	for _, r := range reserved {
		carved += r
	}
	for f, m := range provisioned {
		if _, ok := reserved[f]; !ok {
			for _, n := range m {
				carved += n
			}
		}
	}
	return (withinProvisioned || pool < limit-carved) && total < limit
}

// checkFigures compares the service's running figures with fresh counts.
func checkFigures(t *testing.T, s *Service, acct string, seed int64, step int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[acct]
	if a == nil {
		return
	}
	total, byFn, byVersion := fresh(s, acct)
	if a.inUse != total {
		t.Fatalf("seed %d step %d: account in use %d, leases %d", seed, step, a.inUse, total)
	}
	pool, carved := 0, 0
	for name, f := range a.functions {
		if f.inUse != byFn[name] {
			t.Fatalf("seed %d step %d: %s in use %d, leases %d", seed, step, name, f.inUse, byFn[name])
		}
		if want := freshSpill(byVersion[name], f.provisioned); f.spill != want {
			t.Fatalf("seed %d step %d: %s spill %d, want %d", seed, step, name, f.spill, want)
		}
		if r, ok := a.reserved[name]; ok {
			carved += r
		} else {
			pool += f.spill
			carved += f.provisionedSum
		}
	}
	if a.pool != pool || a.carved != carved {
		t.Fatalf("seed %d step %d: pool %d carved %d, want %d and %d", seed, step, a.pool, a.carved, pool, carved)
	}
}
