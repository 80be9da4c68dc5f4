package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// The function reads its secret but never prints it: it answers the
// secret's sha256, so that the test knows the value reached it.
const envSecretApp = `import hashlib, os
def handler(event, context):
    print("handling", context.aws_request_id)
    return {"sum": hashlib.sha256(os.environ["API_TOKEN"].encode()).hexdigest()}
`

// Its init fails after reading the secret.
const envSecretBrokenApp = `import os
_token = os.environ["API_TOKEN"]
raise RuntimeError("init refuses to start")
`

// Environment variable values stay out of Ember's own log (at debug level)
// and out of every error message, through a create, a configuration
// update, invokes, a failing init, refused updates and the function's log
// read back.
func TestEnvironmentValuesNotLogged(t *testing.T) {
	ctx := context.Background()
	serverLog := &syncBuffer{}
	srv, c, _ := startInvokeEmber(t, func(cfg *serveConfig) {
		cfg.Log = slog.New(ctxHandler{slog.NewJSONHandler(serverLog, &slog.HandlerOptions{Level: slog.LevelDebug})})
	})
	secret := func() string {
		b := make([]byte, 16)
		rand.Read(b)
		return "tok-" + hex.EncodeToString(b)
	}
	first, second := secret(), secret()
	secrets := []string{first, second}
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	// noSecret fails if what holds any secret.
	noSecret := func(where, what string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(what, s) {
				t.Errorf("a secret value appears in %s:\n%s", where, what)
			}
		}
	}
	rt := pythonRuntime(t)
	role := aws.String("arn:aws:iam::123456789012:role/x")

	_, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("secretive"),
		Runtime: types.Runtime(rt), Handler: aws.String("app.handler"), Role: role,
		Environment: &types.Environment{Variables: map[string]string{"API_TOKEN": first, "MODE": "x"}},
		Code:        &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: envSecretApp})}})
	if err != nil {
		t.Fatal(err)
	}
	out, body := invokeJSON(t, c, "secretive", map[string]any{}, true)
	if out.FunctionError != nil || body["sum"] != sum(first) {
		t.Fatalf("the function did not get its secret: %s", out.Payload)
	}
	noSecret("the tail of the invoke's log", logOf(t, out))
	reqIDs := []string{requestIDOf(t, out)}

	// A configuration update changes the secret (and retires the sandbox).
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("secretive"),
		Environment: &types.Environment{Variables: map[string]string{"API_TOKEN": second, "MODE": "y"}}}); err != nil {
		t.Fatal(err)
	}
	out, body = invokeJSON(t, c, "secretive", map[string]any{}, true)
	if out.FunctionError != nil || body["sum"] != sum(second) {
		t.Fatalf("the function did not get its new secret: %s", out.Payload)
	}
	noSecret("the tail of the invoke's log", logOf(t, out))
	reqIDs = append(reqIDs, requestIDOf(t, out))

	// Refused updates that carry the secret: a reserved name, a bad name,
	// more than 4 KB. Their messages must not repeat it.
	for what, vars := range map[string]map[string]string{
		"a reserved name": {"API_TOKEN": first, "AWS_REGION": second},
		"a bad name":      {"API_TOKEN": first, "9BAD": second},
		"over 4 KB":       {"API_TOKEN": first, "PAD": second + strings.Repeat("p", 4096)},
	} {
		_, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("secretive"),
			Environment: &types.Environment{Variables: vars}})
		typ := "InvalidParameterValueException"
		if what == "a bad name" { // the API model's pattern
			typ = "ValidationException"
		}
		apiErr(t, err, typ, 400)
		noSecret("the error for "+what, errMessage(t, err)+"\n"+err.Error())
	}

	// A failing init: the function error and the init's log.
	_, err = c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("secretive-broken"),
		Runtime: types.Runtime(rt), Handler: aws.String("app.handler"), Role: role,
		Environment: &types.Environment{Variables: map[string]string{"API_TOKEN": first}},
		Code:        &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", mode: 0o644, body: envSecretBrokenApp})}})
	if err != nil {
		t.Fatal(err)
	}
	out, body = invokeJSON(t, c, "secretive-broken", map[string]any{}, true)
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "init refuses to start") {
		t.Fatalf("the broken function: %s", out.Payload)
	}
	noSecret("the failing init's error", string(out.Payload))
	noSecret("the failing init's tail", logOf(t, out))

	// The functions' log streams, read back through CloudWatch Logs.
	cw := srv.logsClient(srv.creds("default"))
	for _, id := range reqIDs {
		evs := invocationLog(t, cw, "/aws/lambda/secretive", id)
		if !strings.Contains(dump(evs), "handling "+id) {
			t.Fatalf("the invocation's own line is not in its log:\n%s", dump(evs))
		}
		noSecret("the function's log", dump(evs))
	}
	var broken string
	waitFor(t, "the failing init's log", func() bool {
		broken = dump(groupEvents(t, cw, "/aws/lambda/secretive-broken"))
		return strings.Contains(broken, "init refuses to start")
	})
	noSecret("the failing init's log", broken)

	// Ember's own log, at debug level, up to its shutdown.
	srv.stop()
	log := serverLog.String()
	for _, want := range []string{`"level":"DEBUG"`, "secretive"} {
		if !strings.Contains(log, want) {
			t.Fatalf("the server's debug log has no %s; is it captured?\n%s", want, log)
		}
	}
	noSecret("Ember's log", log)
	noSecret("Ember's standard output", srv.stdout.String())
}
