package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/emberfn/ember/internal/worker"
	"github.com/emberfn/ember/internal/workermanager"
)

// builtFunction is a test function built once per test binary.
type builtFunction struct {
	once sync.Once
	zip  []byte
	err  error
}

var builtFunctions sync.Map // name -> *builtFunction

// buildOnce returns the zip that build makes, building it once per name.
func buildOnce(t *testing.T, name string, build func() ([]byte, error)) []byte {
	t.Helper()
	v, _ := builtFunctions.LoadOrStore(name, &builtFunction{})
	b := v.(*builtFunction)
	b.once.Do(func() { b.zip, b.err = build() })
	if b.err != nil {
		t.Fatalf("building the %s function: %v", name, b.err)
	}
	return b.zip
}

// goBuildZip builds target (run in workDir) as a static binary and zips it
// as a provided.al2023 package's bootstrap.
func goBuildZip(t *testing.T, workDir, target string) ([]byte, error) {
	out, err := os.MkdirTemp("", "ember-fn-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	bin := filepath.Join(out, "bootstrap")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, target)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, msg)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return makeZip(t, zipEntry{name: "bootstrap", mode: 0o755, body: string(b)}), nil
}

// goSourceZip builds a one-file Go program of the standard library only.
func goSourceZip(t *testing.T, name, source string) []byte {
	return buildOnce(t, name, func() ([]byte, error) {
		dir, err := os.MkdirTemp("", "ember-"+name+"-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		for file, body := range map[string]string{"main.go": source, "go.mod": "module " + name + "\n\ngo 1.22\n"} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644); err != nil {
				return nil, err
			}
		}
		return goBuildZip(t, dir, ".")
	})
}

// probe is the zip of testdata/functions/probe, a real aws-lambda-go
// function.
func probe(t *testing.T) []byte {
	return buildOnce(t, "probe", func() ([]byte, error) { return goBuildZip(t, ".", "./testdata/functions/probe") })
}

type dataPlane struct {
	manager *workermanager.Manager
	worker  *worker.Worker
}

// startInvokeEmber starts Ember for invoke tests and returns its client.
func startInvokeEmber(t *testing.T, edit ...func(*serveConfig)) (*emberServer, *lambda.Client, *dataPlane) {
	t.Helper()
	dp := &dataPlane{}
	edit = append(edit, func(c *serveConfig) {
		c.onDataPlane = func(m *workermanager.Manager, w *worker.Worker) { dp.manager, dp.worker = m, w }
	})
	srv := startEmber(t, t.TempDir(), edit...)
	return srv, srv.client(srv.creds("default")), dp
}

func createProbe(t *testing.T, c *lambda.Client, name string, edit func(*lambda.CreateFunctionInput)) {
	t.Helper()
	in := createInput(name, probe(t))
	if edit != nil {
		edit(in)
	}
	if _, err := c.CreateFunction(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func invokeJSON(t *testing.T, c *lambda.Client, name string, payload any, tail bool) (*lambda.InvokeOutput, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(payload)
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: b}
	if tail {
		in.LogType = types.LogTypeTail
	}
	out, err := c.Invoke(context.Background(), in)
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	var m map[string]any
	_ = json.Unmarshal(out.Payload, &m)
	return out, m
}

func logOf(t *testing.T, out *lambda.InvokeOutput) string {
	t.Helper()
	if out.LogResult == nil {
		t.Fatal("no X-Amz-Log-Result")
	}
	b, err := base64.StdEncoding.DecodeString(*out.LogResult)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawCapture is an HTTP client for the SDK that keeps the status and
// headers of the last response as they came over the wire.
type rawCapture struct {
	inner  lambda.HTTPClient
	mu     sync.Mutex
	status int
	header http.Header
}

func (r *rawCapture) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.inner.Do(req)
	if err == nil {
		r.mu.Lock()
		r.status, r.header = resp.StatusCode, resp.Header.Clone()
		r.mu.Unlock()
	}
	return resp, err
}

// rawResponse is what the wire said of one invoke.
type rawResponse struct {
	status int
	header http.Header
}

// invokeRaw invokes through the SDK and also returns the raw response's
// status and headers.
func invokeRaw(t *testing.T, c *lambda.Client, in *lambda.InvokeInput) (*lambda.InvokeOutput, rawResponse, error) {
	t.Helper()
	rc := &rawCapture{}
	out, err := c.Invoke(context.Background(), in, func(o *lambda.Options) {
		rc.inner = o.HTTPClient
		if rc.inner == nil {
			rc.inner = http.DefaultClient
		}
		o.HTTPClient = rc
	})
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.header == nil {
		t.Fatalf("invoke %s: no response: %v", aws.ToString(in.FunctionName), err)
	}
	return out, rawResponse{rc.status, rc.header}, err
}

// uuidV4RE is a random (version 4) UUID, as Lambda's request ids.
var uuidV4RE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// invokeExact invokes name with payload and asserts the exact status and
// headers of a synchronous invoke of $LATEST, as Lambda answers it: 200
// (also for a function error), Content-Type application/json,
// X-Amz-Executed-Version $LATEST, X-Amz-Function-Error "Unhandled" exactly
// when functionError, X-Amz-Log-Result exactly when tail, and a request id
// (a UUID) in X-Amzn-RequestId. It returns the output and the request id.
func invokeExact(t *testing.T, c *lambda.Client, name string, payload any, tail, functionError bool) (*lambda.InvokeOutput, string) {
	t.Helper()
	b, _ := json.Marshal(payload)
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: b}
	if tail {
		in.LogType = types.LogTypeTail
	}
	out, raw, err := invokeRaw(t, c, in)
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	h := raw.header
	wantFE := ""
	if functionError {
		wantFE = "Unhandled"
	}
	rid := h.Get("X-Amzn-RequestId")
	sdkRID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	switch {
	case raw.status != 200 || out.StatusCode != 200:
		t.Fatalf("invoke %s: status %d (SDK %d), want 200: %.300s", name, raw.status, out.StatusCode, out.Payload)
	case h.Get("Content-Type") != "application/json":
		t.Fatalf("invoke %s: Content-Type %q", name, h.Get("Content-Type"))
	case h.Get("X-Amz-Executed-Version") != "$LATEST" || aws.ToString(out.ExecutedVersion) != "$LATEST":
		t.Fatalf("invoke %s: X-Amz-Executed-Version %q", name, h.Get("X-Amz-Executed-Version"))
	case h.Get("X-Amz-Function-Error") != wantFE || aws.ToString(out.FunctionError) != wantFE || (wantFE == "") != (h.Values("X-Amz-Function-Error") == nil):
		t.Fatalf("invoke %s: X-Amz-Function-Error %q, want %q: %.300s", name, h.Values("X-Amz-Function-Error"), wantFE, out.Payload)
	case (h.Values("X-Amz-Log-Result") != nil) != tail || (out.LogResult != nil) != tail:
		t.Fatalf("invoke %s: X-Amz-Log-Result %q with tail %v", name, h.Values("X-Amz-Log-Result"), tail)
	case !uuidV4RE.MatchString(rid) || len(h.Values("X-Amzn-RequestId")) != 1 || sdkRID != rid:
		t.Fatalf("invoke %s: X-Amzn-RequestId %q (SDK %q)", name, h.Values("X-Amzn-RequestId"), sdkRID)
	}
	return out, rid
}

// jsonIs asserts that body is the JSON document want (keys in any order).
func jsonIs(t *testing.T, what string, body []byte, want string) {
	t.Helper()
	var got, w any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: body %.300q is not JSON: %v", what, body, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("%s: body\n  %s\nwant\n  %s", what, body, want)
	}
}

// errorBody is a function error's body as Lambda gives it.
func errorBody(message, typ string) string {
	b, _ := json.Marshal(map[string]string{"errorMessage": message, "errorType": typ})
	return string(b)
}

func TestInvokeColdThenWarm(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "probe", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"GREETING": "hello"}}
		in.Timeout = aws.Int32(7)
	})
	// Echo, cold: the exact response.
	out, rid := invokeExact(t, c, "probe", json.RawMessage(`{"hello":"world","n":[1,2,3]}`), true, false)
	if string(out.Payload) != `{"hello":"world","n":[1,2,3]}` {
		t.Fatalf("echo: %s", out.Payload)
	}
	log := logOf(t, out)
	for _, want := range []string{"START RequestId: " + rid + " Version: $LATEST", "END RequestId: " + rid,
		"REPORT RequestId: " + rid + "\tDuration: ", "\tBilled Duration: ", "\tMemory Size: 128 MB\tMax Memory Used: ", "\tInit Duration: "} {
		if !strings.Contains(log, want) {
			t.Fatalf("cold log lacks %q:\n%s", want, log)
		}
	}

	// Warm: the same sandbox (same process, started once) serves again,
	// and the environment is Lambda's.
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"}}`))
	before := time.Now()
	o1, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("probe"),
		Payload: []byte(`{"mode":"env"}`), ClientContext: aws.String(cc), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logOf(t, o1), "Init Duration") {
		t.Fatalf("a warm invoke reported an init:\n%s", logOf(t, o1))
	}
	var e1 map[string]any
	_ = json.Unmarshal(o1.Payload, &e1)
	_, e2 := invokeJSON(t, c, "probe", map[string]any{"mode": "env"}, false)
	if e1["pid"] != e2["pid"] || e1["started"] != e2["started"] || e2["invocations"].(float64) != 3 {
		t.Fatalf("second invoke did not reuse the sandbox: %v %v / %v %v / %v", e1["pid"], e2["pid"], e1["started"], e2["started"], e2["invocations"])
	}
	if counts := dp.manager.Counts(); counts[workermanager.Idle] != 1 || len(counts) != 1 {
		t.Fatalf("sandbox table %v, want one idle", counts)
	}
	rid1, _ := awsmiddleware.GetRequestIDMetadata(o1.ResultMetadata)
	env := e1["env"].(map[string]any)
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "probe", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "LAMBDA_TASK_ROOT": "/var/task", "AWS_REGION": "us-east-1",
		"TZ": ":UTC", "_HANDLER": "bootstrap", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "GREETING": "hello",
		"AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/probe", "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
		"GOMAXPROCS": "1", // its CPU share: 128 of the 1,769 MB of one CPU
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %v, want %q", k, env[k], v)
		}
	}
	if e1["gomaxprocs"] != 1.0 {
		t.Errorf("the Go runtime's GOMAXPROCS is %v, want 1", e1["gomaxprocs"])
	}
	// A function that sets GOMAXPROCS keeps its own.
	createProbe(t, c, "own-procs", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"GOMAXPROCS": "3"}}
	})
	if _, own := invokeJSON(t, c, "own-procs", map[string]any{"mode": "env"}, false); own["gomaxprocs"] != 3.0 {
		t.Errorf("a function's own GOMAXPROCS=3 gave %v", own["gomaxprocs"])
	}
	if !strings.HasPrefix(env["AWS_LAMBDA_LOG_STREAM_NAME"].(string), time.Now().UTC().Format("2006/01/02")+"/[$LATEST]") {
		t.Errorf("log stream name %v", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	if e1["request_id"] != rid1 || !strings.HasSuffix(e1["function_arn"].(string), ":function:probe") {
		t.Errorf("context: request %v (header %s), arn %v", e1["request_id"], rid1, e1["function_arn"])
	}
	if e1["client_context"] != `{"k":"v"}` {
		t.Errorf("client context %v", e1["client_context"])
	}
	dl := time.UnixMilli(int64(e1["deadline_ms"].(float64)))
	if dl.Before(before.Add(6*time.Second)) || dl.After(time.Now().Add(7*time.Second)) {
		t.Errorf("deadline %v not about 7 s after %v", dl, before)
	}
}

func TestInvokeFunctionErrors(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "probe", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })

	// An error returned by the handler: the runtime's error document as
	// it posted it (aws-lambda-go: the Go type, no stack trace).
	out, _ := invokeExact(t, c, "probe", map[string]any{"mode": "error", "label": "x1"}, false, true)
	jsonIs(t, "error", out.Payload, errorBody("something went wrong: x1", "errorString"))

	// A panic: aws-lambda-go reports it with the panic value's type and a
	// stack trace of {path, line, label} frames, then exits.
	out, _ = invokeExact(t, c, "probe", map[string]any{"mode": "panic", "label": "p1"}, false, true)
	var panicked struct {
		ErrorMessage string           `json:"errorMessage"`
		ErrorType    string           `json:"errorType"`
		StackTrace   []map[string]any `json:"stackTrace"`
	}
	var keys map[string]any
	if err := json.Unmarshal(out.Payload, &panicked); err != nil || json.Unmarshal(out.Payload, &keys) != nil || len(keys) != 3 ||
		panicked.ErrorMessage != "probe panics: p1" || panicked.ErrorType != "string" || len(panicked.StackTrace) == 0 {
		t.Fatalf("panic: %s", out.Payload)
	}
	handler := false
	for _, f := range panicked.StackTrace {
		path, _ := f["path"].(string)
		line, _ := f["line"].(float64)
		label, _ := f["label"].(string)
		if len(f) != 3 || path == "" || line <= 0 || label == "" {
			t.Fatalf("panic: stack frame %v of %s", f, out.Payload)
		}
		handler = handler || (label == "handle" && strings.HasSuffix(path, "probe/main.go"))
	}
	if !handler {
		t.Fatalf("panic: the handler is not in the stack trace: %s", out.Payload)
	}

	// A timeout: Sandbox.Timedout, in Lambda's words.
	start := time.Now()
	out, rid := invokeExact(t, c, "probe", map[string]any{"mode": "sleep", "n": 5000}, true, true)
	took := time.Since(start)
	jsonIs(t, "timeout", out.Payload, errorBody("RequestId: "+rid+" Error: Task timed out after 1.00 seconds", "Sandbox.Timedout"))
	if took > 3*time.Second {
		t.Fatalf("a 1 s timeout took %v", took)
	}
	log := logOf(t, out)
	for _, want := range []string{" " + rid + " Task timed out after 1.00 seconds\n", "END RequestId: " + rid + "\n", "\tStatus: timeout\n"} {
		if !strings.Contains(log, want) {
			t.Fatalf("timeout log lacks %q:\n%s", want, log)
		}
	}

	// The runtime exits during an invocation: Runtime.ExitError.
	out, rid = invokeExact(t, c, "probe", map[string]any{"mode": "exit"}, true, true)
	jsonIs(t, "exit", out.Payload, errorBody("RequestId: "+rid+" Error: Runtime exited with error: exit status 3", "Runtime.ExitError"))
	if log := logOf(t, out); !strings.Contains(log, "probe exits now") || !strings.Contains(log, "\tStatus: error\tError Type: Runtime.ExitError\n") {
		t.Fatalf("the last words of a dying runtime are lost:\n%s", log)
	}
	// After all that, it still works, and nothing failed stays around.
	out, _ = invokeExact(t, c, "probe", map[string]any{"a": 1}, false, false)
	if string(out.Payload) != `{"a":1}` {
		t.Fatalf("after failures: %s", out.Payload)
	}
	waitFor(t, "failed sandboxes to be destroyed", func() bool { return dp.worker.Sandboxes() == 1 })
}

func TestInvokeOutOfMemory(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "hog", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(128) })
	// Killed by the cgroup: the caller gets Runtime.ExitError with the
	// signal, the REPORT line says Runtime.OutOfMemory (as Lambda's).
	out, rid := invokeExact(t, c, "hog", map[string]any{"mode": "alloc", "n": 400}, true, true)
	jsonIs(t, "oom", out.Payload, errorBody("RequestId: "+rid+" Error: Runtime exited with error: signal: killed", "Runtime.ExitError"))
	if log := logOf(t, out); !strings.Contains(log, "\tStatus: error\tError Type: Runtime.OutOfMemory\n") ||
		!strings.Contains(log, "REPORT RequestId: "+rid+"\t") {
		t.Fatalf("oom log:\n%s", log)
	}
	// A modest allocation in a fresh sandbox works.
	out, _ = invokeExact(t, c, "hog", map[string]any{"mode": "alloc", "n": 20}, true, false)
	jsonIs(t, "small alloc", out.Payload, `{"allocated_mb":20}`)
	if !strings.Contains(logOf(t, out), "Max Memory Used: ") {
		t.Fatal("no memory report")
	}
	waitFor(t, "the killed sandbox to go", func() bool { return dp.worker.Sandboxes() == 1 })
}

func TestInvokeInitFailures(t *testing.T) {
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.InitTimeout = 2 * time.Second })
	createProbe(t, c, "dies", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"INIT_MODE": "exit"}}
	})
	createProbe(t, c, "hangs", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"INIT_MODE": "hang"}}
	})
	// Exit during init: Runtime.ExitError; INIT_REPORT says error.
	out, rid := invokeExact(t, c, "dies", map[string]any{}, true, true)
	jsonIs(t, "exit during init", out.Payload, errorBody("RequestId: "+rid+" Error: Runtime exited with error: exit status 1", "Runtime.ExitError"))
	log := logOf(t, out)
	if !strings.Contains(log, "probe fails its init\n") ||
		!regexp.MustCompile(`(?m)^INIT_REPORT Init Duration: [0-9]+\.[0-9]{2} ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError$`).MatchString(log) {
		t.Fatalf("init log:\n%s", log)
	}
	// Never calls /next: Sandbox.Timedout at the init limit; INIT_REPORT
	// says timeout (Lambda's "Status: timeout", with no error type).
	start := time.Now()
	out, rid = invokeExact(t, c, "hangs", map[string]any{}, true, true)
	jsonIs(t, "never calls next", out.Payload, errorBody("RequestId: "+rid+" Error: Init timed out after 2.00 seconds", "Sandbox.Timedout"))
	if took := time.Since(start); took < 2*time.Second || took > 5*time.Second {
		t.Fatalf("init timeout of 2 s took %v", took)
	}
	log = logOf(t, out)
	if !strings.Contains(log, "probe never asks for work\n") ||
		!regexp.MustCompile(`(?m)^INIT_REPORT Init Duration: 2[0-9]{3}\.[0-9]{2} ms\tPhase: init\tStatus: timeout$`).MatchString(log) {
		t.Fatalf("init timeout log:\n%s", log)
	}
	if n := dp.worker.Sandboxes(); n != 0 {
		t.Fatalf("%d sandboxes left after init failures", n)
	}
	if counts := dp.manager.Counts(); len(counts) != 0 {
		t.Fatalf("sandbox table after init failures: %v", counts)
	}
}

func TestInvokeLogs(t *testing.T) {
	_, c, _ := startInvokeEmber(t)
	createProbe(t, c, "talker", nil)
	out, rid := invokeExact(t, c, "talker", map[string]any{"mode": "log", "n": 3, "label": "abc"}, true, false)
	jsonIs(t, "log", out.Payload, `"logged"`)
	log := logOf(t, out)
	for _, want := range []string{"START RequestId: " + rid + " Version: $LATEST\n", "log line 0 of abc\n", "log line 2 of abc\n",
		"to stderr abc\n", "END RequestId: " + rid + "\n", "REPORT RequestId: " + rid + "\t"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	out, _ = invokeExact(t, c, "talker", map[string]any{"mode": "log", "n": 2000, "label": "flood"}, true, false)
	log = logOf(t, out)
	if len(log) > 4096 || !strings.Contains(log, "REPORT RequestId") || strings.Contains(log, "log line 0 of flood") {
		t.Fatalf("tail of a long log: %d bytes:\n%s", len(log), log)
	}
	// The tail is this invocation's log only, from its START: nothing of
	// the invocations before it in the same sandbox.
	out, rid = invokeExact(t, c, "talker", map[string]any{"mode": "log", "n": 1, "label": "third"}, true, false)
	log = logOf(t, out)
	if !strings.HasPrefix(log, "START RequestId: "+rid+" Version: $LATEST\n") || !strings.Contains(log, "log line 0 of third\n") ||
		strings.Contains(log, "flood") || strings.Contains(log, "abc") || strings.Count(log, "START RequestId") != 1 {
		t.Fatalf("tail of the third invocation:\n%s", log)
	}
	out, _ = invokeExact(t, c, "talker", map[string]any{"mode": "echo"}, false, false)
	jsonIs(t, "echo", out.Payload, `{"mode":"echo"}`)
}

func TestSixteenConcurrentInvokes(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "par", nil)
	var wg sync.WaitGroup
	pids := make([]any, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("par"),
				Payload: []byte(`{"mode":"sleep","n":500}`)})
			if err != nil {
				errs[i] = err
				return
			}
			var m map[string]any
			_ = json.Unmarshal(out.Payload, &m)
			pids[i] = m["started"]
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("invoke %d: %v", i, err)
		}
	}
	distinct := map[any]bool{}
	for _, p := range pids {
		distinct[p] = true
	}
	if len(distinct) != 16 || dp.worker.Sandboxes() != 16 {
		t.Fatalf("16 overlapping invokes ran in %d sandboxes (%d live)", len(distinct), dp.worker.Sandboxes())
	}
	// Different functions never block each other: a slow one does not
	// hold up a fast one.
	createProbe(t, c, "fast", nil)
	createProbe(t, c, "slow", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		invokeJSON(t, c, "slow", map[string]any{"mode": "sleep", "n": 2000}, false)
	}()
	waitFor(t, "the slow function to run", func() bool { return dp.manager.Counts()[workermanager.Busy] == 1 })
	start := time.Now()
	invokeJSON(t, c, "fast", map[string]any{"x": 1}, false)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("fast function waited %v behind a slow one", took)
	}
	<-done
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	pollUntil(t, what, 30*time.Second, 10*time.Millisecond, cond)
}

func TestInvokeRequestErrors(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := startInvokeEmber(t)
	createProbe(t, c, "probe", nil)
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Qualifier: aws.String("3")})
	apiErr(t, err, "ResourceNotFoundException", 404)
	// (Event invokes are accepted since the async issue: async_test.go.)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), InvocationType: types.InvocationType("Bogus")})
	apiErr(t, err, "ValidationException", 400)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: []byte(`{not json`)})
	apiErr(t, err, "InvalidRequestContentException", 400)
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), ClientContext: aws.String("%%%")})
	apiErr(t, err, "InvalidParameterValueException", 400)
	big := make([]byte, 6*1024*1024+1)
	for i := range big {
		big[i] = ' '
	}
	big[0], big[len(big)-1] = '"', '"'
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: big})
	apiErr(t, err, "RequestTooLargeException", 413)
	dry, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || dry.StatusCode != 204 {
		t.Fatalf("dry run: %v %v", dry, err)
	}
	// A response over 6 MB is a function error, as Lambda's.
	out, body := invokeJSON(t, c, "probe", map[string]any{"mode": "big", "n": 7 << 20}, false)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Function.ResponseSizeTooLarge" {
		t.Fatalf("oversize response: %v %.200s", out.FunctionError, out.Payload)
	}
	// Unsigned invokes are refused.
	resp := srv.signed(srv.creds("default"), "POST", "/2015-03-31/functions/probe/invocations", []byte(`{}`), time.Now().Add(-time.Hour), nil)
	rawErr(t, resp, "InvalidSignatureException", 403)
}

func TestUpdateRetiresSandboxes(t *testing.T) {
	ctx := context.Background()
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "probe", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"VER": "1"}}
	})
	_, e1 := invokeJSON(t, c, "probe", map[string]any{"mode": "env"}, false)
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("probe"), Environment: &types.Environment{Variables: map[string]string{"VER": "2"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old sandbox to be retired", func() bool { return dp.worker.Sandboxes() == 0 })
	_, e2 := invokeJSON(t, c, "probe", map[string]any{"mode": "env"}, false)
	if e2["env"].(map[string]any)["VER"] != "2" || e2["started"] == e1["started"] {
		t.Fatalf("after update: V=%v, same sandbox %v", e2["env"].(map[string]any)["VER"], e2["started"] == e1["started"])
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("probe")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted function's sandbox to go", func() bool { return dp.worker.Sandboxes() == 0 })
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe")})
	apiErr(t, err, "ResourceNotFoundException", 404)
}

// A caller that goes away does not leak its invoke: the function finishes,
// its slot is returned and its sandbox is warm again.
func TestCallerDisconnect(t *testing.T) {
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.AccountConcurrency = 1 })
	createProbe(t, c, "slow", nil)
	_, first := invokeJSON(t, c, "slow", map[string]any{"mode": "sleep", "n": 1}, false)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{"mode":"sleep","n":1000}`)})
		errc <- err
	}()
	waitFor(t, "the invoke to run", func() bool { return dp.manager.Counts()[workermanager.Busy] == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled invoke succeeded")
	}
	waitFor(t, "the sandbox to be idle again", func() bool {
		n := dp.manager.Counts()
		return n[workermanager.Idle] == 1 && n[workermanager.Busy] == 0
	})
	// With an account limit of 1, this works only if the slot came back;
	// and it is the same, warm sandbox.
	_, again := invokeJSON(t, c, "slow", map[string]any{"mode": "sleep", "n": 1}, false)
	if again["started"] != first["started"] {
		t.Fatal("the sandbox of a cancelled invoke was not reused")
	}
}

func TestIdleSandboxesAreReclaimed(t *testing.T) {
	_, c, dp := startInvokeEmber(t, func(cfg *serveConfig) { cfg.KeepAlive = 500 * time.Millisecond })
	createProbe(t, c, "brief", nil)
	invokeJSON(t, c, "brief", map[string]any{}, false)
	if dp.worker.Sandboxes() != 1 {
		t.Fatalf("%d sandboxes after one invoke", dp.worker.Sandboxes())
	}
	waitFor(t, "the idle sandbox to be reclaimed", func() bool { return dp.worker.Sandboxes() == 0 && len(dp.manager.Counts()) == 0 })
	out, _ := invokeJSON(t, c, "brief", map[string]any{}, true)
	if !strings.Contains(logOf(t, out), "Init Duration") {
		t.Fatal("the invoke after reclaim was not a cold start")
	}
}

// Edge cases of the Invoke API, through the SDK: DryRun, partial ARNs,
// Qualifier=$LATEST, the client context and payload limits.
func TestInvokeEdgeCases(t *testing.T) {
	ctx := context.Background()
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "probe", nil)

	// DryRun checks the function exists and runs nothing.
	_, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope"), InvocationType: types.InvocationTypeDryRun})
	apiErr(t, err, "ResourceNotFoundException", 404)
	dry, raw, err := invokeRaw(t, c, &lambda.InvokeInput{FunctionName: aws.String("probe"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || dry.StatusCode != 204 || raw.status != 204 || len(dry.Payload) != 0 || !uuidV4RE.MatchString(raw.header.Get("X-Amzn-RequestId")) {
		t.Fatalf("dry run: %v %d %v", err, raw.status, raw.header)
	}
	if n, counts := dp.worker.Sandboxes(), dp.manager.Counts(); n != 0 || len(counts) != 0 {
		t.Fatalf("a dry run started a sandbox: %d live, table %v", n, counts)
	}

	// Partial ARNs and the full ARN, with and without a qualifier, and
	// Qualifier=$LATEST: $LATEST runs, invoked by the ARN as qualified.
	g, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("probe")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(g.Configuration.FunctionArn)
	account := strings.Split(arn, ":")[4]
	for _, ref := range []struct{ name, qualifier, invokedARN string }{
		{account + ":function:probe", "", arn},
		{account + ":function:probe:$LATEST", "", arn + ":$LATEST"},
		{arn, "", arn},
		{"probe", "$LATEST", arn + ":$LATEST"},
		{account + ":function:probe", "$LATEST", arn + ":$LATEST"},
		{"function:probe", "", arn},
		{"function:probe:$LATEST", "", arn + ":$LATEST"},
	} {
		in := &lambda.InvokeInput{FunctionName: aws.String(ref.name), Payload: []byte(`{"mode":"env"}`)}
		if ref.qualifier != "" {
			in.Qualifier = aws.String(ref.qualifier)
		}
		out, raw, err := invokeRaw(t, c, in)
		if err != nil {
			t.Fatalf("invoke %s (qualifier %q): %v", ref.name, ref.qualifier, err)
		}
		var env map[string]any
		_ = json.Unmarshal(out.Payload, &env)
		// The caller sent no X-Amzn-Trace-Id: the runtime still got a
		// Lambda-Runtime-Trace-Id (aws-lambda-go sets it as
		// _X_AMZN_TRACE_ID), made by the Front End in X-Ray's format.
		trace, _ := env["env"].(map[string]any)["_X_AMZN_TRACE_ID"].(string)
		if !regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`).MatchString(trace) {
			t.Fatalf("invoke %s: trace id %q", ref.name, trace)
		}
		if out.StatusCode != 200 || out.FunctionError != nil || raw.header.Get("X-Amz-Executed-Version") != "$LATEST" ||
			env["function_arn"] != ref.invokedARN {
			t.Fatalf("invoke %s (qualifier %q): %d %v %q, invoked as %v, want %s", ref.name, ref.qualifier, out.StatusCode,
				out.FunctionError, raw.header.Get("X-Amz-Executed-Version"), env["function_arn"], ref.invokedARN)
		}
	}
	// Another account's partial ARN is not found.
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("000000000000:function:probe")})
	apiErr(t, err, "ResourceNotFoundException", 404)

	// X-Amz-Client-Context: up to 3,583 bytes of base64 (3,580 is the
	// longest padded base64 within it) reaches the function; 3,584 is
	// refused.
	clientContext := func(encoded int) string {
		// {"custom":{"k":"xx..."}} whose base64 is encoded bytes long.
		raw := `{"custom":{"k":"` + strings.Repeat("x", encoded/4*3-len(`{"custom":{"k":""}}`)) + `"}}`
		s := base64.StdEncoding.EncodeToString([]byte(raw))
		if len(s) != encoded {
			t.Fatalf("client context of %d bytes, want %d", len(s), encoded)
		}
		return s
	}
	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: []byte(`{"mode":"env"}`),
		ClientContext: aws.String(clientContext(3580))})
	if err != nil {
		t.Fatalf("client context of 3,580 bytes: %v", err)
	}
	var env map[string]any
	_ = json.Unmarshal(out.Payload, &env)
	if cc, _ := env["client_context"].(string); len(cc) != 3580/4*3-len(`{"custom":}`) {
		t.Fatalf("the function got a client context of %d bytes: %.100s", len(cc), cc)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), ClientContext: aws.String(clientContext(3584))})
	apiErr(t, err, "InvalidParameterValueException", 400)

	// A payload of exactly 6 MB (6,291,456 bytes) is taken; a byte more is
	// refused.
	payload := func(size int) []byte {
		head, tail := `{"mode":"sleep","n":0,"pad":"`, `"}`
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}
	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: payload(6 << 20)})
	if err != nil {
		t.Fatalf("a payload of 6,291,456 bytes: %v", err)
	}
	var slept map[string]any
	if json.Unmarshal(out.Payload, &slept) != nil || out.FunctionError != nil || slept["slept"] != float64(0) {
		t.Fatalf("a payload of 6,291,456 bytes: %v %.300s", out.FunctionError, out.Payload)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("probe"), Payload: payload(6<<20 + 1)})
	apiErr(t, err, "RequestTooLargeException", 413)
}
