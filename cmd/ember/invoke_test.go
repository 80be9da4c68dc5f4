package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

func TestInvokeColdThenWarm(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "probe", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"GREETING": "hello"}}
		in.Timeout = aws.Int32(7)
	})
	// Echo, cold.
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("probe"),
		Payload: []byte(`{"hello":"world","n":[1,2,3]}`), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || string(out.Payload) != `{"hello":"world","n":[1,2,3]}` || out.FunctionError != nil ||
		*out.ExecutedVersion != "$LATEST" {
		t.Fatalf("echo: %d %s %v %v", out.StatusCode, out.Payload, out.FunctionError, out.ExecutedVersion)
	}
	rid, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
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
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %v, want %q", k, env[k], v)
		}
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

	out, body := invokeJSON(t, c, "probe", map[string]any{"mode": "error", "label": "x1"}, false)
	if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" ||
		body["errorMessage"] != "something went wrong: x1" || body["errorType"] != "errorString" {
		t.Fatalf("error: %d %v %s", out.StatusCode, out.FunctionError, out.Payload)
	}
	out, body = invokeJSON(t, c, "probe", map[string]any{"mode": "panic", "label": "p1"}, false)
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(body["errorMessage"].(string), "probe panics: p1") {
		t.Fatalf("panic: %v %s", out.FunctionError, out.Payload)
	}
	start := time.Now()
	out, body = invokeJSON(t, c, "probe", map[string]any{"mode": "sleep", "n": 5000}, true)
	took := time.Since(start)
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(body["errorMessage"].(string), "Task timed out after 1.00 seconds") {
		t.Fatalf("timeout: %v %s", out.FunctionError, out.Payload)
	}
	if took > 3*time.Second {
		t.Fatalf("a 1 s timeout took %v", took)
	}
	if !strings.Contains(logOf(t, out), "Status: timeout") {
		t.Fatalf("timeout log:\n%s", logOf(t, out))
	}
	out, body = invokeJSON(t, c, "probe", map[string]any{"mode": "exit"}, true)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.ExitError" ||
		!strings.Contains(body["errorMessage"].(string), "Runtime exited with error: exit status 3") {
		t.Fatalf("exit: %v %s", out.FunctionError, out.Payload)
	}
	if !strings.Contains(logOf(t, out), "probe exits now") {
		t.Fatalf("the last words of a dying runtime are lost:\n%s", logOf(t, out))
	}
	// After all that, it still works, and nothing failed stays around.
	out, _ = invokeJSON(t, c, "probe", map[string]any{"a": 1}, false)
	if out.FunctionError != nil || string(out.Payload) != `{"a":1}` {
		t.Fatalf("after failures: %s", out.Payload)
	}
	waitFor(t, "failed sandboxes to be destroyed", func() bool { return dp.worker.Sandboxes() == 1 })
}

func TestInvokeOutOfMemory(t *testing.T) {
	_, c, dp := startInvokeEmber(t)
	createProbe(t, c, "hog", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(128) })
	out, body := invokeJSON(t, c, "hog", map[string]any{"mode": "alloc", "n": 400}, true)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.ExitError" ||
		!strings.Contains(body["errorMessage"].(string), "signal: killed") {
		t.Fatalf("oom: %v %s", out.FunctionError, out.Payload)
	}
	if !strings.Contains(logOf(t, out), "Runtime.OutOfMemory") {
		t.Fatalf("oom log:\n%s", logOf(t, out))
	}
	// A modest allocation in a fresh sandbox works.
	out, body = invokeJSON(t, c, "hog", map[string]any{"mode": "alloc", "n": 20}, true)
	if out.FunctionError != nil || body["allocated_mb"].(float64) != 20 {
		t.Fatalf("small alloc: %s", out.Payload)
	}
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
	out, body := invokeJSON(t, c, "dies", map[string]any{}, true)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.ExitError" ||
		!strings.Contains(body["errorMessage"].(string), "exit status 1") {
		t.Fatalf("exit during init: %v %s", out.FunctionError, out.Payload)
	}
	if !strings.Contains(logOf(t, out), "probe fails its init") {
		t.Fatalf("init log:\n%s", logOf(t, out))
	}
	start := time.Now()
	out, body = invokeJSON(t, c, "hangs", map[string]any{}, false)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Sandbox.Timedout" {
		t.Fatalf("never calls next: %v %s", out.FunctionError, out.Payload)
	}
	if took := time.Since(start); took < 2*time.Second || took > 5*time.Second {
		t.Fatalf("init timeout of 2 s took %v", took)
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
	out, _ := invokeJSON(t, c, "talker", map[string]any{"mode": "log", "n": 3, "label": "abc"}, true)
	log := logOf(t, out)
	for _, want := range []string{"log line 0 of abc", "log line 2 of abc", "to stderr abc", "END RequestId"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	out, _ = invokeJSON(t, c, "talker", map[string]any{"mode": "log", "n": 2000, "label": "flood"}, true)
	log = logOf(t, out)
	if len(log) > 4096 || !strings.Contains(log, "REPORT RequestId") || strings.Contains(log, "log line 0 of flood") {
		t.Fatalf("tail of a long log: %d bytes:\n%s", len(log), log)
	}
	out, _ = invokeJSON(t, c, "talker", map[string]any{"mode": "echo"}, false)
	if out.LogResult != nil {
		t.Fatal("a log without Tail")
	}
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
	apiErr(t, err, "InvalidParameterValueException", 400)
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
