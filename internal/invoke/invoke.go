// Package invoke holds the data that crosses component boundaries on the
// invoke path (Front End, Worker Manager, Worker): a request, its result,
// and the assignment of a sandbox. It performs no I/O.
package invoke

import (
	"context"
	"errors"
	"time"
)

// ErrSandboxGone means the sandbox died before the invocation reached its
// runtime: the invocation did not run and may be retried elsewhere.
var ErrSandboxGone = errors.New("invoke: sandbox is gone")

// Request is one invocation as the worker runs it.
type Request struct {
	RequestID string
	Payload   []byte
	// ClientContext is the decoded X-Amz-Client-Context JSON ("" if none).
	ClientContext string
	// TraceID is passed to the runtime as Lambda-Runtime-Trace-Id.
	TraceID string
	// Version is the executed version ("$LATEST" or a number), for the
	// START line. It is the Version of the function the sandbox was made
	// for.
	Version string
	// InvokedFunctionARN is the ARN the caller invoked, qualified as the
	// caller qualified it (a version, an alias, $LATEST, or none); the
	// runtime gets it as Lambda-Runtime-Invoked-Function-Arn. Empty: the
	// function's unqualified ARN.
	InvokedFunctionARN string
	// InitDuration, on the first invocation of a new sandbox, is how long
	// its init took (it goes into the REPORT line).
	InitDuration time.Duration
}

// Result is how an invocation ended, as far as the function is concerned.
// Platform failures are errors instead.
type Result struct {
	Payload []byte
	// FunctionError is "" on success, else "Unhandled" (the error JSON is
	// in Payload).
	FunctionError string
	// Log is the invocation's log (START to REPORT), at most its last 4 KB.
	Log []byte
	// Duration is the time the function ran.
	Duration time.Duration
	// Discard says the sandbox may not be used again (timeout, crash).
	Discard bool
}

// InitError is a function whose runtime failed to initialise (init error,
// exit during init, init timeout). It is reported to the caller as a
// function error; no sandbox is left behind.
type InitError struct {
	Type    string // e.g. "Runtime.ExitError", "Sandbox.Timedout"
	Message string
	Log     []byte
}

func (e *InitError) Error() string { return e.Type + ": " + e.Message }

// Invoker runs invocations in sandboxes it hosts: a worker.
type Invoker interface {
	Invoke(ctx context.Context, sandboxID string, req *Request) (*Result, error)
}

// Assignment is a sandbox reserved for one invocation.
type Assignment struct {
	SandboxID string
	WorkerID  string
	Worker    Invoker
	// Cold is set when the sandbox was made for this invocation;
	// InitDuration is then how long its runtime took to initialise.
	Cold         bool
	InitDuration time.Duration
}
