// Command echofn is a function built with aws-lambda-go for the runtimeapi
// tests. The event's "op" picks what it does.
package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Op      string          `json:"op"`
	Data    json.RawMessage `json:"data,omitempty"`
	Message string          `json:"message,omitempty"`
	Size    int             `json:"size,omitempty"`
}

// BoomError is returned by op "error"; aws-lambda-go reports its type name.
type BoomError struct{ Msg string }

func (e *BoomError) Error() string { return e.Msg }

// contextInfo is what op "context" returns.
type contextInfo struct {
	RequestID     string            `json:"request_id"`
	FunctionARN   string            `json:"function_arn"`
	DeadlineMs    int64             `json:"deadline_ms"`
	ClientCustom  map[string]string `json:"client_custom"`
	IdentityID    string            `json:"identity_id"`
	IdentityPool  string            `json:"identity_pool"`
	TraceID       string            `json:"trace_id"`
	TraceIDEnvVar string            `json:"trace_id_env"`
}

func handle(ctx context.Context, ev event) (any, error) {
	switch ev.Op {
	case "echo":
		return ev.Data, nil
	case "context":
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		info := contextInfo{DeadlineMs: dl.UnixMilli(), TraceIDEnvVar: os.Getenv("_X_AMZN_TRACE_ID")}
		if lc != nil {
			info.RequestID = lc.AwsRequestID
			info.FunctionARN = lc.InvokedFunctionArn
			info.ClientCustom = lc.ClientContext.Custom
			info.IdentityID = lc.Identity.CognitoIdentityID
			info.IdentityPool = lc.Identity.CognitoIdentityPoolID
		}
		if v, ok := ctx.Value("x-amzn-trace-id").(string); ok {
			info.TraceID = v
		}
		return info, nil
	case "error":
		return nil, &BoomError{Msg: ev.Message}
	case "panic":
		panic(ev.Message)
	case "wait":
		<-ctx.Done()
		return nil, ctx.Err()
	case "big":
		return strings.Repeat("x", ev.Size), nil
	}
	return nil, &BoomError{Msg: "unknown op " + ev.Op}
}

func main() {
	lambda.Start(handle)
}
