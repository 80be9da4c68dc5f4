package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/emberfn/ember/internal/runtimes"
)

// hostRuntime is the name of a runtime of family (runtimes.FamilyPython or
// runtimes.FamilyNode) that this host serves: the first Ember knows that
// keep accepts (nil: any). With none, the test is skipped, or fails when
// CI=true (.ci/run installs the interpreters).
func hostRuntime(t *testing.T, family string, keep func(runtimes.Runtime) bool) string {
	t.Helper()
	if name, ok := findRuntime(family, keep); ok {
		return name
	}
	var missing []string
	for _, name := range runtimes.Known() {
		if strings.HasPrefix(name, family) {
			missing = append(missing, runtimes.Unavailable(name))
		}
	}
	msg := "this host serves no " + family + " runtime for this test:\n" + strings.Join(missing, "\n")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// findRuntime is the first runtime Ember knows of family that this host
// serves and keep (nil: any) accepts.
func findRuntime(family string, keep func(runtimes.Runtime) bool) (string, bool) {
	for _, name := range runtimes.Known() {
		if rt, ok := runtimes.Lookup(name); ok && rt.Family == family && (keep == nil || keep(rt)) {
			return name, true
		}
	}
	return "", false
}

// pythonRuntime and nodeRuntime are hostRuntime of each family.
func pythonRuntime(t *testing.T) string { return hostRuntime(t, runtimes.FamilyPython, nil) }
func nodeRuntime(t *testing.T) string   { return hostRuntime(t, runtimes.FamilyNode, nil) }

// fnName makes a function name of a runtime name.
func fnName(prefix, runtime string) string {
	return prefix + strings.NewReplacer(".", "-", "_", "-").Replace(runtime)
}

// errMessage is the message of the Lambda error err.
func errMessage(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%v is not an API error", err)
	}
	return ae.ErrorMessage()
}

const pyApp = `import os
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("fail"):
        raise ValueError("bad value: " + event["fail"])
    print("python says hi")
    return {"echo": event, "count": COUNT, "request_id": context.aws_request_id,
            "fn": context.function_name, "mem": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis(), "exec_env": os.environ.get("AWS_EXECUTION_ENV")}
`

const nodeApp = `let count = 0;
export const handler = async (event, context) => {
  count++;
  if (event.fail) throw new TypeError("bad type: " + event.fail);
  console.log("node says hi");
  return { echo: event, count, request_id: context.awsRequestId, fn: context.functionName,
           mem: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis(),
           exec_env: process.env.AWS_EXECUTION_ENV };
};
`

// A Python and a Node.js function through the SDK: success, module state
// kept across warm invokes, a raised error, and the context's request id,
// memory and remaining time.
func TestManagedRuntimes(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t)
	cases := []struct {
		runtime, handler, file, code, errType string
		memory, timeout                       int32
	}{
		{pythonRuntime(t), "app.handler", "app.py", pyApp, "ValueError", 256, 7},
		{nodeRuntime(t), "index.handler", "index.mjs", nodeApp, "TypeError", 192, 9},
	}
	for _, tc := range cases {
		name := fnName("", tc.runtime)
		zip := makeZip(t, zipEntry{name: tc.file, mode: 0o644, body: tc.code})
		_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name),
			Runtime: types.Runtime(tc.runtime), Handler: aws.String(tc.handler), Code: &types.FunctionCode{ZipFile: zip},
			MemorySize: aws.Int32(tc.memory), Timeout: aws.Int32(tc.timeout),
			Role: aws.String("arn:aws:iam::123456789012:role/x")})
		if err != nil {
			t.Fatalf("%s: %v", tc.runtime, err)
		}
		out, body := invokeJSON(t, c, name, map[string]any{"k": "v"}, true)
		if out.FunctionError != nil || body["echo"].(map[string]any)["k"] != "v" || body["count"].(float64) != 1 {
			t.Fatalf("%s: %s", tc.runtime, out.Payload)
		}
		if body["exec_env"] != "AWS_Lambda_"+tc.runtime || body["fn"] != name {
			t.Fatalf("%s: AWS_EXECUTION_ENV or function name: %s", tc.runtime, out.Payload)
		}
		if !strings.Contains(logOf(t, out), "says hi") {
			t.Fatalf("%s log:\n%s", tc.runtime, logOf(t, out))
		}
		// The context, as Lambda's: the invoke's request id, the memory
		// (a string, as AWS's runtime clients give it) and a remaining
		// time within the timeout.
		for i := range 2 {
			reqID, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
			if !ok || reqID == "" || body["request_id"] != reqID {
				t.Fatalf("%s invoke %d: context request id %v, response's %q", tc.runtime, i, body["request_id"], reqID)
			}
			if body["mem"] != strconv.Itoa(int(tc.memory)) {
				t.Fatalf("%s: context memory %#v, want %q", tc.runtime, body["mem"], strconv.Itoa(int(tc.memory)))
			}
			rem, ok := body["remaining"].(float64)
			if !ok || rem <= 0 || rem > float64(tc.timeout)*1000 {
				t.Fatalf("%s: remaining time %v, want in (0, %d]", tc.runtime, body["remaining"], tc.timeout*1000)
			}
			if i == 0 {
				out, body = invokeJSON(t, c, name, map[string]any{}, false)
			}
		}
		if body["count"].(float64) != 2 {
			t.Fatalf("%s: module state not kept across warm invokes: %v", tc.runtime, body["count"])
		}
		out, body = invokeJSON(t, c, name, map[string]any{"fail": "x"}, false)
		if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != tc.errType ||
			!strings.Contains(body["errorMessage"].(string), "bad ") {
			t.Fatalf("%s error: %s", tc.runtime, out.Payload)
		}
	}
}

// A runtime Ember knows whose interpreter this host lacks is refused at
// CreateFunction and UpdateFunctionConfiguration, naming the runtime and
// the interpreter it needs; a name Ember does not know is refused with
// Lambda's enum message.
func TestUnavailableRuntime(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t)
	var missing string
	for _, name := range runtimes.Known() {
		if _, ok := runtimes.Lookup(name); !ok {
			missing = name
			break
		}
	}
	py := makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: pyApp})
	create := func(name, runtime string) error {
		_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name),
			Runtime: types.Runtime(runtime), Handler: aws.String("app.handler"),
			Code: &types.FunctionCode{ZipFile: py}, Role: aws.String("arn:aws:iam::123456789012:role/x")})
		return err
	}
	update := func(runtime string) error {
		_, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("have"), Runtime: types.Runtime(runtime)})
		return err
	}
	// A function of a runtime the host has, to update.
	if err := create("have", pythonRuntime(t)); err != nil {
		t.Fatal(err)
	}
	if missing == "" {
		t.Logf("this host serves every runtime Ember knows (%v): no unavailable one to refuse", runtimes.Known())
	} else {
		want := runtimes.Unavailable(missing)
		k := strings.TrimPrefix(strings.TrimPrefix(missing, "python"), "nodejs")
		interp := "python" + k // python3.13
		if strings.HasPrefix(missing, "nodejs") {
			interp = "Node.js " + strings.TrimSuffix(k, ".x")
		}
		if !strings.HasPrefix(want, "Runtime "+missing+" needs ") || !strings.Contains(want, interp) {
			t.Fatalf("runtimes.Unavailable(%s) = %q: does not name the runtime and %s", missing, want, interp)
		}
		for what, err := range map[string]error{"CreateFunction": create("missing", missing), "UpdateFunctionConfiguration": update(missing)} {
			apiErr(t, err, "InvalidParameterValueException", 400)
			if msg := errMessage(t, err); msg != want {
				t.Errorf("%s with %s: %q, want %q", what, missing, msg, want)
			}
		}
	}
	for what, err := range map[string]error{"CreateFunction": create("future", "python3.99"), "UpdateFunctionConfiguration": update("python3.99")} {
		apiErr(t, err, "InvalidParameterValueException", 400)
		msg := errMessage(t, err)
		if !strings.HasPrefix(msg, "Value python3.99 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [") ||
			!strings.HasSuffix(msg, "] or be a valid ARN") {
			t.Errorf("%s with python3.99: %q", what, msg)
		}
		for _, name := range runtimes.Known() {
			if !strings.Contains(msg, name) {
				t.Errorf("%s with python3.99: the enum %q lacks %s", what, msg, name)
			}
		}
	}
	// Nothing was created or changed.
	g, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("have")})
	if err != nil || string(g.Configuration.Runtime) != pythonRuntime(t) {
		t.Fatalf("GetFunction(have): %v %v", g, err)
	}
	for _, name := range []string{"missing", "future"} {
		_, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)})
		apiErr(t, err, "ResourceNotFoundException", 404)
	}
}

// A Node.js CommonJS handler that answers through its callback (Lambda
// removed callback handlers in Node.js 24: there the function fails at
// init with Runtime.CallbackHandlerDeprecated).
func TestNodeCallbackHandler(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t)
	rt := nodeRuntime(t)
	if older, ok := findRuntime(runtimes.FamilyNode, func(r runtimes.Runtime) bool {
		n, _ := strconv.Atoi(r.Version)
		return n < 24
	}); ok {
		rt = older
	}
	major, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rt, "nodejs"), ".x"))
	const app = `exports.handler = function (event, context, callback) {
  setTimeout(() => {
    if (event.fail) return callback(new RangeError("callback says no"));
    callback(null, { via: "callback", echo: event, request_id: context.awsRequestId, mem: context.memoryLimitInMB });
  }, 5);
};
`
	_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("cb"),
		Runtime: types.Runtime(rt), Handler: aws.String("index.handler"), MemorySize: aws.Int32(160),
		Code: &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "index.js", mode: 0o644, body: app})},
		Role: aws.String("arn:aws:iam::123456789012:role/x")})
	if err != nil {
		t.Fatalf("%s: %v", rt, err)
	}
	out, body := invokeJSON(t, c, "cb", map[string]any{"k": "v"}, false)
	if major >= 24 {
		if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.CallbackHandlerDeprecated" {
			t.Fatalf("%s callback handler: %s", rt, out.Payload)
		}
		return
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if out.FunctionError != nil || body["via"] != "callback" || body["echo"].(map[string]any)["k"] != "v" ||
		body["request_id"] != reqID || body["mem"] != "160" {
		t.Fatalf("%s callback handler: %s (request id %s)", rt, out.Payload, reqID)
	}
	out, body = invokeJSON(t, c, "cb", map[string]any{"fail": true}, false)
	if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "RangeError" || body["errorMessage"] != "callback says no" {
		t.Fatalf("%s callback error: %s", rt, out.Payload)
	}
}

// The managed runtimes' failures and environment, through the SDK: an
// import error at init, a timeout, and the function's own variables.
func TestManagedRuntimeFailures(t *testing.T) {
	ctx := context.Background()
	_, c, dp := startInvokeEmber(t)
	type tc struct {
		runtime, handler, file, code, importErrFile, importErrCode string
	}
	cases := []tc{
		{pythonRuntime(t), "app.handler", "app.py",
			"import os, time\ndef handler(event, context):\n    if event.get('sleep'):\n        time.sleep(event['sleep'])\n    return {'color': os.environ.get('COLOR'), 'fn': context.function_name, 'arn': context.invoked_function_arn, 'version': context.function_version}\n",
			"broken.py", "import no_such_module_anywhere\ndef handler(event, context):\n    return 1\n"},
		{nodeRuntime(t), "index.handler", "index.mjs",
			"export const handler = async (event, context) => {\n  if (event.sleep) await new Promise(r => setTimeout(r, event.sleep * 1000));\n  return { color: process.env.COLOR, fn: context.functionName, arn: context.invokedFunctionArn, version: context.functionVersion };\n};\n",
			"broken.mjs", "import 'no-such-module-anywhere';\nexport const handler = async () => 1;\n"},
	}
	for _, k := range cases {
		name := fnName("rt-", k.runtime)
		_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name),
			Runtime: types.Runtime(k.runtime), Handler: aws.String(k.handler), Timeout: aws.Int32(1),
			Environment: &types.Environment{Variables: map[string]string{"COLOR": "green"}},
			Code:        &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: k.file, mode: 0o644, body: k.code})},
			Role:        aws.String("arn:aws:iam::123456789012:role/x")})
		if err != nil {
			t.Fatalf("%s: %v", k.runtime, err)
		}
		out, body := invokeJSON(t, c, name, map[string]any{}, false)
		if out.FunctionError != nil || body["color"] != "green" || body["fn"] != name || body["version"] != "$LATEST" ||
			!strings.HasSuffix(body["arn"].(string), ":function:"+name) {
			t.Fatalf("%s context/env: %s", k.runtime, out.Payload)
		}
		out, body = invokeJSON(t, c, name, map[string]any{"sleep": 3}, false)
		if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(body["errorMessage"].(string), "Task timed out after 1.00 seconds") {
			t.Fatalf("%s timeout: %s", k.runtime, out.Payload)
		}
		bad := name + "-broken"
		_, err = c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(bad),
			Runtime: types.Runtime(k.runtime), Handler: aws.String(strings.Split(k.importErrFile, ".")[0] + ".handler"),
			Code: &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: k.importErrFile, mode: 0o644, body: k.importErrCode})},
			Role: aws.String("arn:aws:iam::123456789012:role/x")})
		if err != nil {
			t.Fatal(err)
		}
		out, body = invokeJSON(t, c, bad, map[string]any{}, false)
		if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != "Runtime.ImportModuleError" {
			t.Fatalf("%s import error: %s", k.runtime, out.Payload)
		}
	}
	waitFor(t, "timed-out sandboxes to go", func() bool { return dp.worker.Sandboxes() == 0 })
}
