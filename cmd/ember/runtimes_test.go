package main

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

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
  return { echo: event, count, requestId: context.awsRequestId, fn: context.functionName,
           remaining: context.getRemainingTimeInMillis(), execEnv: process.env.AWS_EXECUTION_ENV };
};
`

func TestManagedRuntimes(t *testing.T) {
	ctx := context.Background()
	_, c, _ := startInvokeEmber(t)
	cases := []struct {
		runtime, handler, file, code, execEnv, errType string
	}{
		{"python3.11", "app.handler", "app.py", pyApp, "AWS_Lambda_python3.11", "ValueError"},
		{"nodejs20.x", "index.handler", "index.mjs", nodeApp, "AWS_Lambda_nodejs20.x", "TypeError"},
	}
	for _, tc := range cases {
		name := strings.ReplaceAll(strings.ReplaceAll(tc.runtime, ".", "-"), "_", "-")
		zip := makeZip(t, zipEntry{name: tc.file, mode: 0o644, body: tc.code})
		_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(name),
			Runtime: types.Runtime(tc.runtime), Handler: aws.String(tc.handler), Code: &types.FunctionCode{ZipFile: zip},
			Role: aws.String("arn:aws:iam::123456789012:role/x")})
		if err != nil {
			t.Fatalf("%s (.ci/run installs the interpreters): %v", tc.runtime, err)
		}
		out, body := invokeJSON(t, c, name, map[string]any{"k": "v"}, true)
		if out.FunctionError != nil || body["echo"].(map[string]any)["k"] != "v" || body["count"].(float64) != 1 {
			t.Fatalf("%s: %s", tc.runtime, out.Payload)
		}
		for _, k := range []string{"exec_env", "execEnv"} {
			if v, ok := body[k]; ok && v != tc.execEnv {
				t.Fatalf("%s: AWS_EXECUTION_ENV %v", tc.runtime, v)
			}
		}
		if !strings.Contains(logOf(t, out), "says hi") {
			t.Fatalf("%s log:\n%s", tc.runtime, logOf(t, out))
		}
		_, body = invokeJSON(t, c, name, map[string]any{}, false)
		if body["count"].(float64) != 2 {
			t.Fatalf("%s: module state not kept across warm invokes: %v", tc.runtime, body["count"])
		}
		out, body = invokeJSON(t, c, name, map[string]any{"fail": "x"}, false)
		if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != tc.errType ||
			!strings.Contains(body["errorMessage"].(string), "bad ") {
			t.Fatalf("%s error: %s", tc.runtime, out.Payload)
		}
	}
	// A runtime whose interpreter is not on the host is refused up front.
	_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("future"),
		Runtime: types.Runtime("python3.99"), Handler: aws.String("app.handler"),
		Code: &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: pyApp})},
		Role: aws.String("arn:aws:iam::123456789012:role/x")})
	apiErr(t, err, "InvalidParameterValueException", 400)
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
		{"python3.11", "app.handler", "app.py",
			"import os, time\ndef handler(event, context):\n    if event.get('sleep'):\n        time.sleep(event['sleep'])\n    return {'color': os.environ.get('COLOR'), 'fn': context.function_name, 'arn': context.invoked_function_arn, 'version': context.function_version}\n",
			"broken.py", "import no_such_module_anywhere\ndef handler(event, context):\n    return 1\n"},
		{"nodejs20.x", "index.handler", "index.mjs",
			"export const handler = async (event, context) => {\n  if (event.sleep) await new Promise(r => setTimeout(r, event.sleep * 1000));\n  return { color: process.env.COLOR, fn: context.functionName, arn: context.invokedFunctionArn, version: context.functionVersion };\n};\n",
			"broken.mjs", "import 'no-such-module-anywhere';\nexport const handler = async () => 1;\n"},
	}
	for _, k := range cases {
		name := "rt-" + strings.NewReplacer(".", "-").Replace(k.runtime)
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
