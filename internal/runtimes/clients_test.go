package runtimes

// These tests run the embedded runtime clients with the host's real
// interpreters, as plain subprocesses (no sandbox), against an in-process
// Runtime API server: Command's paths are pointed at temporary copies of
// the runtime directory and of a fixture from testdata.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/runtimeapi"
)

const (
	testFunction = "my-function"
	testARN      = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
	testStream   = "2026/01/02/[$LATEST]0123456789abcdef0123456789abcdef"
)

var (
	runtimeDirOnce sync.Once
	runtimeDir     string
	runtimeDirErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if runtimeDir != "" {
		os.RemoveAll(filepath.Dir(runtimeDir))
	}
	os.Exit(code)
}

// installed is a runtime directory made by Install, shared by the tests.
func installed(t *testing.T) string {
	t.Helper()
	runtimeDirOnce.Do(func() {
		tmp, err := os.MkdirTemp("", "runtimes-test-")
		if err != nil {
			runtimeDirErr = err
			return
		}
		runtimeDir, runtimeDirErr = Install(filepath.Join(tmp, "runtime"))
	})
	if runtimeDirErr != nil {
		t.Fatal(runtimeDirErr)
	}
	return runtimeDir
}

// runtimesOf is the available runtimes of a family. With none, the test is
// skipped, or fails when CI=true: CI machines are meant to have them.
func runtimesOf(t *testing.T, family string) []Runtime {
	t.Helper()
	var rts []Runtime
	for _, rt := range Available() {
		if rt.Family == family {
			rts = append(rts, rt)
		}
	}
	slices.SortFunc(rts, func(a, b Runtime) int { return strings.Compare(a.Name, b.Name) })
	if len(rts) == 0 {
		msg := fmt.Sprintf("no %s interpreter on this host: %s", family, Unavailable(map[string]string{
			FamilyPython: "python3.11", FamilyNode: "nodejs20.x"}[family]))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return rts
}

// forEach runs f as a parallel subtest for each runtime of the family.
func forEach(t *testing.T, family string, f func(t *testing.T, rt Runtime)) {
	for _, rt := range runtimesOf(t, family) {
		t.Run(rt.Name, func(t *testing.T) {
			t.Parallel()
			f(t, rt)
		})
	}
}

// lockedBuffer collects a process's output.
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

// function is a runtime client process with its Runtime API server.
type function struct {
	t      *testing.T
	api    *runtimeapi.Server
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // the process's exit; set before exited is closed
	task   string
}

// copyFixture copies testdata/<family> into a new directory (so that the
// interpreters' caches do not land in the source tree).
func copyFixture(t *testing.T, family string) string {
	t.Helper()
	src := filepath.Join("testdata", family)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// start runs the runtime client of rt for handler, with the fixture of its
// family as the code, and the environment the worker gives a function.
func start(t *testing.T, rt Runtime, handler string, extraEnv ...string) *function {
	t.Helper()
	rtDir := installed(t)
	task := copyFixture(t, rt.Family)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := runtimeapi.New(runtimeapi.Config{FunctionARN: testARN})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = api.Serve(ln)
	}()

	prog, args, env, err := Command(rt, handler, Options{RuntimeDir: rtDir, TaskDir: task, MemoryMB: 256})
	if err != nil {
		t.Fatal(err)
	}
	base := append(extraEnv,
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_LAMBDA_FUNCTION_NAME="+testFunction,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+testFunction,
		"AWS_LAMBDA_LOG_STREAM_NAME="+testStream,
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"_HANDLER="+handler,
		"LAMBDA_TASK_ROOT="+task,
		"LAMBDA_RUNTIME_DIR="+rtDir,
	)
	cmd := exec.Command(prog, args...)
	cmd.Env = MergeEnv(base, env)
	cmd.Dir = task
	f := &function{t: t, api: api, cmd: cmd, out: &lockedBuffer{}, exited: make(chan struct{}), task: task}
	cmd.Stdout, cmd.Stderr = f.out, f.out
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
		api.Close()
		<-served
		if t.Failed() {
			t.Logf("%s %q output:\n%s", rt.Name, handler, f.out.String())
		}
	})
	return f
}

// ctx is bounded by d and cancelled when the process exits.
func (f *function) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-f.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (f *function) waitInit() error {
	ctx, cancel := f.ctx(20 * time.Second)
	defer cancel()
	return f.api.WaitInit(ctx)
}

func (f *function) mustInit() {
	f.t.Helper()
	if err := f.waitInit(); err != nil {
		f.t.Fatalf("init: %v", err)
	}
}

var requestSeq struct {
	sync.Mutex
	n int
}

func newRequestID() string {
	requestSeq.Lock()
	defer requestSeq.Unlock()
	requestSeq.n++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", requestSeq.n)
}

// invoke sends one event with a deadline timeout from now.
func (f *function) invoke(payload string, timeout time.Duration, mod ...func(*runtimeapi.Invocation)) (*runtimeapi.Response, *runtimeapi.Invocation, error) {
	f.t.Helper()
	inv := &runtimeapi.Invocation{
		RequestID: newRequestID(),
		Payload:   []byte(payload),
		Deadline:  time.Now().Add(timeout),
	}
	for _, m := range mod {
		m(inv)
	}
	ctx, cancel := f.ctx(timeout + 5*time.Second)
	defer cancel()
	resp, err := f.api.Invoke(ctx, inv)
	return resp, inv, err
}

// ok invokes and wants a successful answer, decoded into v.
func (f *function) ok(payload string, v any) *runtimeapi.Invocation {
	f.t.Helper()
	resp, inv, err := f.invoke(payload, 10*time.Second)
	if err != nil {
		f.t.Fatalf("invoke: %v", err)
	}
	if resp.FunctionError != "" {
		f.t.Fatalf("function error %s: %s", resp.FunctionError, resp.Payload)
	}
	if v != nil {
		if err := json.Unmarshal(resp.Payload, v); err != nil {
			f.t.Fatalf("response %s: %v", resp.Payload, err)
		}
	}
	return inv
}

// errorDoc is the union of Python's and Node's error documents.
type errorDoc struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	RequestID    *string  `json:"requestId"`
	StackTrace   []string `json:"stackTrace"`
	Trace        []string `json:"trace"`
}

// fails invokes and wants a function error of type typ.
func (f *function) fails(payload, typ string) errorDoc {
	f.t.Helper()
	resp, inv, err := f.invoke(payload, 10*time.Second)
	if err != nil {
		f.t.Fatalf("invoke: %v", err)
	}
	var doc errorDoc
	if err := json.Unmarshal(resp.Payload, &doc); err != nil {
		f.t.Fatalf("error body %s: %v", resp.Payload, err)
	}
	if resp.FunctionError != typ || doc.ErrorType != typ {
		f.t.Fatalf("error type %q (body %q), want %q: %s", resp.FunctionError, doc.ErrorType, typ, resp.Payload)
	}
	if doc.RequestID != nil && *doc.RequestID != inv.RequestID {
		f.t.Errorf("requestId %q, want %q", *doc.RequestID, inv.RequestID)
	}
	return doc
}

// initFails wants the runtime to report an init error of type typ, and to
// exit.
func (f *function) initFails(typ string) (*runtimeapi.FunctionError, errorDoc) {
	f.t.Helper()
	err := f.waitInit()
	var fe *runtimeapi.FunctionError
	if !errors.As(err, &fe) {
		f.t.Fatalf("WaitInit = %v, want a *runtimeapi.FunctionError", err)
	}
	if fe.Type != typ {
		f.t.Fatalf("init error %s: %s, want %s\nbody: %s", fe.Type, fe.Message, typ, fe.Body)
	}
	var doc errorDoc
	if err := json.Unmarshal(fe.Body, &doc); err != nil || doc.ErrorType != typ || doc.ErrorMessage != fe.Message {
		f.t.Errorf("init error body %s: %v", fe.Body, err)
	}
	f.waitExit()
	return fe, doc
}

func (f *function) waitExit() {
	f.t.Helper()
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		f.t.Fatal("the runtime did not exit")
	}
}

// versionAtLeast compares a runtime's Version ("3.12", "20") with
// major.minor.
func versionAtLeast(v string, major, minor int) bool {
	maj, min, _ := strings.Cut(v, ".")
	a, _ := strconv.Atoi(maj)
	b, _ := strconv.Atoi(min)
	return a > major || a == major && b >= minor
}

// output waits (up to 5 s) until the process's output holds every one of
// wants, then returns it: the output reaches the test through a pipe, after
// the answer may have.
func (f *function) output(wants ...string) string {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := f.out.String()
		missing := ""
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			f.t.Errorf("output: no %q in\n%s", missing, out)
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: no %q in\n%s", what, sub, s)
		}
	}
}

// ---------------------------------------------------------------------------
// Python

func TestPythonEcho(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "echo.handler")
		f.mustInit()
		var out struct {
			Event map[string]any `json:"event"`
			Calls int            `json:"calls"`
			PID   int            `json:"pid"`
		}
		inv := f.ok(`{"hello":"world","n":[1,2.5,null]}`, &out)
		if out.Event["hello"] != "world" || out.Calls != 1 || out.PID != f.cmd.Process.Pid {
			t.Errorf("first: %+v", out)
		}
		if fmt.Sprint(out.Event["n"]) != "[1 2.5 <nil>]" {
			t.Errorf("event n = %v", out.Event["n"])
		}
		var out2 struct {
			Event any `json:"event"`
			Calls int `json:"calls"`
		}
		inv2 := f.ok(`"a string event"`, &out2)
		if out2.Calls != 2 || out2.Event != "a string event" {
			t.Errorf("second: %+v", out2)
		}
		log := f.output("echo print 1\n", "echo print 2\n",
			"\t"+inv.RequestID+"\techo warning 1\n", "[WARNING]\t", "\t"+inv2.RequestID+"\techo warning 2\n")
		// Module-level code ran once for both invocations.
		if n := strings.Count(log, "module echo imported"); n != 1 {
			t.Errorf("module imported %d times", n)
		}
	})
}

func TestPythonContext(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "ctx.handler")
		f.mustInit()
		var out struct {
			RequestID    string `json:"aws_request_id"`
			FunctionName string `json:"function_name"`
			Version      string `json:"function_version"`
			ARN          string `json:"invoked_function_arn"`
			Memory       string `json:"memory_limit_in_mb"`
			LogGroup     string `json:"log_group_name"`
			LogStream    string `json:"log_stream_name"`
			Identity     struct {
				ID   *string `json:"cognito_identity_id"`
				Pool *string `json:"cognito_identity_pool_id"`
			} `json:"identity"`
			ClientContext *struct {
				InstallationID string         `json:"installation_id"`
				Custom         map[string]any `json:"custom"`
				Env            map[string]any `json:"env"`
			} `json:"client_context"`
			Remaining []int64  `json:"remaining"`
			TraceID   *string  `json:"trace_id"`
			ExecEnv   string   `json:"execution_env"`
			SysPath   []string `json:"sys_path_head"`
			Argv      []string `json:"argv"`
		}
		const timeout = 7 * time.Second
		resp, inv, err := f.invoke(`{}`, timeout, func(inv *runtimeapi.Invocation) {
			inv.InvokedFunctionARN = testARN + ":prod"
			inv.ClientContext = `{"client":{"installation_id":"inst-1","app_title":"t"},"custom":{"k":"v"},"env":{"platform":"linux"}}`
			inv.CognitoIdentity = `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`
			inv.TraceID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
		})
		if err != nil || resp.FunctionError != "" {
			t.Fatalf("invoke: %v %s", err, resp.Payload)
		}
		if err := json.Unmarshal(resp.Payload, &out); err != nil {
			t.Fatal(err)
		}
		if out.RequestID != inv.RequestID || out.FunctionName != testFunction || out.Version != "$LATEST" ||
			out.ARN != testARN+":prod" || out.Memory != "256" || out.LogGroup != "/aws/lambda/"+testFunction ||
			out.LogStream != testStream {
			t.Errorf("context: %+v", out)
		}
		if out.Identity.ID == nil || *out.Identity.ID != "id-1" || out.Identity.Pool == nil || *out.Identity.Pool != "pool-1" {
			t.Errorf("identity: %+v", out.Identity)
		}
		if out.ClientContext == nil || out.ClientContext.InstallationID != "inst-1" ||
			out.ClientContext.Custom["k"] != "v" || out.ClientContext.Env["platform"] != "linux" {
			t.Errorf("client_context: %+v", out.ClientContext)
		}
		if out.TraceID == nil || *out.TraceID != inv.TraceID {
			t.Errorf("_X_AMZN_TRACE_ID = %v", out.TraceID)
		}
		if out.ExecEnv != "AWS_Lambda_"+rt.Name {
			t.Errorf("AWS_EXECUTION_ENV = %q", out.ExecEnv)
		}
		if len(out.SysPath) != 1 || out.SysPath[0] != f.task {
			t.Errorf("sys.path starts with %q, want %q", out.SysPath, f.task)
		}
		if !slices.Equal(out.Argv, []string{"ctx.handler"}) {
			t.Errorf("argv = %q", out.Argv)
		}
		checkRemaining(t, out.Remaining, timeout)

		// Without client context and identity: None, and an identity whose
		// fields are None, as in Lambda; no trace id left over.
		var bare struct {
			ClientContext any `json:"client_context"`
			Identity      struct {
				ID *string `json:"cognito_identity_id"`
			} `json:"identity"`
			TraceID *string `json:"trace_id"`
		}
		f.ok(`{}`, &bare)
		if bare.ClientContext != nil || bare.Identity.ID != nil || bare.TraceID != nil {
			t.Errorf("bare context: %+v", bare)
		}
	})
}

// checkRemaining wants two readings of the remaining time, 200 ms apart,
// to be plausible for a deadline timeout after the invoke.
func checkRemaining(t *testing.T, r []int64, timeout time.Duration) {
	t.Helper()
	if len(r) != 2 {
		t.Fatalf("remaining = %v", r)
	}
	max := timeout.Milliseconds()
	if r[0] <= 0 || r[0] > max || r[0] < max-3000 {
		t.Errorf("remaining first = %d ms, want within (%d, %d]", r[0], max-3000, max)
	}
	if d := r[0] - r[1]; d < 190 || d > 2000 {
		t.Errorf("remaining %v: decreased by %d ms over a 200 ms sleep", r, d)
	}
}

func TestPythonErrors(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "fail.handler")
		f.mustInit()
		doc := f.fails(`{"what":"the thing"}`, "BoomError")
		if doc.ErrorMessage != "boom: the thing" {
			t.Errorf("errorMessage = %q", doc.ErrorMessage)
		}
		if doc.RequestID == nil {
			t.Error("no requestId")
		}
		// The trace starts in the function's code, not in the runtime.
		if len(doc.StackTrace) != 2 {
			t.Fatalf("stackTrace = %q, want the handler and explode frames", doc.StackTrace)
		}
		contains(t, "stackTrace[0]", doc.StackTrace[0], `File "`+filepath.Join(f.task, "fail.py")+`"`, "in handler\n", "explode(")
		contains(t, "stackTrace[1]", doc.StackTrace[1], "in explode\n", `raise BoomError("boom: " + what)`)
		f.output("[ERROR] BoomError: boom: the thing\nTraceback (most recent call last):\n")
		// The sandbox survives a function error.
		f.fails(`{}`, "BoomError")
	})
}

func TestPythonResults(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "fail.unserializable")
		f.mustInit()
		doc := f.fails(`{}`, "Runtime.MarshalError")
		contains(t, "errorMessage", doc.ErrorMessage, "Unable to marshal response:", "set")
		if len(doc.StackTrace) != 0 {
			t.Errorf("stackTrace = %q", doc.StackTrace)
		}

		f = start(t, rt, "fail.raw_bytes")
		f.mustInit()
		resp, _, err := f.invoke(`{}`, 5*time.Second)
		if err != nil || resp.FunctionError != "" || string(resp.Payload) != "not json at all" {
			t.Errorf("bytes result: %v %q %q", err, resp.FunctionError, resp.Payload)
		}

		f = start(t, rt, "fail.unicode")
		f.mustInit()
		resp, _, err = f.invoke(`{}`, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"text": "h\u00e9llo \u2603"}` // escaped before 3.12
		if versionAtLeast(rt.Version, 3, 12) {
			want = `{"text": "héllo ☃"}`
		}
		if string(resp.Payload) != want {
			t.Errorf("unicode result %s, want %s", resp.Payload, want)
		}
	})
}

func TestPythonInitErrors(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		for _, c := range []struct {
			handler, typ, message string
		}{
			{"no_such_module.handler", "Runtime.ImportModuleError", "Unable to import module 'no_such_module': No module named 'no_such_module'"},
			{"bad_dependency.handler", "Runtime.ImportModuleError", "Unable to import module 'bad_dependency': No module named 'ember_no_such_package_xyz'"},
			{"echo.no_such_function", "Runtime.HandlerNotFound", "Handler 'no_such_function' missing on module 'echo'"},
			{"syntax_error.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntax_error':"},
			{"nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot':"},
			{"sys.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module"},
			{"init_raise.handler", "ValueError", "bad configuration at import"},
		} {
			t.Run(c.handler, func(t *testing.T) {
				t.Parallel()
				f := start(t, rt, c.handler)
				fe, doc := f.initFails(c.typ)
				if !strings.HasPrefix(fe.Message, c.message) {
					t.Errorf("message %q, want %q...", fe.Message, c.message)
				}
				if doc.RequestID == nil || *doc.RequestID != "" {
					t.Errorf("requestId %v, want \"\"", doc.RequestID)
				}
				if f.err == nil {
					t.Error("the runtime exited with status 0")
				}
				f.output("[ERROR] " + c.typ + ": ")
				switch c.typ {
				case "ValueError":
					// The module's frames, not the runtime's or importlib's.
					if len(doc.StackTrace) != 2 {
						t.Fatalf("stackTrace = %q", doc.StackTrace)
					}
					contains(t, "stackTrace", doc.StackTrace[0], "init_raise.py", "<module>")
					contains(t, "stackTrace", doc.StackTrace[1], "in helper")
				case "Runtime.UserCodeSyntaxError":
					if len(doc.StackTrace) != 1 {
						t.Fatalf("stackTrace = %q", doc.StackTrace)
					}
					contains(t, "stackTrace", doc.StackTrace[0], "syntax_error.py", "Line 1")
				}
			})
		}
	})
}

func TestPythonPackageHandler(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		for _, h := range []string{"pkg/mod.handler", "pkg.mod.handler"} {
			f := start(t, rt, h)
			f.mustInit()
			var out map[string]string
			f.ok(`{}`, &out)
			if out["module"] != "pkg.mod" {
				t.Errorf("%s: %v", h, out)
			}
		}
	})
}

func TestPythonExit(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		// sys.exit in a handler is not an error the runtime reports: the
		// process ends (the platform's Runtime.ExitError).
		f := start(t, rt, "sysexit.handler")
		f.mustInit()
		_, _, err := f.invoke(`{}`, 10*time.Second)
		if err == nil {
			t.Fatal("invoke succeeded")
		}
		f.waitExit()
		var ee *exec.ExitError
		if !errors.As(f.err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exit: %v, want status 3", f.err)
		}
	})
}

func TestPythonLogLevel(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "echo.handler", "AWS_LAMBDA_LOG_LEVEL=ERROR")
		f.mustInit()
		f.ok(`{}`, nil)
		if out := f.output("echo print 1\n"); strings.Contains(out, "echo warning") {
			t.Errorf("a warning was logged at level ERROR:\n%s", out)
		}
	})
}

// ---------------------------------------------------------------------------
// Node.js

func TestNodeCommonJS(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "cjs.handler")
		f.mustInit()
		var out struct {
			Event map[string]any `json:"event"`
			Calls int            `json:"calls"`
			PID   int            `json:"pid"`
			Kind  string         `json:"kind"`
		}
		inv := f.ok(`{"hello":"world"}`, &out)
		if out.Event["hello"] != "world" || out.Calls != 1 || out.PID != f.cmd.Process.Pid || out.Kind != "function" {
			t.Errorf("first: %+v", out)
		}
		f.ok(`{}`, &out)
		if out.Calls != 2 {
			t.Errorf("second: %+v", out)
		}
		log := f.output("\tundefined\tINFO\tmodule cjs loaded\n", "\t"+inv.RequestID+"\tINFO\tcjs handler 1\n", "\tINFO\tcjs handler 2\n")
		if n := strings.Count(log, "module cjs loaded"); n != 1 {
			t.Errorf("module loaded %d times", n)
		}
	})
}

func TestNodeESM(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "esm.handler")
		f.mustInit()
		var out struct {
			ESM     bool           `json:"esm"`
			Started string         `json:"started"`
			Event   map[string]any `json:"event"`
		}
		f.ok(`{"x":1}`, &out)
		if !out.ESM || out.Started != "top-level await ok" || out.Event["x"] != 1.0 {
			t.Errorf("esm: %+v", out)
		}

		f = start(t, rt, "typemodule/app.handler")
		f.mustInit()
		var tm map[string]bool
		f.ok(`{}`, &tm)
		if !tm["typeModule"] || !tm["isESM"] {
			t.Errorf(`.js with "type": "module": %v`, tm)
		}

		f = start(t, rt, "lib/deep.handler")
		f.mustInit()
		var deep map[string]string
		f.ok(`{}`, &deep)
		if deep["where"] != "lib/deep.cjs" {
			t.Errorf(".cjs in a directory: %v", deep)
		}

		f = start(t, rt, "cjs.nested.deeper.fn")
		f.mustInit()
		var s string
		f.ok(`{}`, &s)
		if s != "nested ok" {
			t.Errorf("nested export: %q", s)
		}
	})
}

func TestNodeContext(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "cjs.context")
		f.mustInit()
		var out struct {
			RequestID     string         `json:"awsRequestId"`
			FunctionName  string         `json:"functionName"`
			Version       string         `json:"functionVersion"`
			ARN           string         `json:"invokedFunctionArn"`
			Memory        string         `json:"memoryLimitInMB"`
			LogGroup      string         `json:"logGroupName"`
			LogStream     string         `json:"logStreamName"`
			Waits         bool           `json:"callbackWaitsForEmptyEventLoop"`
			Identity      map[string]any `json:"identity"`
			ClientContext map[string]any `json:"clientContext"`
			Remaining     []int64        `json:"remaining"`
			TraceID       string         `json:"traceId"`
			ExecEnv       string         `json:"executionEnv"`
			Argv          []string       `json:"argv"`
		}
		const timeout = 6 * time.Second
		resp, inv, err := f.invoke(`{}`, timeout, func(inv *runtimeapi.Invocation) {
			inv.ClientContext = `{"client":{"installation_id":"inst-1"},"custom":{"k":"v"},"env":{"platform":"linux"}}`
			inv.CognitoIdentity = `{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`
			inv.TraceID = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
		})
		if err != nil || resp.FunctionError != "" {
			t.Fatalf("invoke: %v %s", err, resp.Payload)
		}
		if err := json.Unmarshal(resp.Payload, &out); err != nil {
			t.Fatal(err)
		}
		if out.RequestID != inv.RequestID || out.FunctionName != testFunction || out.Version != "$LATEST" ||
			out.ARN != testARN || out.Memory != "256" || out.LogGroup != "/aws/lambda/"+testFunction ||
			out.LogStream != testStream || !out.Waits {
			t.Errorf("context: %+v", out)
		}
		if out.Identity["cognitoIdentityId"] != "id-1" || out.Identity["cognitoIdentityPoolId"] != "pool-1" {
			t.Errorf("identity: %v", out.Identity)
		}
		if fmt.Sprint(out.ClientContext["client"]) != "map[installation_id:inst-1]" || fmt.Sprint(out.ClientContext["custom"]) != "map[k:v]" {
			t.Errorf("clientContext: %v", out.ClientContext)
		}
		if out.TraceID != inv.TraceID || out.ExecEnv != "AWS_Lambda_"+rt.Name || !slices.Equal(out.Argv, []string{"cjs.context"}) {
			t.Errorf("trace %q, exec env %q, argv %q", out.TraceID, out.ExecEnv, out.Argv)
		}
		checkRemaining(t, out.Remaining, timeout)
	})
}

func TestNodeCallbacks(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		if versionAtLeast(rt.Version, 24, 0) {
			f := start(t, rt, "callback.handler")
			f.initFails("Runtime.CallbackHandlerDeprecated")
			return
		}
		f := start(t, rt, "callback.handler")
		f.mustInit()
		var out map[string]any
		f.ok(`{"n":1}`, &out)
		if out["via"] != "callback" {
			t.Errorf("callback: %v", out)
		}
		f.ok(`{"n":2}`, &out) // and again, in the same process
		if fmt.Sprint(out["event"]) != "map[n:2]" {
			t.Errorf("callback, second: %v", out)
		}

		f = start(t, rt, "callback.error")
		f.mustInit()
		doc := f.fails(`{}`, "RangeError")
		if doc.ErrorMessage != "callback error" || len(doc.Trace) < 2 || doc.Trace[0] != "RangeError: callback error" {
			t.Errorf("callback error: %+v", doc)
		}

		// callbackWaitsForEmptyEventLoop: the answer waits for a pending
		// 1 s timer, unless it is set to false.
		f = start(t, rt, "callback.waits")
		f.mustInit()
		for _, wait := range []bool{true, false} {
			begin := time.Now()
			f.ok(fmt.Sprintf(`{"wait":%v}`, wait), nil)
			took := time.Since(begin)
			if wait && took < 950*time.Millisecond || !wait && took > 800*time.Millisecond {
				t.Errorf("callbackWaitsForEmptyEventLoop=%v: answered after %v", wait, took)
			}
		}

		f = start(t, rt, "callback.succeed")
		f.mustInit()
		f.ok(`{}`, &out)
		if out["via"] != "context.succeed" {
			t.Errorf("context.succeed: %v", out)
		}
	})
}

func TestNodeErrors(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "cjs.throws")
		f.mustInit()
		doc := f.fails(`{}`, "TypeError")
		if doc.ErrorMessage != "bad thing" || len(doc.Trace) < 2 || doc.Trace[0] != "TypeError: bad thing" {
			t.Errorf("thrown error: %+v", doc)
		}
		contains(t, "trace", doc.Trace[1], filepath.Join(f.task, "cjs.js"))
		f.output("\tERROR\tInvoke Error \t{\"errorType\":\"TypeError\",\"errorMessage\":\"bad thing\"")
		f.fails(`{}`, "TypeError") // the sandbox survives

		f = start(t, rt, "cjs.throwsString")
		f.mustInit()
		doc = f.fails(`{}`, "string")
		if doc.ErrorMessage != "plain string" || len(doc.Trace) != 0 {
			t.Errorf("thrown string: %+v", doc)
		}

		f = start(t, rt, "cjs.unserializable")
		f.mustInit()
		doc = f.fails(`{}`, "Error")
		if doc.ErrorMessage != "Unable to stringify response body" {
			t.Errorf("circular result: %+v", doc)
		}
	})
}

func TestNodeResults(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		for _, h := range []string{"cjs.sync", "cjs.undefinedResult"} {
			f := start(t, rt, h)
			f.mustInit()
			resp, _, err := f.invoke(`{}`, 5*time.Second)
			if err != nil || resp.FunctionError != "" || string(resp.Payload) != "null" {
				t.Errorf("%s: %v %q %s", h, err, resp.FunctionError, resp.Payload)
			}
		}

		f := start(t, rt, "cjs.neverSettles")
		f.mustInit()
		f.fails(`{}`, "Runtime.NodeJsExit")
	})
}

func TestNodeUnhandledRejection(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		f := start(t, rt, "cjs.unhandledRejection")
		f.mustInit()
		doc := f.fails(`{}`, "Runtime.UnhandledPromiseRejection")
		if doc.ErrorMessage != "Error: rejected later" {
			t.Errorf("unhandled rejection: %+v", doc)
		}
		f.waitExit()
		var ee *exec.ExitError
		if !errors.As(f.err, &ee) || ee.ExitCode() != 128 {
			t.Errorf("exit: %v, want status 128", f.err)
		}
	})
}

func TestNodeInitErrors(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		for _, c := range []struct {
			handler, typ, message string
		}{
			{"nosuch.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'nosuch'"},
			{"baddep.handler", "Runtime.ImportModuleError", "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'ember-no-such-package-xyz'"},
			{"cjs.missing", "Runtime.HandlerNotFound", "cjs.missing is undefined or not exported"},
			{"cjs.notAFunction", "Runtime.HandlerNotFound", "cjs.notAFunction is not a function"},
			{"syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "},
			{"nodot", "Runtime.MalformedHandlerName", "Bad handler"},
			{"../escape.handler", "Runtime.MalformedHandlerName", "'../escape.handler' is not a valid handler name."},
			{"initthrow.handler", "Error", "init went wrong"},
		} {
			t.Run(c.handler, func(t *testing.T) {
				t.Parallel()
				f := start(t, rt, c.handler)
				fe, doc := f.initFails(c.typ)
				if !strings.HasPrefix(fe.Message, c.message) {
					t.Errorf("message %q, want %q...", fe.Message, c.message)
				}
				if len(doc.Trace) == 0 {
					t.Error("no trace")
				}
				var ee *exec.ExitError
				if !errors.As(f.err, &ee) || ee.ExitCode() != 129 {
					t.Errorf("exit: %v, want status 129", f.err)
				}
				f.output("\tundefined\tERROR\tUncaught Exception \t{\"errorType\":\"" + c.typ + "\"")
			})
		}
	})
}

// ---------------------------------------------------------------------------
// The clients' own unit tests, in their own languages.

func TestPythonUnitTests(t *testing.T) {
	forEach(t, FamilyPython, func(t *testing.T, rt Runtime) {
		cmd := exec.Command(rt.Interpreter, "-m", "unittest", "discover", "-s", "python", "-p", "test_*.py", "-v")
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
	})
}

func TestNodeUnitTests(t *testing.T) {
	forEach(t, FamilyNode, func(t *testing.T, rt Runtime) {
		cmd := exec.Command(rt.Interpreter, "--test", filepath.Join("node", "index.test.mjs"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", out)
	})
}
