package frontend

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/store"
)

// coldPool hands out a new sandbox (Cold) on its first Acquire only.
type coldPool struct {
	fakePool
	mu    sync.Mutex
	given int
}

func (p *coldPool) Acquire(ctx context.Context, fn *store.Function) (invoke.Assignment, error) {
	a, err := p.fakePool.Acquire(ctx, fn)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.given++
	a.Cold = p.given == 1
	return a, err
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// At debug level a cold invoke logs how long each of its steps took; a
// warm one, and any invoke at info level, logs no such line.
func TestColdInvokeStepsLoggedAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var out syncBuffer
		p := &coldPool{fakePool: fakePool{worker: fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
			return &invoke.Result{Payload: req.Payload}, nil
		}}}}
		s := New(Config{Auth: trustAll{}, Counter: &fakeCounter{}, Pool: p, Functions: newFakeFunctions(),
			Logger: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))})
		mux := http.NewServeMux()
		mux.Handle("POST /2015-03-31/functions/{fn}/invocations", s)
		for i := 0; i < 2; i++ {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", strings.NewReader(`{"a":1}`)))
			if w.Code != 200 || w.Body.String() != `{"a":1}` {
				t.Fatalf("level %v invoke %d: %d %s", level, i, w.Code, w.Body)
			}
		}
		lines := strings.Count(out.String(), `msg="cold invoke"`)
		switch {
		case level == slog.LevelDebug && lines != 1:
			t.Fatalf("debug: %d cold invoke lines, want 1 (of 2 invokes, the first cold):\n%s", lines, out.String())
		case level == slog.LevelInfo && lines != 0:
			t.Fatalf("info: %d cold invoke lines, want none:\n%s", lines, out.String())
		}
		if level == slog.LevelDebug {
			for _, step := range []string{"total=", "auth=", "lookup=", "slot=", "sandbox_wait=", "invoke=", "write="} {
				if !strings.Contains(out.String(), step) {
					t.Errorf("the cold invoke line has no %s: %s", step, out.String())
				}
			}
		}
	}
}
