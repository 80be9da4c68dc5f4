//go:build stagetime

package stagetime

import (
	"sync"
	"sync/atomic"
	"time"
)

// Enabled reports whether this build records stages.
const Enabled = true

// One invoke at a time is recorded, between Start and Stop: the bench
// calls them around a concurrency-1 measurement, so the points of one
// invoke are not mixed with another's.
var (
	recording atomic.Bool // on, read without mu so that the other rows' invokes do not queue on it

	mu   sync.Mutex
	on   bool
	cur  [NumPoints]int64
	rows [][NumPoints]int64
)

// Mark records that the invoke in progress passed point p.
func Mark(p int) {
	if !recording.Load() {
		return
	}
	now := time.Now().UnixNano()
	mu.Lock()
	if on {
		cur[p] = now
	}
	mu.Unlock()
}

// End ends the invoke in progress and keeps its points.
func End() {
	mu.Lock()
	if on {
		rows = append(rows, cur)
		cur = [NumPoints]int64{}
	}
	mu.Unlock()
}

// Start begins recording.
func Start() {
	mu.Lock()
	on, rows, cur = true, nil, [NumPoints]int64{}
	recording.Store(true)
	mu.Unlock()
}

// Stop ends recording and returns each invoke's points (Unix
// nanoseconds; 0 where the invoke did not pass a point).
func Stop() [][NumPoints]int64 {
	mu.Lock()
	defer mu.Unlock()
	on = false
	recording.Store(false)
	r := rows
	rows = nil
	return r
}
