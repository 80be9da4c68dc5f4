package workermanager

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var policyEpoch = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// runOnce runs one invocation of fn through p, starting at start and lasting
// dur, and returns the window for its sandbox.
func runOnce(p Policy, fn string, start time.Time, dur time.Duration) WarmWindow {
	p.Observe(fn, start)
	return p.Released(fn, start.Add(dur))
}

func newHybrid(t *testing.T, cfg HybridConfig) *HybridPolicy {
	t.Helper()
	p, err := NewHybridPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hybridHistory(p *HybridPolicy, fn string) *fnHistory {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.fns[fn]; ok {
		return e.Value.(*fnHistory)
	}
	return nil
}

// covers reports whether an invocation gap after an end falls in w.
func windowCovers(w WarmWindow, gap time.Duration) bool {
	return w.KeepAlive > 0 && gap >= w.WarmFrom() && gap < w.WarmUntil()
}

func TestFixedPolicy(t *testing.T) {
	p := FixedPolicy{KeepAlive: 10 * time.Minute}
	for i := range 5 {
		w := runOnce(p, "f", policyEpoch.Add(time.Duration(i)*time.Hour), time.Second)
		if w != (WarmWindow{KeepAlive: 10 * time.Minute, Mode: ModeFixed}) {
			t.Fatalf("window %d = %+v", i, w)
		}
	}
}

// A strictly periodic function gets a pre-warm just before its period and a
// short keep-alive, once MinSamples idle times are known.
func TestHybridPeriodicPrewarms(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	const period, dur = 5 * time.Minute, time.Second
	gap := period - dur // idle time between invocations: bin 4
	for i := range 30 {
		w := runOnce(p, "cron", policyEpoch.Add(time.Duration(i)*period), dur)
		if i < 10 { // i idle times known after invocation i
			if w.Mode != ModeWarmingUp || w.Prewarm != 0 || w.KeepAlive != 10*time.Minute {
				t.Fatalf("invocation %d: window %+v, want the fallback while warming up", i, w)
			}
			continue
		}
		want := WarmWindow{Prewarm: 216 * time.Second, KeepAlive: 330*time.Second - 216*time.Second, Mode: ModeHistogram}
		if w != want {
			t.Fatalf("invocation %d: window %+v, want %+v (pre-warm at 0.9*4 min, warm until 1.1*5 min)", i, w, want)
		}
		if !windowCovers(w, gap) {
			t.Fatalf("window %+v does not cover the next invocation %v after the end", w, gap)
		}
	}
}

// Replayed, a periodic function whose period exceeds the fallback keep-alive
// is cold only while the policy warms up, and idles far less than under a
// fixed keep-alive long enough to keep it warm.
func TestHybridPeriodicNoColdStartsAfterWarmUp(t *testing.T) {
	const period = 17 * time.Minute
	tr := &Trace{Start: policyEpoch, Length: 24 * time.Hour, Functions: []TraceFunction{{Name: "cron17", Class: ClassPeriodic, Mean: period}}}
	for at := time.Duration(0); at < tr.Length; at += period {
		tr.Invocations = append(tr.Invocations, TraceInvocation{At: at, Duration: 2 * time.Second})
	}
	h := Replay(tr, newHybrid(t, HybridConfig{}), ReplayOptions{})
	// Invocations 0..10 are cold (the first, then 10 gaps of 17 min under a
	// 10-min fallback); the 11th's release has 10 idle times: warm after.
	if h.ColdStarts != 11 {
		t.Fatalf("hybrid: %d cold starts of %d, want 11 (warm-up only)", h.ColdStarts, h.Invocations)
	}
	if h.WastedPrewarms != 0 || h.Prewarms != h.Invocations-11 {
		t.Fatalf("hybrid: %d pre-warms (%d wasted), want %d, none wasted", h.Prewarms, h.WastedPrewarms, h.Invocations-11)
	}
	f := Replay(tr, FixedPolicy{KeepAlive: 20 * time.Minute}, ReplayOptions{})
	if f.ColdStarts != 1 {
		t.Fatalf("fixed 20 min: %d cold starts, want 1", f.ColdStarts)
	}
	if h.IdleSeconds > f.IdleSeconds/3 {
		t.Fatalf("hybrid idles %.0f s, fixed 20 min %.0f s: want under a third", h.IdleSeconds, f.IdleSeconds)
	}
}

// A rarely invoked function with spread-out (exponential) idle times has an
// unrepresentative histogram and gets the fallback keep-alive.
func TestHybridRareFallsBack(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	rng := rand.New(rand.NewPCG(7, 7))
	at := policyEpoch
	var w WarmWindow
	for range 300 {
		w = runOnce(p, "rare", at, time.Second)
		at = at.Add(time.Second + time.Duration(rng.ExpFloat64()*float64(2*time.Hour)))
	}
	if w != (WarmWindow{KeepAlive: 10 * time.Minute, Mode: ModeUncertain}) {
		t.Fatalf("window %+v, want the 10-min fallback (uncertain)", w)
	}
	h := hybridHistory(p, "rare")
	if cv := p.binCV(h); cv >= 2 {
		t.Fatalf("bin-count CV %.2f, want < 2", cv)
	}
}

// Idle times mostly beyond the range (every 6 h) are predicted from the
// recent ones: warm from 0.85 to 1.15 of the period.
func TestHybridOutOfBounds(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	const period, dur = 6 * time.Hour, time.Second
	var w WarmWindow
	for i := range 12 {
		w = runOnce(p, "six-hourly", policyEpoch.Add(time.Duration(i)*period), dur)
	}
	if w.Mode != ModeOutOfBounds {
		t.Fatalf("mode %v, want out-of-bounds", w.Mode)
	}
	gap := period - dur // every idle time, so their median
	if w.Prewarm != scaleDur(gap, 0.85) || w.KeepAlive != scaleDur(gap, 0.30) {
		t.Fatalf("window %+v, want pre-warm 0.85*%v, keep-alive 0.30*%v", w, gap, gap)
	}
	for _, next := range []time.Duration{gap - time.Minute, gap, gap + time.Minute} {
		if !windowCovers(w, next) {
			t.Fatalf("window %+v misses a gap of %v", w, next)
		}
	}
}

// A bursty function (bursts seconds apart, then an hour of quiet) has its
// head in the first bin: no pre-warm, and a keep-alive out to the tail,
// which covers the quiet spell. This is the paper's trade-off: no cold
// start per burst, at the price of idling through the quiet.
func TestHybridBursty(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	at := policyEpoch
	var w WarmWindow
	for range 10 {
		for range 20 {
			w = runOnce(p, "bursty", at, time.Second)
			at = at.Add(10 * time.Second)
		}
		at = at.Add(time.Hour)
	}
	if w.Mode != ModeHistogram || w.Prewarm != 0 {
		t.Fatalf("window %+v, want histogram with no pre-warm", w)
	}
	if quiet := time.Hour + 9*time.Second; !windowCovers(w, quiet) {
		t.Fatalf("window %+v does not cover the quiet spell of %v", w, quiet)
	}
}

// A start while another invocation runs is not an idle time.
func TestHybridOverlapIsNotIdle(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	at := func(d time.Duration) time.Time { return policyEpoch.Add(d) }
	runOnce(p, "f", at(0), time.Second)
	p.Observe("f", at(60*time.Second))               // idle 59 s: a sample
	p.Observe("f", at(61*time.Second))               // the first still runs: none
	p.Released("f", at(62*time.Second))              // the first ends
	p.Released("f", at(63*time.Second))              // the second ends
	runOnce(p, "f", at(93*time.Second), time.Second) // idle 30 s: a sample
	if h := hybridHistory(p, "f"); h.samples != 2 || h.bins[0] != 2 {
		t.Fatalf("samples %d, bin 0 = %v; want 2 and 2", h.samples, h.bins[0])
	}
}

// At most MaxFunctions are tracked; the least recently invoked goes first
// and starts over when it returns.
func TestHybridBoundedFunctions(t *testing.T) {
	p := newHybrid(t, HybridConfig{MaxFunctions: 16})
	for i := range 11 { // "keep" learns a 5-min period
		runOnce(p, "keep", policyEpoch.Add(time.Duration(i)*5*time.Minute), time.Second)
	}
	for i := range 1000 {
		at := policyEpoch.Add(time.Hour + time.Duration(i)*time.Second)
		runOnce(p, fmt.Sprintf("fn-%d", i), at, time.Second)
		if i%10 == 0 { // keep "keep" recently used
			p.Observe("keep", at)
		}
	}
	if n, ev := p.Len(), p.Evictions(); n != 16 || ev != 1001-16 {
		t.Fatalf("tracking %d functions after %d evictions, want 16 and %d", n, ev, 1001-16)
	}
	if hybridHistory(p, "keep") == nil || hybridHistory(p, "fn-999") == nil || hybridHistory(p, "fn-0") != nil {
		t.Fatal("eviction is not least recently used first")
	}
	if h := hybridHistory(p, "keep"); h.samples < 10 {
		t.Fatalf("keep lost its history: %d samples", h.samples)
	}
	w := runOnce(p, "fn-0", policyEpoch.Add(2*time.Hour), time.Second)
	if w.Mode != ModeWarmingUp {
		t.Fatalf("a forgotten function returns in mode %v, want warming-up", w.Mode)
	}
	p.Forget("fn-0")
	if hybridHistory(p, "fn-0") != nil || p.Len() != 15 {
		t.Fatal("Forget kept the function")
	}
	p.mu.Lock()
	for _, e := range p.fns {
		if h := e.Value.(*fnHistory); len(h.bins) != 240 {
			t.Errorf("%s has %d bins, want 240", h.name, len(h.bins))
		}
	}
	p.mu.Unlock()
}

// A tracked function's state does not grow with its invocations: observing
// and releasing allocate nothing.
func TestHybridSteadyStateAllocatesNothing(t *testing.T) {
	p := newHybrid(t, HybridConfig{})
	at := policyEpoch
	allocs := testing.AllocsPerRun(1000, func() {
		runOnce(p, "f", at, time.Second)
		at = at.Add(time.Duration(1+at.Unix()%7) * time.Minute)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per invocation, want 0", allocs)
	}
}

// Counts are halved at MaxSamples, so a function that changes its period is
// relearnt.
func TestHybridAgesHistory(t *testing.T) {
	p := newHybrid(t, HybridConfig{MaxSamples: 40})
	at := policyEpoch
	for range 200 {
		runOnce(p, "f", at, time.Second)
		at = at.Add(5 * time.Minute)
	}
	var w WarmWindow
	for range 200 {
		w = runOnce(p, "f", at, time.Second)
		at = at.Add(17 * time.Minute)
	}
	if h := hybridHistory(p, "f"); h.inBounds+h.oob >= 40 {
		t.Fatalf("histogram holds %.1f idle times, want < 40", h.inBounds+h.oob)
	}
	if want := scaleDur(16*time.Minute, 0.9); w.Prewarm != want || !windowCovers(w, 17*time.Minute-time.Second) {
		t.Fatalf("after the change: window %+v, want pre-warm %v covering 17 min", w, want)
	}
}

func TestNewHybridPolicyRejectsBadConfig(t *testing.T) {
	for _, cfg := range []HybridConfig{
		{Head: 0.5, Tail: 0.4},
		{BinWidth: time.Second, Range: 24 * time.Hour}, // 86,400 bins
		{BinWidth: time.Hour, Range: time.Minute},
		{Margin: 1},
		{MinSamples: 100, MaxSamples: 150},
		{OOBThreshold: 2},
	} {
		if _, err := NewHybridPolicy(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if got := newHybrid(t, HybridConfig{}).Config(); got != DefaultHybridConfig() {
		t.Fatalf("defaults %+v, want %+v", got, DefaultHybridConfig())
	}
}

// The policy is safe for concurrent use (run with -race).
func TestHybridConcurrentUse(t *testing.T) {
	p := newHybrid(t, HybridConfig{MaxFunctions: 8})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				fn := fmt.Sprintf("f%d", (g+i)%12)
				runOnce(p, fn, policyEpoch.Add(time.Duration(i)*time.Minute), time.Second)
				if i%100 == 0 {
					p.Forget(fn)
				}
			}
		})
	}
	wg.Wait()
	if p.Len() > 8 {
		t.Fatalf("tracking %d functions, want at most 8", p.Len())
	}
}
