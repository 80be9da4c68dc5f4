package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildDir holds binaries built for the tests; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	echoOnce sync.Once
	echoPath string
	echoErr  error
)

// echoFn builds testdata/echofn (a function made with aws-lambda-go) once
// and returns the binary's path.
func echoFn(t testing.TB) string {
	t.Helper()
	echoOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		buildDir, echoErr = os.MkdirTemp("", "runtimeapi-test-")
		if echoErr != nil {
			return
		}
		echoPath = filepath.Join(buildDir, "echofn")
		cmd := exec.Command(goBin, "build", "-o", echoPath, ".")
		cmd.Dir = filepath.Join("testdata", "echofn")
		if out, err := cmd.CombinedOutput(); err != nil {
			echoErr = err
			echoPath = string(out)
		}
	})
	if echoErr != nil {
		t.Fatalf("building testdata/echofn: %v\n%s", echoErr, echoPath)
	}
	return echoPath
}

// function is a running echofn process.
type function struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
	err    error // set before exited is closed
}

// startFunction runs echofn against the Runtime API at addr.
func startFunction(t testing.TB, addr string) *function {
	t.Helper()
	cmd := exec.Command(echoFn(t))
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+addr)
	f := &function{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = f.stderr
	cmd.Stdout = f.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.err = cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-f.exited
		if t.Failed() {
			t.Logf("function output:\n%s", f.stderr.String())
		}
	})
	return f
}

// lockedBuffer is a bytes.Buffer safe for a process's output and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer is a Server on a loopback listener, with a client acting as
// the runtime.
type testServer struct {
	*Server
	addr   string
	base   string
	client *http.Client
	served chan error
}

// newTestServer starts a Server; the cleanup closes it and checks Serve.
func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		Server: New(cfg),
		addr:   ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}},
		served: make(chan error, 1),
	}
	ts.base = "http://" + ts.addr
	go func() { ts.served <- ts.Serve(ln) }()
	t.Cleanup(func() { ts.shutdown(t) })
	return ts
}

// shutdown closes the server and checks that Serve returned nil.
func (ts *testServer) shutdown(t testing.TB) {
	t.Helper()
	if err := ts.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.served <- nil // keep shutdown idempotent
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after Close")
	}
	ts.client.CloseIdleConnections()
}

// reply is an HTTP answer as the runtime sees it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// errType is the errorType of a Runtime API error body.
func (r reply) errType() string {
	var doc errorDoc
	json.Unmarshal(r.body, &doc)
	return doc.Type
}

// do sends a request as the runtime and reads the whole answer.
func (ts *testServer) do(t testing.TB, ctx context.Context, method, path string, body io.Reader, hdr map[string]string) (reply, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, ts.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// next does GET /next and fails the test unless it answers 200.
func (ts *testServer) next(t testing.TB) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ts.do(t, ctx, http.MethodGet, pathNext, nil, nil)
	if err != nil {
		t.Fatalf("GET /next: %v", err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /next: %d %s", r.status, r.body)
	}
	return r
}

// post sends a POST as the runtime.
func (ts *testServer) post(t testing.TB, path, body string, hdr map[string]string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := ts.do(t, ctx, http.MethodPost, path, strings.NewReader(body), hdr)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return r
}

// invokeResult is what Invoke returned.
type invokeResult struct {
	resp *Response
	err  error
}

// invokeAsync runs Invoke in a goroutine.
func invokeAsync(ctx context.Context, s *Server, inv *Invocation) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		resp, err := s.Invoke(ctx, inv)
		ch <- invokeResult{resp, err}
	}()
	return ch
}

// wait receives from ch or fails the test after 10 s.
func wait[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// state returns the server's phase and invocation state.
func (s *Server) state() (phase, callState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase, s.cur.state
}

// inv makes a test invocation.
func inv(id, payload string) *Invocation {
	return &Invocation{RequestID: id, Payload: []byte(payload), Deadline: time.Now().Add(time.Minute)}
}
