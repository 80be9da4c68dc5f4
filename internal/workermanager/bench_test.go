package workermanager

import (
	"context"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/placement"
)

// BenchmarkWarmAcquireRelease is the Worker Manager's share of a warm
// invoke: hand out the idle sandbox, take it back, with the hybrid policy
// observing both ends.
func BenchmarkWarmAcquireRelease(b *testing.B) {
	w := &fakeWorker{live: map[string]bool{}}
	p := placement.New()
	p.Register(placement.Worker{ID: "w1", MemoryMB: 4096})
	policy, err := NewHybridPolicy(DefaultHybridConfig())
	if err != nil {
		b.Fatal(err)
	}
	m := New(Config{Placement: p, Workers: func(id string) (Worker, bool) { return w, id == "w1" },
		KeepAlive: time.Minute, Policy: policy})
	defer m.Shutdown()
	ctx := context.Background()
	f := fn("f", "r1")
	a, err := m.Acquire(ctx, f)
	if err != nil {
		b.Fatal(err)
	}
	m.Release(a, true)
	b.ReportAllocs()
	for b.Loop() {
		a, err := m.Acquire(ctx, f)
		if err != nil || a.Cold {
			b.Fatalf("acquire: %+v %v", a, err)
		}
		m.Release(a, true)
	}
}
