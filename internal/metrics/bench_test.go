package metrics_test

import (
	"testing"
	"time"

	"github.com/emberfn/ember/internal/metrics"
)

// BenchmarkInvoke is what the metrics cost one invoke: started, then done
// with its duration.
func BenchmarkInvoke(b *testing.B) {
	m := metrics.New(metrics.Config{})
	b.ReportAllocs()
	for b.Loop() {
		m.InvokeStarted("111111111111", "f")
		m.InvokeDone("111111111111", "f", metrics.Success, 700*time.Microsecond)
	}
}

// BenchmarkInvokeParallel is the same from every P at once.
func BenchmarkInvokeParallel(b *testing.B) {
	m := metrics.New(metrics.Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.InvokeStarted("111111111111", "f")
			m.InvokeDone("111111111111", "f", metrics.Success, 700*time.Microsecond)
		}
	})
}
