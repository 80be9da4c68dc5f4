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
	// recording is read without mu first, so that the invokes of other
	// rows (concurrency 8 and 32) do not queue on the lock; mu then
	// guards it with the rest.
	recording atomic.Bool
	base      = time.Now() // points are nanoseconds since, on the monotonic clock

	mu   sync.Mutex
	cur  [NumPoints]int64
	rows [][NumPoints]int64
)

// Mark records that the invoke in progress passed point p.
func Mark(p int) {
	if !recording.Load() {
		return
	}
	now := int64(time.Since(base)) + 1 // 0 is "not passed"
	mu.Lock()
	if recording.Load() {
		cur[p] = now
	}
	mu.Unlock()
}

// End ends the invoke in progress and keeps its points.
func End() {
	if !recording.Load() {
		return
	}
	mu.Lock()
	if recording.Load() {
		rows = append(rows, cur)
		cur = [NumPoints]int64{}
	}
	mu.Unlock()
}

// Start begins recording.
func Start() {
	mu.Lock()
	rows, cur = nil, [NumPoints]int64{}
	recording.Store(true)
	mu.Unlock()
}

// Stop ends recording and returns each invoke's points (nanoseconds
// since the process began, at least 1; 0 where the invoke did not pass a
// point).
func Stop() [][NumPoints]int64 {
	mu.Lock()
	defer mu.Unlock()
	recording.Store(false)
	r := rows
	rows = nil
	return r
}
