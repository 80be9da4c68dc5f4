//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkCreateToReady measures create-to-ready: Start until it returns
// (the program exec'd in a complete sandbox, its listener open), which
// excludes the program's own initialisation. It reports the median and
// p90 and the median of each step (startTrace). Run as root:
//
//	go test -run '^$' -bench CreateToReady -benchtime 200x ./internal/sandbox/
func BenchmarkCreateToReady(b *testing.B) {
	b.Run("pool=0", func(b *testing.B) { benchCreateToReady(b, 0) })
	b.Run("pool=2", func(b *testing.B) { benchCreateToReady(b, 2) })
}

func benchCreateToReady(b *testing.B, pool int) {
	requireRoot(b)
	m, err := NewManager(Config{CgroupParent: fmt.Sprintf("ember-bench-%d", testSeq.Add(1)), InitPool: pool})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	var mu sync.Mutex
	var traces []startTrace
	traceHook = func(t startTrace) {
		mu.Lock()
		traces = append(traces, t)
		mu.Unlock()
	}
	defer func() { traceHook = nil }()
	var total []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out syncBuffer
		spec := helperSpec(fmt.Sprint("bench-", i), &out, "sleep:1h")
		spec.ListenAddr = "127.0.0.1:9001"
		t0 := time.Now()
		s, err := m.Start(context.Background(), spec)
		if err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(t0))
		b.StopTimer()
		if err := s.Destroy(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	pct := func(d []time.Duration, p int) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[(len(d)-1)*p/100]) / 1e6
	}
	b.ReportMetric(pct(total, 50), "ms-median")
	b.ReportMetric(pct(total, 90), "ms-p90")
	step := func(name string, f func(startTrace) time.Duration) {
		var d []time.Duration
		for _, t := range traces {
			d = append(d, f(t))
		}
		b.ReportMetric(pct(d, 50), "ms-"+name)
	}
	step("take", func(t startTrace) time.Duration { return t.take })
	step("send", func(t startTrace) time.Duration { return t.send })
	step("cgroup", func(t startTrace) time.Duration { return t.ids + t.cgroup })
	step("clone", func(t startTrace) time.Duration { return t.clone })
	step("attach", func(t startTrace) time.Duration { return t.attach })
	step("listen", func(t startTrace) time.Duration { return t.listen })
	step("userns", func(t startTrace) time.Duration { return t.userns })
	step("exec", func(t startTrace) time.Duration { return t.exec })
}
