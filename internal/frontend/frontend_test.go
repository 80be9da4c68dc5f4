package frontend

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/store"
)

type trustAll struct{}

func (trustAll) Verify(context.Context, *http.Request, []byte, string) (auth.Principal, error) {
	return auth.Principal{AccountID: "123456789012"}, nil
}

type fakeCounter struct {
	mu   sync.Mutex
	held int
}

func (c *fakeCounter) Acquire(context.Context, string, string, time.Duration) (func(), error) {
	c.mu.Lock()
	c.held++
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { c.mu.Lock(); c.held--; c.mu.Unlock() }) }, nil
}

type fakeWorker struct {
	fn func(req *invoke.Request) (*invoke.Result, error)
}

func (w fakeWorker) Invoke(_ context.Context, _ string, req *invoke.Request) (*invoke.Result, error) {
	return w.fn(req)
}

type fakePool struct {
	mu       sync.Mutex
	worker   fakeWorker
	out      int
	released []bool
}

func (p *fakePool) Acquire(context.Context, *store.Function) (invoke.Assignment, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out++
	return invoke.Assignment{SandboxID: "sb", Worker: p.worker}, nil
}

func (p *fakePool) Release(_ invoke.Assignment, healthy bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out--
	p.released = append(p.released, healthy)
}

func (p *fakePool) Retire(string) {}

type fakeFunctions struct{}

func (fakeFunctions) GetFunction(_ context.Context, account, name string) (store.Revision, error) {
	if name != "f" {
		return store.Revision{}, store.ErrNotFound
	}
	return store.Revision{Function: store.Function{AccountID: account, Name: name, Timeout: 3, MemorySize: 128}}, nil
}

func (fakeFunctions) WatchFunctions(context.Context, bool, func(string, string, *store.Function)) error {
	return nil
}

func newServer(w fakeWorker) (*Server, *fakeCounter, *fakePool, http.Handler) {
	c, p := &fakeCounter{}, &fakePool{worker: w}
	s := New(Config{Auth: trustAll{}, Counter: c, Pool: p, Functions: fakeFunctions{}})
	mux := http.NewServeMux()
	mux.Handle("POST /2015-03-31/functions/{fn}/invocations", s)
	return s, c, p, mux
}

// A worker that panics still gives the slot and the sandbox back, and the
// sandbox is not reused.
func TestSlotReleasedOnPanic(t *testing.T) {
	_, c, p, h := newServer(fakeWorker{fn: func(*invoke.Request) (*invoke.Result, error) { panic("worker bug") }})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", nil))
	}()
	if c.held != 0 || p.out != 0 || len(p.released) != 1 || p.released[0] {
		t.Fatalf("held %d out %d released %v", c.held, p.out, p.released)
	}
}

func TestGoneSandboxIsRetried(t *testing.T) {
	calls := 0
	_, c, p, h := newServer(fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
		calls++
		if calls == 1 {
			return nil, invoke.ErrSandboxGone
		}
		return &invoke.Result{Payload: req.Payload}, nil
	}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", bytes.NewReader([]byte(`{"a":1}`))))
	if w.Code != 200 || w.Body.String() != `{"a":1}` || calls != 2 {
		t.Fatalf("%d %s after %d calls", w.Code, w.Body, calls)
	}
	if c.held != 0 || p.out != 0 || p.released[0] || !p.released[1] {
		t.Fatalf("held %d out %d released %v", c.held, p.out, p.released)
	}
}

// FuzzInvokeRequest sends arbitrary invoke requests: no panic, only
// Lambda's statuses, and every slot and sandbox given back.
func FuzzInvokeRequest(f *testing.F) {
	f.Add("f", "", "", "", []byte(`{"a":1}`))
	f.Add("f", "Tail", "RequestResponse", "eyJhIjoxfQ==", []byte(`{}`))
	f.Add("123456789012:function:f:$LATEST", "None", "DryRun", "", []byte(``))
	f.Add("arn:aws:lambda:us-east-1:123456789012:function:f", "Bad", "Event", "%%%", []byte(`{`))
	f.Add("g", "", "", "", []byte(`null`))
	f.Fuzz(func(t *testing.T, name, logType, invType, clientContext string, body []byte) {
		_, c, p, h := newServer(fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
			return &invoke.Result{Payload: req.Payload}, nil
		}})
		req, err := http.NewRequest("POST", "http://x/2015-03-31/functions/"+name+"/invocations", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-Amz-Log-Type", logType)
		req.Header.Set("X-Amz-Invocation-Type", invType)
		req.Header.Set("X-Amz-Client-Context", clientContext)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 204, 400, 404, 405, 413:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Code >= 400 && w.Code != 405 && w.Header().Get("X-Amzn-ErrorType") == "" {
			t.Fatalf("%d without X-Amzn-ErrorType", w.Code)
		}
		if c.held != 0 || p.out != 0 {
			t.Fatalf("leaked: %d slots, %d sandboxes", c.held, p.out)
		}
	})
}
