package async

import (
	"context"
	"sync"
	"time"
)

// How many events a node's pollers invoke at once.
//
// More events in flight than the host can run at once only queue for its
// CPUs: measured on 2 CPUs with the bench's echo function, 64 at once
// processed 1,250 events a second and 8 at once 1,700, and left the
// accept path less CPU. But a function that waits (on I/O, a sleep) needs
// as many in flight as its rate times its duration. So the limit adapts
// as TCP Vegas does: each invocation's duration is compared with the
// least seen lately for its function (its inflation), and from the mean
// inflation of a window of invocations the limit's excess is estimated as
// limit × (1 − 1/inflation): below vegasAlpha the limit grows by a
// quarter (if the window used it), above vegasBeta it shrinks by half of
// the excess over vegasBeta, between it holds. A
// function whose invocations do not slow down as more run at once (a
// sleep) takes the limit up to Config.Concurrency; CPU-bound ones keep it
// a few above what the CPUs run at once. The least duration is learnt
// at a low concurrency: when a period of minPeriod ends, the limit drops
// to limitMin (as BBR probes a path's round trip) until probeTime after
// the invocations in flight are down to it, or probeMax at most (long
// invocations never drain in time), then comes back; a timer ends the
// probe when nothing else happens.
const (
	limitMin     = 2
	limitStart   = 8
	vegasAlpha   = 3
	vegasBeta    = 6
	limitWindow  = 100 * time.Millisecond // at least, and limitSamples
	limitSamples = 8
	// The least duration of each function is the least of the current
	// and the previous period: it forgets in one to two periods.
	minPeriod = 30 * time.Second
	probeTime = 200 * time.Millisecond
	probeMax  = time.Second
)

// limiter is a semaphore whose size adapts (see above).
type limiter struct {
	max float64
	now func() time.Time

	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []chan struct{}

	winStart time.Time
	winN     int
	winSum   float64 // of the inflations
	winPeak  int     // the most in flight

	cur, prev map[string]time.Duration // least duration by function
	period    time.Time
	// A probe: probing, until probeEnd (zero until the invocations in
	// flight drained to the probe's limit), at most until probeMaxEnd;
	// saved is the limit to come back to.
	probing     bool
	probeEnd    time.Time
	probeMaxEnd time.Time
	saved       float64
	// after runs f after d (time.AfterFunc; tests replace it).
	after func(d time.Duration, f func())
}

func newLimiter(max int, now func() time.Time) *limiter {
	l := &limiter{max: float64(max), now: now, limit: min(limitStart, float64(max)),
		cur: map[string]time.Duration{}, prev: map[string]time.Duration{},
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
	l.winStart, l.period = now(), now()
	return l
}

// Limit returns the current limit.
func (l *limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// Pollers returns how many events the pollers may invoke at once now
// (the adaptive limit) and how many places are taken.
func (q *Queue) Pollers() (limit, running int) {
	l := q.limit
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit), l.inflight
}

// acquire takes a place, waiting for one; false if ctx ended first.
func (l *limiter) acquire(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	l.mu.Lock()
	l.tickLocked(l.now())
	if l.inflight < int(l.limit) && len(l.waiters) == 0 {
		l.inflight++
		l.winPeak = max(l.winPeak, l.inflight)
		l.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		if ctx.Err() == nil {
			return true
		}
		l.release() // granted as ctx ended: give it back
		return false
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return false
			}
		}
		// Granted meanwhile: give it back.
		l.inflight--
		l.wakeLocked()
		return false
	}
}

// free returns how many places are free now.
func (l *limiter) free() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickLocked(l.now())
	return max(int(l.limit)-l.inflight-len(l.waiters), 0)
}

// release gives a place back.
func (l *limiter) release() {
	l.mu.Lock()
	l.inflight--
	l.tickLocked(l.now())
	l.wakeLocked()
	l.mu.Unlock()
}

func (l *limiter) wakeLocked() {
	for len(l.waiters) > 0 && l.inflight < int(l.limit) {
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
		l.inflight++
		l.winPeak = max(l.winPeak, l.inflight)
	}
}

// observe records how long an invocation of fn took.
func (l *limiter) observe(fn string, d time.Duration) {
	if d <= 0 {
		d = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.tickLocked(now)
	least := d
	if m, ok := l.cur[fn]; !ok || d < m {
		l.cur[fn] = d
	} else {
		least = m
	}
	if m, ok := l.prev[fn]; ok && m < least {
		least = m
	}
	if l.probing {
		return
	}
	l.winN++
	l.winSum += float64(d) / float64(least)
	if l.winN < limitSamples || now.Sub(l.winStart) < limitWindow {
		return
	}
	inflation := l.winSum / float64(l.winN)
	used := l.winPeak >= int(l.limit)-1
	l.winN, l.winSum, l.winStart, l.winPeak = 0, 0, now, l.inflight
	excess := l.limit * (1 - 1/inflation)
	switch {
	case excess < vegasAlpha && used:
		l.limit = min(l.max, l.limit+max(1, l.limit/4))
	case excess > vegasBeta:
		l.limit = max(min(limitMin, l.max), l.limit-max(1, (excess-vegasBeta)/2))
	}
	l.wakeLocked()
}

// tickLocked moves a probe on (its measuring starts once the invocations
// in flight drained to its limit; it ends probeTime later, or at
// probeMaxEnd), and starts one (with a new period of least durations)
// when the period is over.
func (l *limiter) tickLocked(now time.Time) {
	if l.probing {
		if l.probeEnd.IsZero() && l.inflight <= int(l.limit) {
			l.probeEnd = now.Add(probeTime)
			l.after(probeTime, l.tick)
		}
		if !now.Before(l.probeMaxEnd) || !l.probeEnd.IsZero() && !now.Before(l.probeEnd) {
			l.limit, l.probing = l.saved, false
			l.winN, l.winSum, l.winStart, l.winPeak = 0, 0, now, l.inflight
			l.wakeLocked()
		}
	}
	if now.Sub(l.period) >= minPeriod {
		l.prev, l.cur, l.period = l.cur, map[string]time.Duration{}, now
		if lower := min(limitMin, l.max); !l.probing && l.limit > lower {
			l.saved, l.limit, l.probing = l.limit, lower, true
			l.probeEnd, l.probeMaxEnd = time.Time{}, now.Add(probeMax)
			l.after(probeMax, l.tick)
			if l.inflight <= int(l.limit) {
				l.probeEnd = now.Add(probeTime)
				l.after(probeTime, l.tick)
			}
		}
	}
}

// tick is tickLocked from a timer: a probe ends even when no place is
// taken or given back meanwhile.
func (l *limiter) tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickLocked(l.now())
}
