package runtimeapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"

func TestInvokeRoundTrip(t *testing.T) {
	ts := newTestServer(t, Config{FunctionARN: testARN})
	deadline := time.Now().Add(3 * time.Second)
	// The Front End always has a trace id (the caller's, or one it made),
	// as Lambda always sends Lambda-Runtime-Trace-Id.
	const trace = "Root=1-6745a3c1-0123456789abcdef01234567;Parent=89abcdef01234567;Sampled=0"
	res := invokeAsync(t.Context(), ts.Server, &Invocation{
		RequestID: "req-1", Payload: []byte(`{"a":1}`), Deadline: deadline, TraceID: trace,
	})
	r := ts.next(t)
	want := map[string]string{
		hdrRequestID:     "req-1",
		hdrDeadline:      strconv.FormatInt(deadline.UnixMilli(), 10),
		hdrARN:           testARN,
		hdrTrace:         trace,
		hdrContentType:   "application/json",
		hdrContentLength: "7",
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{hdrClientContext, hdrCognito} {
		if _, ok := r.header[k]; ok {
			t.Errorf("header %s sent though unset", k)
		}
	}
	if string(r.body) != `{"a":1}` {
		t.Errorf("body = %s", r.body)
	}
	a := ts.post(t, pathInvocation+"req-1/response", `"done"`, nil)
	if a.status != http.StatusAccepted || string(a.body) != `{"status":"OK"}`+"\n" {
		t.Errorf("response: %d %s", a.status, a.body)
	}
	got := wait(t, res)
	if got.err != nil || string(got.resp.Payload) != `"done"` || got.resp.FunctionError != "" {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
	if p, c := ts.state(); p != phaseReady || c != callNone {
		t.Errorf("state after invoke = %v, %v", p, c)
	}
}

func TestNextOptionalHeaders(t *testing.T) {
	ts := newTestServer(t, Config{FunctionARN: testARN})
	in := inv("req-2", "{}")
	in.InvokedFunctionARN = testARN + ":prod"
	in.TraceID = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
	in.ClientContext = `{"custom":{"k":"v"}}`
	in.CognitoIdentity = `{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}`
	invokeAsync(t.Context(), ts.Server, in)
	r := ts.next(t)
	for k, v := range map[string]string{
		hdrARN: in.InvokedFunctionARN, hdrTrace: in.TraceID,
		hdrClientContext: in.ClientContext, hdrCognito: in.CognitoIdentity,
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func TestWaitInit(t *testing.T) {
	t.Run("ready on first next", func(t *testing.T) {
		ts := newTestServer(t, Config{})
		done := make(chan error, 1)
		go func() { done <- ts.WaitInit(context.Background()) }()
		select {
		case err := <-done:
			t.Fatalf("WaitInit returned %v before /next", err)
		case <-time.After(20 * time.Millisecond):
		}
		// A long poll that the runtime abandons still marks it ready.
		ctx, cancel := context.WithCancel(context.Background())
		polled := make(chan error, 1)
		go func() {
			_, err := ts.do(t, ctx, http.MethodGet, pathNext, nil, nil)
			polled <- err
		}()
		if err := wait(t, done); err != nil {
			t.Fatalf("WaitInit = %v", err)
		}
		cancel()
		wait(t, polled)
		if err := ts.WaitInit(context.Background()); err != nil {
			t.Errorf("second WaitInit = %v", err)
		}
	})
	t.Run("ctx timeout", func(t *testing.T) {
		ts := newTestServer(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := ts.WaitInit(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitInit = %v, want deadline exceeded", err)
		}
		if p, _ := ts.state(); p != phaseStarting {
			t.Errorf("phase = %v", p)
		}
	})
}

func TestInitError(t *testing.T) {
	for _, tc := range []struct {
		name, header, body, wantType, wantMsg string
	}{
		{"header", "Runtime.ImportModuleError", `{"errorMessage":"no module","errorType":"Other"}`, "Runtime.ImportModuleError", "no module"},
		{"body", "", `{"errorMessage":"bad config","errorType":"ConfigError"}`, "ConfigError", "bad config"},
		{"neither", "", `not json`, TypeUnknown, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{})
			done := make(chan error, 1)
			go func() { done <- ts.WaitInit(context.Background()) }()
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[hdrErrorType] = tc.header
			}
			if r := ts.post(t, pathInitError, tc.body, hdr); r.status != http.StatusAccepted {
				t.Fatalf("init/error: %d %s", r.status, r.body)
			}
			var fe *FunctionError
			if err := wait(t, done); !errors.As(err, &fe) {
				t.Fatalf("WaitInit = %v, want *FunctionError", err)
			}
			if fe.Type != tc.wantType || fe.Message != tc.wantMsg || string(fe.Body) != tc.body {
				t.Errorf("FunctionError = %+v", fe)
			}
			// Nothing more is allowed of this runtime.
			if r := ts.post(t, pathInitError, tc.body, hdr); r.status != http.StatusForbidden {
				t.Errorf("second init/error: %d", r.status)
			}
			r, err := ts.do(t, t.Context(), http.MethodGet, pathNext, nil, nil)
			if err != nil || r.status != http.StatusForbidden || r.errType() != errTypeInvalidStateTransition {
				t.Errorf("next after init error: %d %s %v", r.status, r.body, err)
			}
			_, err = ts.Invoke(t.Context(), inv("x", "{}"))
			if !errors.Is(err, ErrNotReady) || !errors.As(err, &fe) {
				t.Errorf("Invoke after init error = %v", err)
			}
		})
	}
}

// TestInitErrorDuringInvoke: an Invoke made before init completes fails
// when the runtime reports an init error.
func TestInitErrorDuringInvoke(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("early", "{}"))
	eventually(t, "pending", func() bool { _, st := ts.state(); return st == callPending })
	if r := ts.post(t, pathInitError, `{"errorType":"Boot"}`, nil); r.status != http.StatusAccepted {
		t.Fatalf("init/error: %d %s", r.status, r.body)
	}
	got := wait(t, res)
	var fe *FunctionError
	if !errors.Is(got.err, ErrNotReady) || !errors.As(got.err, &fe) || fe.Type != "Boot" {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
	if _, st := ts.state(); st != callNone {
		t.Errorf("state = %v", st)
	}
}

func TestInitErrorAfterReady(t *testing.T) {
	ts := newTestServer(t, Config{})
	invokeAsync(t.Context(), ts.Server, inv("r", "{}"))
	ts.next(t)
	r := ts.post(t, pathInitError, `{}`, nil)
	if r.status != http.StatusForbidden || r.errType() != errTypeInvalidStateTransition {
		t.Fatalf("init/error after next: %d %s", r.status, r.body)
	}
	if err := ts.WaitInit(t.Context()); err != nil {
		t.Errorf("WaitInit = %v", err)
	}
}

// TestAnswerChecks: the request id is checked before any state changes.
func TestAnswerChecks(t *testing.T) {
	ts := newTestServer(t, Config{})
	expect := func(path string, status int, errType string, wantState callState) {
		t.Helper()
		r := ts.post(t, path, `"x"`, nil)
		if r.status != status || r.errType() != errType {
			t.Errorf("POST %s: %d %s, want %d %s", path, r.status, r.body, status, errType)
		}
		if _, st := ts.state(); st != wantState {
			t.Errorf("state after POST %s = %v, want %v", path, st, wantState)
		}
	}
	expect(pathInvocation+"nobody/response", 403, errTypeInvalidStateTransition, callNone)

	res := invokeAsync(t.Context(), ts.Server, inv("good", "{}"))
	eventually(t, "pending", func() bool { _, st := ts.state(); return st == callPending })
	// Not handed out yet: the runtime cannot answer it.
	expect(pathInvocation+"good/response", 403, errTypeInvalidStateTransition, callPending)

	ts.next(t)
	expect(pathInvocation+"bad/response", 400, errTypeInvalidRequestID, callDelivered)
	expect(pathInvocation+"bad/error", 400, errTypeInvalidRequestID, callDelivered)
	expect(pathInvocation+"next/response", 400, errTypeInvalidRequestID, callDelivered)

	if r := ts.post(t, pathInvocation+"good/response", `"first"`, nil); r.status != http.StatusAccepted {
		t.Fatalf("good response: %d %s", r.status, r.body)
	}
	got := wait(t, res)
	if got.err != nil || string(got.resp.Payload) != `"first"` {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
	// A second answer for the same id changes nothing.
	expect(pathInvocation+"good/response", 403, errTypeInvalidStateTransition, callNone)
	expect(pathInvocation+"good/error", 403, errTypeInvalidStateTransition, callNone)
}

func TestInvokeErrorAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, header, body, want string
	}{
		{"header wins", "Runtime.HandlerError", `{"errorMessage":"m","errorType":"BodyType"}`, "Runtime.HandlerError"},
		{"body type", "", `{"errorMessage":"m","errorType":"BodyType","stackTrace":[]}`, "BodyType"},
		{"unknown", "", `oops`, TypeUnknown},
		{"empty", "", ``, TypeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{})
			res := invokeAsync(t.Context(), ts.Server, inv("e1", "{}"))
			ts.next(t)
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[hdrErrorType] = tc.header
			}
			if r := ts.post(t, pathInvocation+"e1/error", tc.body, hdr); r.status != http.StatusAccepted {
				t.Fatalf("error: %d %s", r.status, r.body)
			}
			got := wait(t, res)
			if got.err != nil || got.resp.FunctionError != tc.want || string(got.resp.Payload) != tc.body {
				t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
			}
		})
	}
}

// opaque hides a reader's type so that the client sends it chunked.
type opaque struct{ io.Reader }

func TestResponseTooLarge(t *testing.T) {
	const limit = 16
	for _, tc := range []struct {
		name    string
		body    io.Reader
		wantMsg string
	}{
		{"content-length", strings.NewReader(strings.Repeat("x", limit+1)),
			"Response payload size (17 bytes) exceeded maximum allowed payload size (16 bytes)."},
		{"chunked", opaque{strings.NewReader(strings.Repeat("x", 5*limit))},
			"Response payload size exceeded maximum allowed payload size (16 bytes)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{MaxResponse: limit})
			res := invokeAsync(t.Context(), ts.Server, inv("big", "{}"))
			ts.next(t)
			r, err := ts.do(t, t.Context(), http.MethodPost, pathInvocation+"big/response", tc.body, nil)
			if err != nil || r.status != http.StatusRequestEntityTooLarge || r.errType() != errTypeRequestTooLarge {
				t.Fatalf("oversize: %d %s %v", r.status, r.body, err)
			}
			got := wait(t, res)
			var fe *FunctionError
			if !errors.As(got.err, &fe) || fe.Type != TypeResponseSizeTooLarge || fe.Message != tc.wantMsg {
				t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
			}
			if want := fmt.Sprintf(`{"errorMessage":%q,"errorType":%q}`, tc.wantMsg, TypeResponseSizeTooLarge); string(fe.Body) != want {
				t.Errorf("Body = %s, want %s", fe.Body, want)
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		ts := newTestServer(t, Config{MaxResponse: limit})
		for i, body := range []io.Reader{
			strings.NewReader(strings.Repeat("y", limit)),
			opaque{strings.NewReader(strings.Repeat("y", limit))},
		} {
			id := fmt.Sprint("ok", i)
			res := invokeAsync(t.Context(), ts.Server, inv(id, "{}"))
			ts.next(t)
			r, err := ts.do(t, t.Context(), http.MethodPost, pathInvocation+id+"/response", body, nil)
			if err != nil || r.status != http.StatusAccepted {
				t.Fatalf("at limit: %d %s %v", r.status, r.body, err)
			}
			if got := wait(t, res); got.err != nil || len(got.resp.Payload) != limit {
				t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
			}
		}
	})
	t.Run("id checked first", func(t *testing.T) {
		ts := newTestServer(t, Config{MaxResponse: limit})
		invokeAsync(t.Context(), ts.Server, inv("mine", "{}"))
		ts.next(t)
		r := ts.post(t, pathInvocation+"other/response", strings.Repeat("z", 100), nil)
		if r.status != http.StatusBadRequest {
			t.Fatalf("oversize with wrong id: %d %s", r.status, r.body)
		}
		if _, st := ts.state(); st != callDelivered {
			t.Errorf("state = %v", st)
		}
	})
}

// TestTruncatedAnswer: a body cut short leaves the invocation awaiting its
// answer.
func TestTruncatedAnswer(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("t1", "{}"))
	ts.next(t)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %st1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", pathInvocation)
	eventually(t, "receiving", func() bool { _, st := ts.state(); return st == callReceiving })
	conn.Close()
	eventually(t, "delivered again", func() bool { _, st := ts.state(); return st == callDelivered })
	if r := ts.post(t, pathInvocation+"t1/response", `"retry"`, nil); r.status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != `"retry"` {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

func TestNextRedelivers(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("again", `{"n":1}`))
	a, b := ts.next(t), ts.next(t)
	for _, r := range []reply{a, b} {
		if r.header.Get(hdrRequestID) != "again" || string(r.body) != `{"n":1}` {
			t.Errorf("next = %v %s", r.header, r.body)
		}
	}
	if a.header.Get(hdrDeadline) != b.header.Get(hdrDeadline) {
		t.Error("deadline changed on redelivery")
	}
	ts.post(t, pathInvocation+"again/response", `1`, nil)
	wait(t, res)
}

// TestNextDisconnect: a runtime that drops its long poll loses nothing.
func TestNextDisconnect(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	polled := make(chan error, 1)
	go func() {
		_, err := ts.do(t, ctx, http.MethodGet, pathNext, nil, nil)
		polled <- err
	}()
	eventually(t, "ready", func() bool { p, _ := ts.state(); return p == phaseReady })
	cancel()
	if err := wait(t, polled); err == nil {
		t.Fatal("cancelled poll succeeded")
	}
	res := invokeAsync(t.Context(), ts.Server, inv("kept", "{}"))
	if r := ts.next(t); r.header.Get(hdrRequestID) != "kept" {
		t.Fatalf("next = %v", r.header)
	}
	ts.post(t, pathInvocation+"kept/response", `1`, nil)
	if got := wait(t, res); got.err != nil {
		t.Fatal(got.err)
	}
}

// TestInvokeCancel: an abandoned invocation's late answer gets 4xx and
// changes nothing; the next invocation works.
func TestInvokeCancel(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	res := invokeAsync(ctx, ts.Server, inv("slow", "{}"))
	ts.next(t)
	cancel()
	if got := wait(t, res); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
	r := ts.post(t, pathInvocation+"slow/response", `"late"`, nil)
	if r.status != http.StatusForbidden || r.errType() != errTypeInvalidStateTransition {
		t.Fatalf("late answer: %d %s", r.status, r.body)
	}
	if _, st := ts.state(); st != callNone {
		t.Fatalf("state = %v", st)
	}
	res = invokeAsync(t.Context(), ts.Server, inv("fast", "{}"))
	if r := ts.next(t); r.header.Get(hdrRequestID) != "fast" {
		t.Fatalf("next = %v", r.header)
	}
	if r := ts.post(t, pathInvocation+"slow/response", `"later"`, nil); r.status != http.StatusBadRequest {
		t.Errorf("stale id while another is outstanding: %d", r.status)
	}
	ts.post(t, pathInvocation+"fast/response", `"ok"`, nil)
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != `"ok"` {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

func TestInvokeCancelledBeforeStart(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ts.Invoke(ctx, inv("x", "{}")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Invoke = %v", err)
	}
	if _, st := ts.state(); st != callNone {
		t.Fatalf("state = %v", st)
	}
}

func TestInvokeBusy(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("one", "{}"))
	eventually(t, "pending", func() bool { _, st := ts.state(); return st == callPending })
	if _, err := ts.Invoke(t.Context(), inv("two", "{}")); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Invoke = %v", err)
	}
	ts.next(t)
	ts.post(t, pathInvocation+"one/response", `1`, nil)
	if got := wait(t, res); got.err != nil {
		t.Fatal(got.err)
	}
}

func TestInvokeValidation(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	ok := func() *Invocation { return inv("id", "{}") }
	for name, in := range map[string]*Invocation{
		"nil":           nil,
		"empty id":      {Deadline: time.Now()},
		"slash id":      {RequestID: "a/b", Deadline: time.Now()},
		"dot id":        {RequestID: "..", Deadline: time.Now()},
		"no deadline":   {RequestID: "id"},
		"newline trace": func() *Invocation { i := ok(); i.TraceID = "a\nb"; return i }(),
		"cr context":    func() *Invocation { i := ok(); i.ClientContext = "{\r}"; return i }(),
	} {
		if _, err := s.Invoke(t.Context(), in); !errors.Is(err, ErrInvalidInvocation) {
			t.Errorf("%s: Invoke = %v", name, err)
		}
	}
}

func TestRouting(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/2018-06-01/runtime/invocation/nope", 404},
		{"GET", "/", 404},
		{"GET", "/2018-06-01/runtime//invocation/next", 404},
		{"GET", "/2018-06-01/runtime/invocation/next/", 404},
		{"POST", "/2018-06-01/runtime/invocation//response", 404},
		{"POST", pathNext, 405},
		{"HEAD", pathNext, 405},
		{"GET", pathInvocation + "id/response", 405},
		{"PUT", pathInvocation + "id/error", 405},
		{"GET", pathInitError, 405},
	} {
		r, err := ts.do(t, t.Context(), tc.method, tc.path, nil, nil)
		if err != nil || r.status != tc.want {
			t.Errorf("%s %s = %d %v, want %d", tc.method, tc.path, r.status, err, tc.want)
		}
	}
	if p, _ := ts.state(); p != phaseStarting {
		t.Errorf("phase = %v after refused requests", p)
	}
}

func TestResponseMode(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("m", "{}"))
	ts.next(t)
	r := ts.post(t, pathInvocation+"m/response", `x`, map[string]string{hdrResponseMode: "telepathic"})
	if r.status != http.StatusBadRequest || r.errType() != errTypeInvalidResponseMode {
		t.Fatalf("bad mode: %d %s", r.status, r.body)
	}
	if _, st := ts.state(); st != callDelivered {
		t.Fatalf("state = %v", st)
	}
	body := opaque{strings.NewReader(`{"streamed":true}`)}
	r2, err := ts.do(t, t.Context(), http.MethodPost, pathInvocation+"m/response", body,
		map[string]string{hdrResponseMode: "streaming"})
	if err != nil || r2.status != http.StatusAccepted {
		t.Fatalf("streaming: %d %s %v", r2.status, r2.body, err)
	}
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != `{"streamed":true}` {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

// TestTrailerError: a response stream that fails mid-way reports the error
// in trailers, as aws-lambda-go and streaming runtimes do.
func TestTrailerError(t *testing.T) {
	ts := newTestServer(t, Config{})
	res := invokeAsync(t.Context(), ts.Server, inv("tr", "{}"))
	ts.next(t)
	doc := `{"errorMessage":"read failed","errorType":"ReadError"}`
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.base+pathInvocation+"tr/response",
		opaque{strings.NewReader("partial")})
	req.Trailer = http.Header{
		hdrErrorType: {"ReadError"},
		hdrErrorBody: {base64.StdEncoding.EncodeToString([]byte(doc))},
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := wait(t, res)
	if got.err != nil || got.resp.FunctionError != "ReadError" || string(got.resp.Payload) != doc {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

// TestCloseUnblocksEverything: Close ends a waiting Invoke, a long poll and
// a handler stuck reading a body, returns after them, and leaves no
// goroutine behind.
func TestCloseUnblocksEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	ts := newTestServer(t, Config{})
	res := invokeAsync(context.Background(), ts.Server, inv("stuck", "{}"))
	ts.next(t)

	// An answer whose body never ends keeps the invocation in receiving...
	pr, pw := io.Pipe()
	answered := make(chan error, 1)
	go func() {
		_, err := ts.do(t, context.Background(), http.MethodPost, pathInvocation+"stuck/response", opaque{pr}, nil)
		answered <- err
	}()
	pw.Write([]byte(`"part`))
	eventually(t, "receiving", func() bool { _, st := ts.state(); return st == callReceiving })
	// ...so a new long poll waits.
	polled := make(chan reply, 1)
	go func() {
		r, _ := ts.do(t, context.Background(), http.MethodGet, pathNext, nil, nil)
		polled <- r
	}()
	eventually(t, "a waiting poll", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.wake != nil
	})

	ts.shutdown(t)
	if got := wait(t, res); !errors.Is(got.err, ErrClosed) {
		t.Errorf("Invoke = %+v, %v", got.resp, got.err)
	}
	if r := wait(t, polled); r.status == http.StatusOK {
		t.Errorf("poll after Close = %d %s", r.status, r.body)
	}
	pw.Close()
	wait(t, answered)
	if err := ts.WaitInit(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitInit after Close = %v", err)
	}
	if _, err := ts.Invoke(t.Context(), inv("late", "{}")); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close = %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	noLeaks(t, before)
}

func TestCloseUnblocksWaitInit(t *testing.T) {
	before := runtime.NumGoroutine()
	ts := newTestServer(t, Config{})
	done := make(chan error, 1)
	go func() { done <- ts.WaitInit(context.Background()) }()
	time.Sleep(10 * time.Millisecond) // let it block; the result is the same either way
	ts.shutdown(t)
	if err := wait(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitInit = %v", err)
	}
	noLeaks(t, before)
}

// noLeaks polls until the goroutine count is back to before.
func noLeaks(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeAfterClose(t *testing.T) {
	s := New(Config{})
	s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener left open")
	}
}

// An invocation nobody asked for before Invoke gave up says so.
func TestInvokeNotDelivered(t *testing.T) {
	s := New(Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.Invoke(ctx, &Invocation{RequestID: "r1", Payload: []byte(`{}`), Deadline: time.Now().Add(time.Second)})
	if !errors.Is(err, ErrNotDelivered) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrNotDelivered wrapping the deadline", err)
	}
	_ = s.Close()
}
