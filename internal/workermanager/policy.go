package workermanager

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Policy decides, after each invocation of a function ends, whether the
// Worker Manager keeps that sandbox warm and for how long, or destroys it at
// once and pre-warms a new one later, shortly before the next invocation is
// likely. Implementations never read the clock: every method takes the time.
// They are safe for concurrent use.
//
// The manager calls Observe when an invocation starts (warm or cold) and
// Released when it ends, and Forget when a function is deleted. Released,
// rather than two separate queries (a keep-alive and a pre-warm delay),
// records the end time (idle times run from an invocation's end to the next
// one's start) and returns both halves of one consistent decision.
type Policy interface {
	// Observe records that an invocation of fn started at start.
	Observe(fn string, start time.Time)
	// Released records that an invocation of fn ended at end and says what
	// to do with its sandbox.
	Released(fn string, end time.Time) WarmWindow
	// Forget drops what the policy knows about fn.
	Forget(fn string)
}

// WarmWindow is a policy's decision for a sandbox whose invocation just ended.
//
// With Prewarm == 0 the sandbox stays warm from the end for KeepAlive. With
// Prewarm > 0 it is destroyed at once and a new sandbox is started so that
// it is warm from end+Prewarm, and stays warm for KeepAlive after that. A
// KeepAlive of 0 destroys the sandbox and pre-warms nothing.
type WarmWindow struct {
	Prewarm   time.Duration
	KeepAlive time.Duration
	Mode      WindowMode // which rule decided; for logs, metrics and tests
}

// WarmFrom is when, relative to the invocation's end, a sandbox is warm.
func (w WarmWindow) WarmFrom() time.Duration { return w.Prewarm }

// WarmUntil is when, relative to the invocation's end, the warm sandbox is
// destroyed unless an invocation takes it.
func (w WarmWindow) WarmUntil() time.Duration { return w.Prewarm + w.KeepAlive }

// WindowMode says which rule of a policy produced a WarmWindow.
type WindowMode uint8

// The rules.
const (
	// ModeFixed is FixedPolicy's fixed keep-alive.
	ModeFixed WindowMode = iota
	// ModeWarmingUp: fewer idle times than HybridConfig.MinSamples are
	// known; the fallback keep-alive applies.
	ModeWarmingUp
	// ModeUncertain: the histogram is spread out (the coefficient of
	// variation of its bin counts is below HybridConfig.CVThreshold), so it
	// predicts nothing; the fallback keep-alive applies.
	ModeUncertain
	// ModeHistogram: pre-warm at the head percentile of the idle-time
	// histogram, keep warm until its tail percentile.
	ModeHistogram
	// ModeOutOfBounds: most idle times exceed the histogram's range; the
	// window is centred on a prediction from the recent idle times.
	ModeOutOfBounds
)

func (m WindowMode) String() string {
	switch m {
	case ModeFixed:
		return "fixed"
	case ModeWarmingUp:
		return "warming-up"
	case ModeUncertain:
		return "uncertain"
	case ModeHistogram:
		return "histogram"
	case ModeOutOfBounds:
		return "out-of-bounds"
	}
	return fmt.Sprintf("WindowMode(%d)", int(m))
}

// FixedPolicy keeps every released sandbox warm for KeepAlive and never
// pre-warms: Lambda's (and Ember's default) behaviour.
type FixedPolicy struct {
	KeepAlive time.Duration
}

// Observe does nothing: a fixed keep-alive learns nothing.
func (FixedPolicy) Observe(string, time.Time) {}

// Released returns the fixed keep-alive.
func (p FixedPolicy) Released(string, time.Time) WarmWindow {
	return WarmWindow{KeepAlive: p.KeepAlive, Mode: ModeFixed}
}

// Forget does nothing.
func (FixedPolicy) Forget(string) {}

// HybridConfig configures a HybridPolicy. Zero fields take the defaults
// (so a margin or threshold of exactly 0 cannot be asked for), which are
// the paper's except Fallback, MinSamples, MaxSamples and MaxFunctions.
type HybridConfig struct {
	// BinWidth is the width of a histogram bin (default 1 min).
	BinWidth time.Duration
	// Range is the largest idle time the histogram holds (default 4 h);
	// longer ones are out of bounds.
	Range time.Duration
	// Head and Tail are the percentiles of the idle-time histogram where
	// the warm window starts and ends (defaults 0.05 and 0.99).
	Head, Tail float64
	// Margin widens the histogram window: it starts at head*(1-Margin) and
	// ends at tail*(1+Margin) (default 0.10).
	Margin float64
	// CVThreshold: a histogram whose bin counts have a coefficient of
	// variation below it is spread out, not representative (default 2).
	CVThreshold float64
	// MinSamples is how many idle times must be known before the histogram
	// is used at all (default 10; the paper has no such floor).
	MinSamples int
	// OOBThreshold is the share of out-of-bounds idle times from which the
	// policy predicts from recent idle times instead (default 0.5).
	OOBThreshold float64
	// OOBMargin: an out-of-bounds window runs from p*(1-OOBMargin) to
	// p*(1+OOBMargin) around the prediction p (default 0.15).
	OOBMargin float64
	// Fallback is the keep-alive when the histogram says nothing: warming
	// up, or not representative (default 10 min, Lambda's fixed
	// keep-alive; the paper uses Range here, which is far costlier in idle
	// sandbox time for rarely invoked functions).
	Fallback time.Duration
	// MaxSamples ages the histogram: when it holds this many idle times
	// every count is halved, so old behaviour fades (default 1000; at
	// least 2*MinSamples).
	MaxSamples int
	// MaxFunctions bounds how many functions are tracked; the least
	// recently invoked is forgotten first (default 10,000).
	MaxFunctions int
}

// hybridRecentGaps is how many of the latest idle times a function keeps
// for the out-of-bounds prediction.
const hybridRecentGaps = 8

// hybridMaxBins bounds Range/BinWidth, so per-function memory stays small.
const hybridMaxBins = 4096

// DefaultHybridConfig is HybridConfig with every default filled in.
func DefaultHybridConfig() HybridConfig {
	return HybridConfig{
		BinWidth: time.Minute, Range: 4 * time.Hour,
		Head: 0.05, Tail: 0.99, Margin: 0.10, CVThreshold: 2,
		MinSamples: 10, OOBThreshold: 0.5, OOBMargin: 0.15,
		Fallback: 10 * time.Minute, MaxSamples: 1000, MaxFunctions: 10000,
	}
}

func (c *HybridConfig) fill() error {
	d := DefaultHybridConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setI := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.BinWidth, d.BinWidth)
	setDur(&c.Range, d.Range)
	setF(&c.Head, d.Head)
	setF(&c.Tail, d.Tail)
	setF(&c.Margin, d.Margin)
	setF(&c.CVThreshold, d.CVThreshold)
	setI(&c.MinSamples, d.MinSamples)
	setF(&c.OOBThreshold, d.OOBThreshold)
	setF(&c.OOBMargin, d.OOBMargin)
	setDur(&c.Fallback, d.Fallback)
	setI(&c.MaxSamples, d.MaxSamples)
	setI(&c.MaxFunctions, d.MaxFunctions)
	switch {
	case c.BinWidth < 0 || c.Range < c.BinWidth:
		return errors.New("BinWidth must be positive and at most Range")
	case c.Range/c.BinWidth > hybridMaxBins:
		return fmt.Errorf("Range/BinWidth must be at most %d bins", hybridMaxBins)
	case !(c.Head > 0 && c.Head < c.Tail && c.Tail <= 1):
		return errors.New("need 0 < Head < Tail <= 1")
	case c.Margin < 0 || c.Margin >= 1 || c.OOBMargin < 0 || c.OOBMargin >= 1:
		return errors.New("margins must be in [0, 1)")
	case c.CVThreshold < 0 || c.OOBThreshold < 0 || c.OOBThreshold > 1:
		return errors.New("need CVThreshold >= 0 and 0 <= OOBThreshold <= 1")
	case c.Fallback < 0 || c.MinSamples < 1 || c.MaxFunctions < 1:
		return errors.New("need Fallback >= 0, MinSamples >= 1, MaxFunctions >= 1")
	case c.MaxSamples < 2*c.MinSamples:
		return errors.New("MaxSamples must be at least 2*MinSamples")
	}
	return nil
}

// HybridPolicy is the hybrid histogram policy of Shahrad et al., "Serverless
// in the Wild" (USENIX ATC 2020), per function:
//
//   - It keeps a histogram of idle times (from an invocation's end to the
//     next start) in BinWidth bins up to Range.
//   - Representative histogram: pre-warm at the Head percentile less
//     Margin and keep warm until the Tail percentile plus Margin. A head in
//     the first bin means no pre-warm: the sandbox stays warm from the end.
//   - Not representative (bin counts' coefficient of variation below
//     CVThreshold: the idle times are spread out) or too few samples:
//     the Fallback keep-alive, no pre-warm.
//   - Mostly out of bounds (a share of at least OOBThreshold beyond Range):
//     the paper forecasts the next idle time with ARIMA; this uses the
//     median of the last 8 idle times instead (robust to one outlier, exact
//     for a steady period longer than Range, cheap and allocation free),
//     and keeps warm within OOBMargin of it.
//
// Memory is bounded: a function costs one fixed histogram (Range/BinWidth
// float32 counts, 960 bytes at the defaults) plus a few words; counts are
// halved at MaxSamples; at most MaxFunctions functions are tracked, the
// least recently invoked forgotten first.
type HybridPolicy struct {
	cfg   HybridConfig
	nbins int

	mu        sync.Mutex
	fns       map[string]*list.Element // of *fnHistory
	lru       list.List                // most recently used first
	evictions uint64
}

// fnHistory is what HybridPolicy knows about one function.
type fnHistory struct {
	name      string
	bins      []float32 // idle-time counts; len nbins
	inBounds  float64   // sum of bins
	oob       float64   // idle times beyond Range (aged like the bins)
	samples   int       // idle times ever recorded (not aged), for MinSamples
	recent    [hybridRecentGaps]time.Duration
	nRecent   int
	next      int // ring index into recent
	lastStart time.Time
	lastEnd   time.Time
	cached    WarmWindow // valid while !dirty
	dirty     bool
}

// NewHybridPolicy makes a hybrid histogram policy; zero fields of cfg take
// their defaults.
func NewHybridPolicy(cfg HybridConfig) (*HybridPolicy, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("workermanager: hybrid policy: %w", err)
	}
	return &HybridPolicy{cfg: cfg, nbins: int(cfg.Range / cfg.BinWidth), fns: map[string]*list.Element{}}, nil
}

// Config is the policy's configuration with defaults filled in.
func (p *HybridPolicy) Config() HybridConfig { return p.cfg }

// Observe records the start of an invocation of fn. If fn was idle (every
// earlier invocation had ended), the idle time since the last end is one
// sample of its histogram; a start that overlaps a running invocation adds
// none, since the function was not idle.
func (p *HybridPolicy) Observe(fn string, start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.touch(fn)
	if !h.lastEnd.IsZero() && !h.lastStart.After(h.lastEnd) {
		p.record(h, max(start.Sub(h.lastEnd), 0))
	}
	if start.After(h.lastStart) {
		h.lastStart = start
	}
}

// Released records the end of an invocation of fn and returns the window
// for its sandbox.
func (p *HybridPolicy) Released(fn string, end time.Time) WarmWindow {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.touch(fn)
	if end.After(h.lastEnd) {
		h.lastEnd = end
	}
	if h.dirty {
		h.cached = p.window(h)
		h.dirty = false
	}
	return h.cached
}

// Forget drops fn's history.
func (p *HybridPolicy) Forget(fn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.fns[fn]; ok {
		p.lru.Remove(e)
		delete(p.fns, fn)
	}
}

// Len is how many functions the policy tracks.
func (p *HybridPolicy) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.fns)
}

// Evictions is how many functions were forgotten to stay within
// MaxFunctions.
func (p *HybridPolicy) Evictions() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.evictions
}

// touch finds or makes fn's history and marks it most recently used,
// evicting the least recently used beyond MaxFunctions (its histogram
// buffer is reused). Called with mu held.
func (p *HybridPolicy) touch(fn string) *fnHistory {
	if e, ok := p.fns[fn]; ok {
		p.lru.MoveToFront(e)
		return e.Value.(*fnHistory)
	}
	var h *fnHistory
	if len(p.fns) >= p.cfg.MaxFunctions {
		e := p.lru.Back()
		old := p.lru.Remove(e).(*fnHistory)
		delete(p.fns, old.name)
		p.evictions++
		clear(old.bins)
		*old = fnHistory{bins: old.bins}
		h = old
	} else {
		h = &fnHistory{bins: make([]float32, p.nbins)}
	}
	h.name = fn
	h.dirty = true
	p.fns[fn] = p.lru.PushFront(h)
	return h
}

// record adds one idle time to h. Called with mu held.
func (p *HybridPolicy) record(h *fnHistory, gap time.Duration) {
	h.recent[h.next] = gap
	h.next = (h.next + 1) % hybridRecentGaps
	h.nRecent = min(h.nRecent+1, hybridRecentGaps)
	h.samples++
	if gap < p.cfg.Range {
		h.bins[int(gap/p.cfg.BinWidth)]++
		h.inBounds++
	} else {
		h.oob++
	}
	if h.inBounds+h.oob >= float64(p.cfg.MaxSamples) {
		for i := range h.bins {
			h.bins[i] /= 2
		}
		h.inBounds /= 2
		h.oob /= 2
	}
	h.dirty = true
}

// window computes h's decision. Called with mu held.
func (p *HybridPolicy) window(h *fnHistory) WarmWindow {
	c := &p.cfg
	if h.samples < c.MinSamples {
		return WarmWindow{KeepAlive: c.Fallback, Mode: ModeWarmingUp}
	}
	if h.oob >= c.OOBThreshold*(h.oob+h.inBounds) {
		pred := h.median()
		return WarmWindow{
			Prewarm:   scaleDur(pred, 1-c.OOBMargin),
			KeepAlive: scaleDur(pred, 2*c.OOBMargin),
			Mode:      ModeOutOfBounds,
		}
	}
	if p.binCV(h) < c.CVThreshold {
		return WarmWindow{KeepAlive: c.Fallback, Mode: ModeUncertain}
	}
	head := p.percentileBin(h, c.Head)
	tail := p.percentileBin(h, c.Tail)
	pre := scaleDur(time.Duration(head)*c.BinWidth, 1-c.Margin)
	until := scaleDur(time.Duration(tail+1)*c.BinWidth, 1+c.Margin)
	return WarmWindow{Prewarm: pre, KeepAlive: until - pre, Mode: ModeHistogram}
}

// binCV is the coefficient of variation of h's bin counts: high when the
// idle times fall in few bins, near 0 when they are spread evenly.
func (p *HybridPolicy) binCV(h *fnHistory) float64 {
	n := float64(len(h.bins))
	mean := h.inBounds / n
	if mean == 0 {
		return 0
	}
	var ss float64
	for _, c := range h.bins {
		d := float64(c) - mean
		ss += d * d
	}
	return math.Sqrt(ss/(n-1)) / mean
}

// percentileBin is the first bin at which the cumulative count reaches q of
// the in-bounds idle times.
func (p *HybridPolicy) percentileBin(h *fnHistory, q float64) int {
	want := q * h.inBounds
	var cum float64
	for i, c := range h.bins {
		cum += float64(c)
		if cum >= want && c > 0 {
			return i
		}
	}
	return len(h.bins) - 1
}

// median is the median of h's recent idle times (the upper one of an even
// count).
func (h *fnHistory) median() time.Duration {
	var buf [hybridRecentGaps]time.Duration
	s := buf[:h.nRecent]
	copy(s, h.recent[:h.nRecent])
	slices.Sort(s)
	return s[len(s)/2]
}

func scaleDur(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * f)
}
