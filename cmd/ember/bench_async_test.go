package main

import (
	"context"
	"testing"
)

// benchAsync works end to end on a small run: every event accepted and
// run, the figures filled in (not their values: benchmarks are programs).
func TestBenchAsyncQuick(t *testing.T) {
	srv := startEmber(t, t.TempDir())
	res, err := benchAsync(context.Background(), srv.url, srv.creds("default"), probe(t), asyncBenchConfig{Events: 20, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 20 || res.AcceptedPerSecond <= 0 || res.ProcessedPerSecond <= 0 || res.AcceptP50 <= 0 ||
		res.AcceptP99 < res.AcceptP50 || res.ProcessWall < res.AcceptWall/2 || res.Sandboxes < 1 {
		t.Fatalf("result %+v", res)
	}
	t.Logf("%+v", res)
}
