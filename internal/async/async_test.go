package async

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/natsd"
)

func openTest(t *testing.T, dir string, cfg Config) (*Queue, func()) {
	t.Helper()
	ns, err := natsd.Start(natsd.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q, func() { nc.Close(); ns.Shutdown() }
}

// fakeInvoker answers per request id with a script of outcomes.
type fakeInvoker struct {
	mu      sync.Mutex
	calls   map[string]int
	answer  func(id string, n int) (*invoke.Result, error)
	running atomic.Int32
	peak    atomic.Int32
}

func (f *fakeInvoker) InvokeAsync(ctx context.Context, account, name, qualifier string, payload []byte, id, _ string) (*invoke.Result, string, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.mu.Lock()
	f.calls[id]++
	c := f.calls[id]
	f.mu.Unlock()
	res, err := f.answer(id, c)
	return res, "$LATEST", err
}

func (f *fakeInvoker) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func run(t *testing.T, q *Queue, inv Invoker) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx, inv) }()
	return func() { cancel(); <-done }
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var throttle = lambdaapi.Errorf(lambdaapi.TooManyRequests, "Rate exceeded")

// outcomesInvoker answers by request id: "throttled" is throttled twice,
// "platform" fails once on the platform, "failing" always returns a
// function error, "gone" is a function that no longer exists; the rest
// succeed.
func outcomesInvoker() *fakeInvoker {
	return &fakeInvoker{calls: map[string]int{}, answer: func(id string, n int) (*invoke.Result, error) {
		switch id {
		case "throttled":
			if n <= 2 {
				return nil, throttle
			}
		case "platform":
			if n == 1 {
				return nil, fmt.Errorf("worker unreachable")
			}
		case "failing":
			return &invoke.Result{FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"no"}`)}, nil
		case "gone":
			return nil, lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found")
		}
		return &invoke.Result{Payload: []byte(`"ok"`)}, nil
	}}
}

func TestThrottlesFunctionErrorsAndDrops(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01})
	defer stop()
	inv := outcomesInvoker()
	ctx := context.Background()
	for _, id := range []string{"throttled", "platform", "failing", "gone", "fine"} {
		if err := q.Enqueue(ctx, "123456789012", "fn", "", []byte(`{}`), id, ""); err != nil {
			t.Fatal(err)
		}
	}
	// A publish retried with the same request id is stored once.
	if err := q.Enqueue(ctx, "123456789012", "fn", "", []byte(`{}`), "fine", ""); err != nil {
		t.Fatal(err)
	}
	defer run(t, q, inv)()
	waitUntil(t, "every outcome", func() bool {
		s := q.Stats()
		return s.Succeeded == 3 && s.Dropped == 1 && s.Gone == 1
	})
	s := q.Stats()
	if inv.count("throttled") != 3 || inv.count("platform") != 2 || inv.count("failing") != 3 || inv.count("fine") != 1 {
		t.Fatalf("calls %v", inv.calls)
	}
	if s.Throttled != 2 || s.Retries != 2 || s.FunctionErrors != 3 {
		t.Fatalf("stats %+v", s)
	}
	waitUntil(t, "an empty queue", func() bool { n, _, _ := q.Depth(ctx); return n == 0 })
}

// An event whose invocation was interrupted by a shutdown runs after the
// next start.
func TestInterruptedEventIsRedelivered(t *testing.T) {
	dir := t.TempDir()
	q, stopNATS := openTest(t, dir, Config{TimeScale: 0.01})
	started := make(chan struct{}, 1)
	blocking := invokerFunc(func(ctx context.Context, _, _, _ string, _ []byte, _, _ string) (*invoke.Result, string, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, "", ctx.Err()
	})
	if err := q.Enqueue(context.Background(), "123456789012", "fn", "", []byte(`{"a":1}`), "r1", ""); err != nil {
		t.Fatal(err)
	}
	stopRun := run(t, q, blocking)
	<-started
	stopRun()
	stopNATS()

	q, stopNATS = openTest(t, dir, Config{TimeScale: 0.01})
	defer stopNATS()
	var got atomic.Value
	ok := &fakeInvoker{calls: map[string]int{}, answer: func(id string, n int) (*invoke.Result, error) {
		got.Store(id)
		return &invoke.Result{Payload: []byte(`"ok"`)}, nil
	}}
	defer run(t, q, ok)()
	waitUntil(t, "the event after the restart", func() bool { return q.Stats().Succeeded == 1 })
	if got.Load() != "r1" {
		t.Fatalf("ran %v", got.Load())
	}
}

// Pollers take as many events as are queued, up to the cap.
func TestConcurrencyGrowsWithDepth(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{Concurrency: 8})
	defer stop()
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		time.Sleep(200 * time.Millisecond)
		return &invoke.Result{Payload: []byte(`"ok"`)}, nil
	}}
	for i := range 40 {
		if err := q.Enqueue(context.Background(), "123456789012", "fn", "", []byte(`{}`), fmt.Sprint("e", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	defer run(t, q, inv)()
	waitUntil(t, "every event", func() bool { return q.Stats().Succeeded == 40 })
	if p := inv.peak.Load(); p < 4 || p > 8 {
		t.Fatalf("peak concurrency %d; want 4..8", p)
	}
	if r := inv.running.Load(); r != 0 {
		t.Fatalf("%d invocations still running", r)
	}
}

// Destination records carry Lambda's fields.
func TestDestinationRecord(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01})
	defer stop()
	ctx := context.Background()
	dest := "arn:aws:lambda:us-east-1:123456789012:function:sink"
	b, _ := json.Marshal(EventInvokeConfig{MaximumRetryAttempts: new(1), DestinationConfig: &DestinationConfig{OnFailure: &Destination{Destination: &dest}}})
	if _, err := q.kv.Put(ctx, configKey("123456789012", "fn", ""), b); err != nil {
		t.Fatal(err)
	}
	var rec atomic.Value
	inv := &fakeInvoker{calls: map[string]int{}}
	inv.answer = func(id string, n int) (*invoke.Result, error) {
		if id == "src" {
			return &invoke.Result{FunctionError: "Unhandled", Payload: []byte(`{"errorMessage":"no"}`)}, nil
		}
		return &invoke.Result{Payload: []byte(`"ok"`)}, nil
	}
	// Catch the destination event's payload, and the trace header each
	// attempt ran with.
	const caller = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	var mu sync.Mutex
	var traces []string
	capture := invokerFunc(func(ctx context.Context, account, name, qualifier string, payload []byte, id, trace string) (*invoke.Result, string, error) {
		mu.Lock()
		traces = append(traces, name+" "+trace)
		mu.Unlock()
		res, v, err := inv.InvokeAsync(ctx, account, name, qualifier, payload, id, trace)
		if name == "sink" {
			rec.Store(string(payload))
		}
		return res, v, err
	})
	if err := q.Enqueue(ctx, "123456789012", "fn", "", []byte(`{"x":1}`), "src", caller); err != nil {
		t.Fatal(err)
	}
	defer run(t, q, capture)()
	waitUntil(t, "the record", func() bool { return rec.Load() != nil })
	// The caller's trace header on both attempts and on the destination's.
	mu.Lock()
	if want := []string{"fn " + caller, "fn " + caller, "sink " + caller}; !slices.Equal(traces, want) {
		t.Errorf("attempts ran with %q, want %q", traces, want)
	}
	mu.Unlock()
	var r record
	if err := json.Unmarshal([]byte(rec.Load().(string)), &r); err != nil {
		t.Fatal(err)
	}
	if r.Version != "1.0" || r.RequestContext.RequestID != "src" || r.RequestContext.Condition != "RetriesExhausted" ||
		r.RequestContext.ApproximateInvokeCount != 2 || r.RequestContext.FunctionARN != "arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST" ||
		string(r.RequestPayload) != `{"x":1}` || r.ResponseContext == nil || r.ResponseContext.FunctionError != "Unhandled" ||
		string(r.ResponsePayload) != `{"errorMessage":"no"}` {
		t.Fatalf("record %s", rec.Load())
	}
}

type invokerFunc func(ctx context.Context, account, name, qualifier string, payload []byte, id, trace string) (*invoke.Result, string, error)

func (f invokerFunc) InvokeAsync(ctx context.Context, account, name, qualifier string, payload []byte, id, trace string) (*invoke.Result, string, error) {
	return f(ctx, account, name, qualifier, payload, id, trace)
}
