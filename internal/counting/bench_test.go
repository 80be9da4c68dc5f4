package counting

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAcquireRelease is the Counting Service's share of an invoke:
// take a slot and give it back.
func BenchmarkAcquireRelease(b *testing.B) {
	s := New(Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		release, err := s.Acquire(ctx, "111111111111", "f", "1", 3*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}

// BenchmarkAcquireReleaseParallel is the same from every P at once, as
// concurrent invokes do.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	s := New(Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := s.Acquire(ctx, "111111111111", "f", "1", 3*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}
