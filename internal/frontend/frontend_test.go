package frontend

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

type trustAll struct{}

func (trustAll) Verify(context.Context, *http.Request, []byte, string) (auth.Principal, error) {
	return auth.Principal{AccountID: "123456789012"}, nil
}

type fakeCounter struct {
	mu      sync.Mutex
	held    int
	version string // the version of the last Acquire
}

func (c *fakeCounter) Acquire(_ context.Context, _, _, version string, _ time.Duration) (func(), error) {
	c.mu.Lock()
	c.held++
	c.version = version
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
	retired  []string
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

func (p *fakePool) Retire(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retired = append(p.retired, target)
}

// fakeFunctions has function f with versions 1 and 2 and alias live (1,
// with weight 0.5 to 2); it counts reads.
type fakeFunctions struct {
	mu      sync.Mutex
	reads   int
	aliases map[string]store.Alias
}

func newFakeFunctions() *fakeFunctions {
	return &fakeFunctions{aliases: map[string]store.Alias{
		"live": {AccountID: "123456789012", Function: "f", Name: "live", FunctionVersion: "1", Weights: map[string]float64{"2": 0.5}},
		"dev":  {AccountID: "123456789012", Function: "f", Name: "dev", FunctionVersion: "$LATEST"},
	}}
}

func (ff *fakeFunctions) GetFunction(_ context.Context, account, name string) (store.Revision, error) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.reads++
	if name != "f" {
		return store.Revision{}, store.ErrNotFound
	}
	return store.Revision{Function: store.Function{AccountID: account, Name: name, Timeout: 3, MemorySize: 128}}, nil
}

func (ff *fakeFunctions) GetVersion(_ context.Context, account, name, version string) (store.Function, error) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.reads++
	if name != "f" || (version != "1" && version != "2") {
		return store.Function{}, store.ErrNotFound
	}
	return store.Function{AccountID: account, Name: name, Version: version, Timeout: 3, MemorySize: 128}, nil
}

func (ff *fakeFunctions) GetAlias(_ context.Context, account, function, alias string) (store.AliasRevision, error) {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	ff.reads++
	a, ok := ff.aliases[alias]
	if function != "f" || !ok {
		return store.AliasRevision{}, store.ErrNotFound
	}
	return store.AliasRevision{Alias: a}, nil
}

func (ff *fakeFunctions) readCount() int {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	return ff.reads
}

func (*fakeFunctions) WatchFunctions(context.Context, bool, func(string, string, *store.Function)) error {
	return nil
}

func (*fakeFunctions) WatchVersions(context.Context, func(string, string, string, *store.Function)) error {
	return nil
}

func (*fakeFunctions) WatchAliases(context.Context, func(string, string, string, *store.Alias)) error {
	return nil
}

func newServer(w fakeWorker) (*Server, *fakeCounter, *fakePool, http.Handler) {
	s, c, p, _, h := newServerWith(w, nil)
	return s, c, p, h
}

func newServerWith(w fakeWorker, rnd func() float64) (*Server, *fakeCounter, *fakePool, *fakeFunctions, http.Handler) {
	c, p, ff := &fakeCounter{}, &fakePool{worker: w}, newFakeFunctions()
	s := New(Config{Auth: trustAll{}, Counter: c, Pool: p, Functions: ff, Rand: rnd})
	mux := http.NewServeMux()
	mux.Handle("POST /2015-03-31/functions/{fn}/invocations", s)
	// As in ember serve, where the control API answers every other path.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Amzn-ErrorType", "UnknownOperationException")
		w.WriteHeader(http.StatusNotFound)
	})
	return s, c, p, ff, mux
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
		case 301, 307, 308: // ServeMux cleaning a path such as "a/../b", before Ember sees it
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

// Versions and aliases resolve to the version that runs, which the
// response names and the concurrency slot is taken for; an alias picks by
// weight; reads are cached until a watch says otherwise.
func TestVersionsAndAliases(t *testing.T) {
	x := 0.0
	var got []*invoke.Request
	var mu sync.Mutex
	s, counter, p, ff, h := newServerWith(fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		return &invoke.Result{Payload: []byte(`{}`)}, nil
	}}, func() float64 { return x })
	inv := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", path, nil))
		return w
	}
	const arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
	for _, c := range []struct {
		path, version, arn string
		rnd                float64
	}{
		{"/2015-03-31/functions/f/invocations", "$LATEST", arn, 0},
		{"/2015-03-31/functions/f:1/invocations", "1", arn + ":1", 0},
		{"/2015-03-31/functions/f/invocations?Qualifier=2", "2", arn + ":2", 0},
		{"/2015-03-31/functions/f/invocations?Qualifier=$LATEST", "$LATEST", arn + ":$LATEST", 0},
		{"/2015-03-31/functions/f:live/invocations", "2", arn + ":live", 0.49},
		{"/2015-03-31/functions/f:live/invocations", "1", arn + ":live", 0.5},
		{"/2015-03-31/functions/" + arn + ":dev/invocations", "$LATEST", arn + ":dev", 0},
	} {
		x = c.rnd
		w := inv(c.path)
		if w.Code != 200 || w.Header().Get("X-Amz-Executed-Version") != c.version {
			t.Fatalf("%s: %d %q %s", c.path, w.Code, w.Header().Get("X-Amz-Executed-Version"), w.Body)
		}
		req := got[len(got)-1]
		if req.Version != c.version || req.InvokedFunctionARN != c.arn {
			t.Fatalf("%s: request version %q arn %q", c.path, req.Version, req.InvokedFunctionARN)
		}
		if counter.version != c.version {
			t.Fatalf("%s: slot taken for version %q", c.path, counter.version)
		}
	}
	for _, path := range []string{"/2015-03-31/functions/f:3/invocations", "/2015-03-31/functions/f:nope/invocations",
		"/2015-03-31/functions/g:1/invocations"} {
		if w := inv(path); w.Code != 404 || w.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	if w := inv("/2015-03-31/functions/f/invocations?Qualifier=a.b"); w.Code != 400 {
		t.Fatalf("bad qualifier: %d", w.Code)
	}

	// Cached: the same invokes read nothing more.
	reads := ff.readCount()
	inv("/2015-03-31/functions/f:live/invocations")
	inv("/2015-03-31/functions/f:1/invocations")
	inv("/2015-03-31/functions/f/invocations")
	if n := ff.readCount(); n != reads {
		t.Fatalf("%d reads for cached invokes", n-reads)
	}
	// An alias change is read again; a version delete retires its
	// sandboxes; a function delete all of its versions'.
	ff.mu.Lock()
	ff.aliases["live"] = store.Alias{AccountID: "123456789012", Function: "f", Name: "live", FunctionVersion: "2"}
	ff.mu.Unlock()
	a := ff.aliases["live"]
	s.aliasChanged("123456789012", "f", "live", &a)
	x = 0.9
	if w := inv("/2015-03-31/functions/f:live/invocations"); w.Header().Get("X-Amz-Executed-Version") != "2" {
		t.Fatalf("after alias update: %q", w.Header().Get("X-Amz-Executed-Version"))
	}
	s.versionChanged("123456789012", "f", "1", nil)
	s.functionChanged("123456789012", "f", nil)
	if want := []string{"123456789012.f:1", "123456789012.f"}; len(p.retired) != 2 || p.retired[0] != want[0] || p.retired[1] != want[1] {
		t.Fatalf("retired %v, want %v", p.retired, want)
	}
}

// A read that raced an invalidation is not cached.
func TestStaleFillIsDropped(t *testing.T) {
	s, _, _, _, _ := newServerWith(fakeWorker{}, nil)
	gen, _ := s.cached("k", func(*fnCache) bool { return false })
	s.functionChanged("a", "f", &store.Function{AccountID: "a", Name: "f"})
	s.fill("k", gen, func(c *fnCache) { c.latest = &store.Function{} })
	if _, ok := s.cached("k", func(c *fnCache) bool { return c.latest != nil }); ok {
		t.Fatal("a stale read was cached")
	}
}

// precheckRefuses is an Authenticator whose checks before the body refuse
// every caller; Verify would accept.
type precheckRefuses struct{ trustAll }

func (precheckRefuses) Precheck(context.Context, *http.Request, string) error {
	return lambdaapi.Errorf(lambdaapi.UnrecognizedClient, "The security token included in the request is invalid.")
}

// countingBody counts the bytes read of a request body.
type countingBody struct {
	r io.Reader
	n int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A caller refused by the checks that need no body gets its 403 before
// Ember reads a large body (declared or chunked); a small one is read and
// verified in one go, as on the warm path.
func TestLargeBodyNotReadBeforeAuth(t *testing.T) {
	echo := fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) { return &invoke.Result{Payload: req.Payload}, nil }}
	c, p, ff := &fakeCounter{}, &fakePool{worker: echo}, newFakeFunctions()
	s := New(Config{Auth: precheckRefuses{}, Counter: c, Pool: p, Functions: ff})
	for _, tc := range []struct {
		name     string
		size     int
		declared bool
		read     bool
	}{
		{"large declared", 1 << 20, true, false},
		{"large chunked", 1 << 20, false, false},
		{"small declared", 100, true, true},
	} {
		body := &countingBody{r: bytes.NewReader(bytes.Repeat([]byte("1"), tc.size))}
		req := httptest.NewRequest("POST", "/2015-03-31/functions/f/invocations", body)
		req.SetPathValue("fn", "f")
		req.ContentLength = -1
		if tc.declared {
			req.ContentLength = int64(tc.size)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		switch {
		case !tc.read && (w.Code != 403 || body.n != 0):
			t.Errorf("%s: %d after reading %d bytes, want 403 before any", tc.name, w.Code, body.n)
		case tc.read && body.n != tc.size:
			t.Errorf("%s: read %d bytes of %d", tc.name, body.n, tc.size)
		}
	}
}
