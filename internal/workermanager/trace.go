package workermanager

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// TraceClass is the invocation pattern of a function in a synthetic trace.
type TraceClass uint8

// The classes of a synthetic trace.
const (
	// ClassPeriodic: a timer, every P (1 min to 2 h) with a jitter of ±5% of P.
	ClassPeriodic TraceClass = iota
	// ClassBursty: bursts of 2 to 30 invocations seconds apart, then a quiet
	// spell of 5 min plus an exponential time with a mean of 15 to 90 min.
	ClassBursty
	// ClassRare: a Poisson process with a mean gap of 1 to 8 h.
	ClassRare
	numClasses
)

func (c TraceClass) String() string {
	switch c {
	case ClassPeriodic:
		return "periodic"
	case ClassBursty:
		return "bursty"
	case ClassRare:
		return "rare"
	}
	return fmt.Sprintf("TraceClass(%d)", int(c))
}

// TraceFunction is one function of a trace.
type TraceFunction struct {
	Name  string
	Class TraceClass
	// Mean is the class parameter: the period (Periodic), the mean quiet
	// spell (Bursty) or the mean gap (Rare).
	Mean time.Duration
}

// TraceInvocation is one invocation in a trace.
type TraceInvocation struct {
	Fn       int           // index into Trace.Functions
	At       time.Duration // start, from the trace's start
	Duration time.Duration // how long it runs
}

// Trace is a replayable invocation trace, in order of At.
type Trace struct {
	Start       time.Time
	Length      time.Duration
	Functions   []TraceFunction
	Invocations []TraceInvocation
}

// TraceConfig configures GenerateTrace.
type TraceConfig struct {
	Seed   uint64
	Length time.Duration // default 24 h
	// How many functions of each class.
	Periodic, Bursty, Rare int
}

// DefaultTraceConfig is the trace of the performance notes: 100 functions
// (40 periodic, 30 bursty, 30 rare) over 24 hours.
func DefaultTraceConfig() TraceConfig {
	return TraceConfig{Seed: 1, Length: 24 * time.Hour, Periodic: 40, Bursty: 30, Rare: 30}
}

// tracePeriods are the periodic functions' periods, used in turn.
var tracePeriods = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	17 * time.Minute, 30 * time.Minute, 45 * time.Minute, 60 * time.Minute, 120 * time.Minute,
}

// traceStart is the fixed (arbitrary) wall-clock start of generated traces.
var traceStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// GenerateTrace makes a synthetic trace; the same config always gives the
// same trace. One function's invocations never overlap: each starts after
// the previous one ended.
func GenerateTrace(cfg TraceConfig) *Trace {
	if cfg.Length <= 0 {
		cfg.Length = 24 * time.Hour
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x656d626572)) // "ember"
	t := &Trace{Start: traceStart, Length: cfg.Length}
	uniform := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	exp := func(mean time.Duration) time.Duration {
		return time.Duration(rng.ExpFloat64() * float64(mean))
	}
	// duration: log-normal around 300 ms, from 10 ms to 30 s.
	duration := func() time.Duration {
		d := time.Duration(math.Exp(rng.NormFloat64()) * float64(300*time.Millisecond))
		return min(max(d, 10*time.Millisecond), 30*time.Second)
	}
	add := func(fn int, at time.Duration, prevEnd *time.Duration) {
		at = max(at, *prevEnd+time.Millisecond)
		if at >= cfg.Length {
			return
		}
		d := duration()
		t.Invocations = append(t.Invocations, TraceInvocation{Fn: fn, At: at, Duration: d})
		*prevEnd = at + d
	}
	for i := range cfg.Periodic {
		p := tracePeriods[i%len(tracePeriods)]
		fn := len(t.Functions)
		t.Functions = append(t.Functions, TraceFunction{Name: fmt.Sprintf("periodic-%02d-%s", i, p), Class: ClassPeriodic, Mean: p})
		phase := uniform(0, p)
		var end time.Duration
		for k := time.Duration(0); phase+k*p < cfg.Length; k++ {
			jitter := uniform(-p/20, p/20)
			add(fn, max(phase+k*p+jitter, 0), &end)
		}
	}
	for i := range cfg.Bursty {
		quiet := uniform(15*time.Minute, 90*time.Minute)
		fn := len(t.Functions)
		t.Functions = append(t.Functions, TraceFunction{Name: fmt.Sprintf("bursty-%02d", i), Class: ClassBursty, Mean: quiet})
		var end time.Duration
		for at := exp(quiet); at < cfg.Length; at = end + 5*time.Minute + exp(quiet) {
			n := 2 + rng.IntN(29)
			for range n {
				add(fn, at, &end)
				at = end + exp(15*time.Second)
			}
		}
	}
	for i := range cfg.Rare {
		mean := uniform(time.Hour, 8*time.Hour)
		fn := len(t.Functions)
		t.Functions = append(t.Functions, TraceFunction{Name: fmt.Sprintf("rare-%02d", i), Class: ClassRare, Mean: mean})
		var end time.Duration
		for at := exp(mean); at < cfg.Length; at = end + exp(mean) {
			add(fn, at, &end)
		}
	}
	slices.SortStableFunc(t.Invocations, func(a, b TraceInvocation) int { return cmp.Compare(a.At, b.At) })
	return t
}

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// Name labels the result (default: the policy's Go type).
	Name string
}

// ReplayStats are replay counts for a set of invocations.
type ReplayStats struct {
	Invocations int
	ColdStarts  int // invocations that found no warm sandbox
	// IdleSeconds is warm idle sandbox time: every second a sandbox sat
	// warm with no invocation, pre-warmed ones included.
	IdleSeconds float64
	// Prewarms is how many sandboxes were started ahead of an invocation;
	// WastedPrewarms of them were destroyed unused.
	Prewarms, WastedPrewarms int
}

// ColdFraction is ColdStarts / Invocations.
func (s ReplayStats) ColdFraction() float64 {
	if s.Invocations == 0 {
		return 0
	}
	return float64(s.ColdStarts) / float64(s.Invocations)
}

func (s *ReplayStats) add(o ReplayStats) {
	s.Invocations += o.Invocations
	s.ColdStarts += o.ColdStarts
	s.IdleSeconds += o.IdleSeconds
	s.Prewarms += o.Prewarms
	s.WastedPrewarms += o.WastedPrewarms
}

// ReplayResult is the outcome of a replay.
type ReplayResult struct {
	Name string
	ReplayStats
	ByClass [numClasses]ReplayStats // indexed by TraceClass
	// Overlaps is how many invocations arrived while their function's
	// sandbox was busy (cold starts on a second sandbox, which the model
	// does not keep); 0 for generated traces.
	Overlaps int
}

// Replay runs trace against policy and counts cold starts and warm idle
// sandbox time. It models the Worker Manager with one kept sandbox per
// function, following policy.Released's WarmWindow after every invocation:
//   - Prewarm == 0: the sandbox stays warm from the invocation's end for
//     KeepAlive; an invocation in that time is warm.
//   - Prewarm > 0: the sandbox is destroyed at the end and a new one is warm
//     from end+Prewarm for KeepAlive. An invocation before then is cold and
//     cancels the pending pre-warm (it costs nothing); one within it is
//     warm; a pre-warmed sandbox that expires unused is wasted.
//
// Idle time is counted from when a sandbox is warm until an invocation takes
// it, it expires, or the trace ends. Sandbox creation time (init) is not
// modelled: a pre-warm is ready exactly when asked.
func Replay(trace *Trace, policy Policy, opts ReplayOptions) ReplayResult {
	res := ReplayResult{Name: opts.Name}
	if res.Name == "" {
		res.Name = fmt.Sprintf("%T", policy)
	}
	type sim struct {
		has                 bool // a warm or pending window
		prewarmed           bool
		warmFrom, warmUntil time.Duration
		busyUntil           time.Duration
	}
	sims := make([]sim, len(trace.Functions))
	byFn := make([]ReplayStats, len(trace.Functions))
	// expire closes s's window as unused, up to at most limit.
	expire := func(s *sim, st *ReplayStats, limit time.Duration, final bool) {
		end := min(s.warmUntil, limit)
		if end > s.warmFrom {
			st.IdleSeconds += (end - s.warmFrom).Seconds()
			if s.prewarmed {
				st.Prewarms++
				if !final || s.warmUntil <= limit {
					st.WastedPrewarms++
				}
			}
		}
		s.has = false
	}
	for _, inv := range trace.Invocations {
		fn := trace.Functions[inv.Fn].Name
		s, st := &sims[inv.Fn], &byFn[inv.Fn]
		policy.Observe(fn, trace.Start.Add(inv.At))
		st.Invocations++
		end := inv.At + inv.Duration
		if inv.At < s.busyUntil {
			// The kept sandbox is busy: a second, transient one.
			res.Overlaps++
			st.ColdStarts++
			policy.Released(fn, trace.Start.Add(end))
			continue
		}
		switch {
		case s.has && inv.At >= s.warmFrom && inv.At < s.warmUntil:
			st.IdleSeconds += (inv.At - s.warmFrom).Seconds()
			if s.prewarmed {
				st.Prewarms++
			}
		case s.has && inv.At >= s.warmUntil:
			expire(s, st, s.warmUntil, false)
			st.ColdStarts++
		default: // nothing kept, or a pre-warm not yet ready: cancelled
			st.ColdStarts++
		}
		s.has = false
		s.busyUntil = end
		w := policy.Released(fn, trace.Start.Add(end))
		if w.KeepAlive > 0 {
			s.has, s.prewarmed = true, w.Prewarm > 0
			s.warmFrom = end + w.Prewarm
			s.warmUntil = s.warmFrom + w.KeepAlive
		}
	}
	for i := range sims {
		if sims[i].has {
			expire(&sims[i], &byFn[i], trace.Length, true)
		}
		res.ReplayStats.add(byFn[i])
		res.ByClass[trace.Functions[i].Class].add(byFn[i])
	}
	return res
}

// ResultTable formats results as a Markdown table: overall, then per class.
func ResultTable(rs ...ReplayResult) string {
	var b strings.Builder
	b.WriteString("| policy | invocations | cold starts | cold-start fraction | warm idle sandbox-seconds | (hours) | sandbox starts (cold + pre-warm) | wasted pre-warms |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f%% | %.0f | %.1f | %d | %d |\n", r.Name, r.Invocations, r.ColdStarts,
			100*r.ColdFraction(), r.IdleSeconds, r.IdleSeconds/3600, r.ColdStarts+r.Prewarms, r.WastedPrewarms)
	}
	b.WriteString("\nBy class: cold-start fraction / warm idle sandbox-hours\n\n| policy |")
	for c := range numClasses {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|")
	for range numClasses {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s |", r.Name)
		for _, s := range r.ByClass {
			fmt.Fprintf(&b, " %.2f%% / %.1f h |", 100*s.ColdFraction(), s.IdleSeconds/3600)
		}
		b.WriteString("\n")
	}
	return b.String()
}
