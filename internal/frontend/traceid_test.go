package frontend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/invoke"
)

// traceRE is an X-Ray trace header as Lambda makes one for a caller that
// sent none.
var traceRE = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`)

// Every invocation reaches its runtime with a trace header: the caller's
// X-Amzn-Trace-Id as sent, else a new one in X-Ray's format, another for
// each invoke; asynchronous events too.
func TestTraceIDAlwaysSent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s, _, _, h := newServer(fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
		mu.Lock()
		got = append(got, req.TraceID)
		mu.Unlock()
		return &invoke.Result{Payload: []byte(`{}`)}, nil
	}})
	const callers = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	before := time.Now().Unix()
	for _, hdr := range []string{"", "", callers} {
		if w := invokeTraced(h, "", hdr); w.Code != 200 {
			t.Fatalf("invoke: %d %s", w.Code, w.Body)
		}
	}
	if _, _, err := s.InvokeAsync(context.Background(), "123456789012", "f", "", []byte(`{}`), "async-1", ""); err != nil {
		t.Fatal(err)
	}
	// An event whose caller sent a trace header runs with it.
	if _, _, err := s.InvokeAsync(context.Background(), "123456789012", "f", "", []byte(`{}`), "async-2", callers); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	if len(got) != 5 || got[2] != callers || got[4] != callers {
		t.Fatalf("trace ids %q; want the caller's third and fifth", got)
	}
	for _, id := range []string{got[0], got[1], got[3]} {
		m := traceRE.FindStringSubmatch(id)
		if m == nil {
			t.Fatalf("trace id %q is not in X-Ray's format", id)
		}
		epoch, _ := strconv.ParseInt(m[1], 16, 64)
		if epoch < before || epoch > after {
			t.Fatalf("trace id %q: epoch %d not in [%d, %d]", id, epoch, before, after)
		}
	}
	if got[0] == got[1] || got[1] == got[3] {
		t.Fatalf("trace ids repeat: %q", got)
	}
}

func TestNewTraceID(t *testing.T) {
	now := time.Unix(0x5759e988, 0)
	seen := map[string]bool{}
	for range 1000 {
		id := newTraceID(now)
		m := traceRE.FindStringSubmatch(id)
		if m == nil || m[1] != "5759e988" || len(id) != traceIDLen {
			t.Fatalf("newTraceID = %q", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
	if n := testing.AllocsPerRun(100, func() { _ = newTraceID(now) }); n != 1 {
		t.Fatalf("newTraceID makes %v allocations, want 1", n)
	}
}

// traceQueue is an EventQueue that keeps the trace header of each event.
type traceQueue struct {
	mu     sync.Mutex
	traces []string
}

func (q *traceQueue) Enqueue(_ context.Context, _, _, _ string, _ []byte, _, traceID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.traces = append(q.traces, traceID)
	return nil
}

// An Event invoke hands the caller's trace header to the queue as sent,
// and "" when it sent none or one too long (the event's runs then make
// their own).
func TestEventKeepsCallersTrace(t *testing.T) {
	var synced atomic.Value
	s, _, _, h := newServer(fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
		synced.Store(req.TraceID)
		return &invoke.Result{Payload: []byte(`{}`)}, nil
	}})
	q := &traceQueue{}
	s.SetEventQueue(q)
	const callers = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	for _, hdr := range []string{callers, "", strings.Repeat("x", maxCallerTrace+1)} {
		if w := invokeTraced(h, "Event", hdr); w.Code != 202 {
			t.Fatalf("event invoke: %d %s", w.Code, w.Body)
		}
	}
	if !slices.Equal(q.traces, []string{callers, "", ""}) { // the last one too long
		t.Fatalf("queued trace headers %q", q.traces)
	}
	// A synchronous invoke with a header too long gets a new one.
	w := invokeTraced(h, "", strings.Repeat("x", maxCallerTrace+1))
	if got, _ := synced.Load().(string); w.Code != 200 || !traceRE.MatchString(got) {
		t.Fatalf("invoke with a trace header too long: %d, the runtime got %q", w.Code, got)
	}
}

// invokeTraced invokes f through h with invocation type typ ("" for
// RequestResponse) and X-Amzn-Trace-Id hdr ("" for none).
func invokeTraced(h http.Handler, typ, hdr string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", strings.NewReader(`{}`))
	if typ != "" {
		r.Header.Set("X-Amz-Invocation-Type", typ)
	}
	if hdr != "" {
		r.Header.Set("X-Amzn-Trace-Id", hdr)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
