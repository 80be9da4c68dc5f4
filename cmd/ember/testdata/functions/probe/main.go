// Command probe is a test function built with aws-lambda-go. The event's
// "mode" picks what it does; INIT_MODE in its environment picks how its
// init goes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Mode  string `json:"mode"`
	N     int    `json:"n"`
	Label string `json:"label"`
}

var started = time.Now()
var invocations int

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	invocations++
	var ev event
	_ = json.Unmarshal(raw, &ev)
	switch ev.Mode {
	case "error":
		return nil, errors.New("something went wrong: " + ev.Label)
	case "panic":
		panic("probe panics: " + ev.Label)
	case "sleep":
		time.Sleep(time.Duration(ev.N) * time.Millisecond)
		return map[string]any{"slept": ev.N, "started": started.UnixNano(), "pid": os.Getpid()}, nil
	case "exit":
		fmt.Println("probe exits now")
		os.Exit(3)
	case "alloc":
		var keep [][]byte
		for i := 0; i < ev.N; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		return map[string]any{"allocated_mb": len(keep)}, nil
	case "log":
		for i := 0; i < ev.N; i++ {
			fmt.Printf("log line %d of %s\n", i, ev.Label)
		}
		fmt.Fprintln(os.Stderr, "to stderr "+ev.Label)
		return "logged", nil
	case "big":
		return strings.Repeat("x", ev.N), nil
	case "env":
		lc, _ := lambdacontext.FromContext(ctx)
		deadline, _ := ctx.Deadline()
		host, _ := os.Hostname()
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		cc := ""
		if lc != nil && lc.ClientContext.Custom != nil {
			b, _ := json.Marshal(lc.ClientContext.Custom)
			cc = string(b)
		}
		return map[string]any{
			"request_id": lc.AwsRequestID, "function_arn": lc.InvokedFunctionArn,
			"deadline_ms": deadline.UnixMilli(), "env": env, "pid": os.Getpid(),
			"uid": os.Getuid(), "hostname": host, "invocations": invocations,
			"started": started.UnixNano(), "client_context": cc,
			"gomaxprocs": runtime.GOMAXPROCS(0),
		}, nil
	}
	return raw, nil
}

func main() {
	switch os.Getenv("INIT_MODE") {
	case "exit":
		fmt.Println("probe fails its init")
		os.Exit(1)
	case "hang":
		fmt.Println("probe never asks for work")
		time.Sleep(time.Hour)
	case "slow":
		// An init that takes INIT_DELAY_MS (default 1000) milliseconds.
		ms, err := strconv.Atoi(os.Getenv("INIT_DELAY_MS"))
		if err != nil {
			ms = 1000
		}
		fmt.Printf("probe initialises for %d ms\n", ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	lambda.Start(handle)
}
