package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// These tests drive the Server with the real aws-lambda-go runtime client:
// testdata/echofn is built and run with AWS_LAMBDA_RUNTIME_API set.

// startEcho starts a server and echofn, and waits for its init.
func startEcho(t testing.TB, cfg Config) (*testServer, *function) {
	t.Helper()
	ts := newTestServer(t, cfg)
	fn := startFunction(t, ts.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ts.WaitInit(ctx); err != nil {
		t.Fatalf("WaitInit: %v", err)
	}
	return ts, fn
}

// invokeEcho invokes echofn with event, due in timeout.
func invokeEcho(t *testing.T, ts *testServer, id string, event any, timeout time.Duration) (*Response, error) {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return ts.Invoke(ctx, &Invocation{RequestID: id, Payload: payload, Deadline: time.Now().Add(timeout)})
}

// errDoc decodes an aws-lambda-go error document.
func errDoc(t *testing.T, b []byte) (doc struct {
	Message    string            `json:"errorMessage"`
	Type       string            `json:"errorType"`
	StackTrace []json.RawMessage `json:"stackTrace"`
}) {
	t.Helper()
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	return doc
}

func TestLambdaGo(t *testing.T) {
	ts, fn := startEcho(t, Config{FunctionARN: testARN})

	t.Run("echo", func(t *testing.T) {
		for i, data := range []string{`{"hello":"world"}`, `[1,2,3]`, `"` + strings.Repeat("a", 100_000) + `"`} {
			resp, err := invokeEcho(t, ts, "echo-"+string(rune('a'+i)), map[string]any{"op": "echo", "data": json.RawMessage(data)}, time.Minute)
			if err != nil || resp.FunctionError != "" || string(resp.Payload) != data {
				t.Fatalf("Invoke = %+v, %v", resp, err)
			}
		}
	})

	t.Run("context", func(t *testing.T) {
		deadline := time.Now().Add(42 * time.Second)
		in := &Invocation{
			RequestID:          "ctx-1",
			Payload:            []byte(`{"op":"context"}`),
			Deadline:           deadline,
			InvokedFunctionARN: testARN + ":live",
			ClientContext:      `{"custom":{"app":"test"}}`,
			CognitoIdentity:    `{"cognitoIdentityId":"us-east-1:abc","cognitoIdentityPoolId":"us-east-1:pool"}`,
			TraceID:            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
		}
		resp, err := ts.Invoke(t.Context(), in)
		if err != nil || resp.FunctionError != "" {
			t.Fatalf("Invoke = %+v, %v", resp, err)
		}
		var got struct {
			RequestID    string            `json:"request_id"`
			FunctionARN  string            `json:"function_arn"`
			DeadlineMs   int64             `json:"deadline_ms"`
			ClientCustom map[string]string `json:"client_custom"`
			IdentityID   string            `json:"identity_id"`
			IdentityPool string            `json:"identity_pool"`
			TraceID      string            `json:"trace_id"`
			TraceEnv     string            `json:"trace_id_env"`
		}
		if err := json.Unmarshal(resp.Payload, &got); err != nil {
			t.Fatal(err)
		}
		if got.RequestID != "ctx-1" || got.FunctionARN != in.InvokedFunctionARN ||
			got.DeadlineMs != deadline.UnixMilli() || got.ClientCustom["app"] != "test" ||
			got.IdentityID != "us-east-1:abc" || got.IdentityPool != "us-east-1:pool" ||
			got.TraceID != in.TraceID || got.TraceEnv != in.TraceID {
			t.Errorf("function saw %+v", got)
		}
	})

	t.Run("deadline honoured", func(t *testing.T) {
		start := time.Now()
		resp, err := invokeEcho(t, ts, "wait-1", map[string]string{"op": "wait"}, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
			t.Errorf("answered after %v, deadline was 300ms", el)
		}
		if resp.FunctionError != "deadlineExceededError" {
			t.Errorf("FunctionError = %q, body %s", resp.FunctionError, resp.Payload)
		}
	})

	t.Run("error", func(t *testing.T) {
		resp, err := invokeEcho(t, ts, "err-1", map[string]string{"op": "error", "message": "kaboom"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		doc := errDoc(t, resp.Payload)
		if resp.FunctionError != "BoomError" || doc.Type != "BoomError" || doc.Message != "kaboom" {
			t.Errorf("Invoke = %q %s", resp.FunctionError, resp.Payload)
		}
	})

	t.Run("still serving after an error", func(t *testing.T) {
		resp, err := invokeEcho(t, ts, "echo-after", map[string]any{"op": "echo", "data": 7}, time.Minute)
		if err != nil || string(resp.Payload) != "7" {
			t.Fatalf("Invoke = %+v, %v", resp, err)
		}
	})

	t.Run("panic", func(t *testing.T) {
		resp, err := invokeEcho(t, ts, "panic-1", map[string]string{"op": "panic", "message": "oh no"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		doc := errDoc(t, resp.Payload)
		if resp.FunctionError != "string" || doc.Message != "oh no" || len(doc.StackTrace) == 0 {
			t.Errorf("Invoke = %q %s", resp.FunctionError, resp.Payload)
		}
		// aws-lambda-go exits after reporting a panic.
		select {
		case <-fn.exited:
		case <-time.After(10 * time.Second):
			t.Error("function still running after a panic")
		}
	})
}

func TestLambdaGoResponseTooLarge(t *testing.T) {
	const limit = 64 << 10
	ts, fn := startEcho(t, Config{MaxResponse: limit})
	resp, err := invokeEcho(t, ts, "big-1", map[string]any{"op": "big", "size": limit}, time.Minute)
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Type != TypeResponseSizeTooLarge {
		t.Fatalf("Invoke = %+v, %v", resp, err)
	}
	if doc := errDoc(t, fe.Body); doc.Type != TypeResponseSizeTooLarge ||
		!strings.Contains(doc.Message, "exceeded maximum allowed payload size (65536 bytes)") {
		t.Errorf("body %s", fe.Body)
	}
	// aws-lambda-go gives up when its response is refused.
	select {
	case <-fn.exited:
	case <-time.After(10 * time.Second):
		t.Error("function still running")
	}
	if !strings.Contains(fn.stderr.String(), "413") {
		t.Errorf("function did not see 413:\n%s", fn.stderr.String())
	}
}

// TestLambdaGoAbandoned: after an abandoned invocation the function's late
// answer is refused; aws-lambda-go exits on it, and the caller discards the
// sandbox as Lambda does after a timeout.
func TestLambdaGoAbandoned(t *testing.T) {
	ts, fn := startEcho(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := ts.Invoke(ctx, &Invocation{
		RequestID: "late-1", Payload: []byte(`{"op":"wait"}`), Deadline: time.Now().Add(500 * time.Millisecond),
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Invoke = %v", err)
	}
	select {
	case <-fn.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("function still running")
	}
	if !strings.Contains(fn.stderr.String(), "403") {
		t.Errorf("function did not see 403:\n%s", fn.stderr.String())
	}
	if _, st := ts.state(); st != callNone {
		t.Errorf("state = %v", st)
	}
}
