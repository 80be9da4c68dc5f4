// Package frontend is the Front End Invoke: it authenticates each invoke,
// resolves the function and loads its configuration (cached, invalidated by
// a watch on the store), asks the Counting Service for a slot and the
// Worker Manager for a sandbox, then calls Invoke on that sandbox's worker.
package frontend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Lambda's limits on a synchronous invoke.
const (
	MaxRequestPayload = 6 * 1024 * 1024 // 6,291,456 bytes
	maxClientContext  = 3583
)

// Authenticator verifies a request's signature.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request, body []byte, service string) (auth.Principal, error)
}

// Counter grants a concurrency slot (the Counting Service).
type Counter interface {
	// Acquire takes a slot held at most for timeout (plus a grace).
	Acquire(ctx context.Context, account, function string, timeout time.Duration) (release func(), err error)
}

// Pool hands out sandboxes (the Worker Manager).
type Pool interface {
	Acquire(ctx context.Context, fn *store.Function) (invoke.Assignment, error)
	Release(a invoke.Assignment, healthy bool)
	Retire(fn string)
}

// Functions reads function configuration (the store).
type Functions interface {
	GetFunction(ctx context.Context, account, name string) (store.Revision, error)
	WatchFunctions(ctx context.Context, initial bool, fn func(account, name string, f *store.Function)) error
}

// Config configures the Front End; every interface is required.
type Config struct {
	Auth      Authenticator
	Counter   Counter
	Pool      Pool
	Functions Functions
	Region    string // default us-east-1
	Logger    *slog.Logger
}

// Server is the Invoke API's HTTP handler.
type Server struct {
	cfg Config
	log *slog.Logger

	mu    sync.RWMutex
	cache map[string]*store.Function // account.name -> $LATEST
}

// New makes the Front End.
func New(cfg Config) *Server {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "frontend"), cache: map[string]*store.Function{}}
}

// Run keeps the configuration cache current until ctx ends, and retires
// the sandboxes of functions that change or go away.
func (s *Server) Run(ctx context.Context) error {
	return s.cfg.Functions.WatchFunctions(ctx, false, func(account, name string, f *store.Function) {
		key := account + "." + name
		s.mu.Lock()
		old, cached := s.cache[key]
		delete(s.cache, key)
		s.mu.Unlock()
		// Only a new revision of code or configuration (or a delete)
		// retires sandboxes; a change of reserved concurrency does not.
		if f == nil || !cached || old.RevisionID != f.RevisionID {
			s.cfg.Pool.Retire(key)
		}
	})
}

// function returns the caller's function's configuration.
func (s *Server) function(ctx context.Context, p auth.Principal, ref lambdaapi.FunctionRef) (*store.Function, error) {
	notFound := func() error {
		arn := lambdaapi.FunctionARN(s.cfg.Region, p.AccountID, ref.Name)
		if ref.Qualifier != "" {
			arn += ":" + ref.Qualifier
		}
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found: %s", arn)
	}
	if (ref.Account != "" && ref.Account != p.AccountID) || (ref.Region != "" && ref.Region != s.cfg.Region) ||
		(ref.Qualifier != "" && ref.Qualifier != lambdaapi.VersionLatest) {
		return nil, notFound()
	}
	key := p.AccountID + "." + ref.Name
	s.mu.RLock()
	fn, ok := s.cache[key]
	s.mu.RUnlock()
	if ok {
		return fn, nil
	}
	rev, err := s.cfg.Functions.GetFunction(ctx, p.AccountID, ref.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	fn = &rev.Function
	s.mu.Lock()
	s.cache[key] = fn
	s.mu.Unlock()
	return fn, nil
}

// ServeHTTP serves POST /2015-03-31/functions/{fn}/invocations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	requestID := lambdaapi.NewRequestID()
	w.Header().Set("X-Amzn-RequestId", requestID)
	if err := s.invoke(w, r, requestID); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, requestID string) error {
	if r.ContentLength > MaxRequestPayload {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestPayload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not read request body: %v", err)
	}
	p, err := s.cfg.Auth.Verify(r.Context(), r, body, "lambda")
	if err != nil {
		return err
	}
	ref, err := lambdaapi.ParseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return err
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if ref.Qualifier != "" && ref.Qualifier != q {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"The derived qualifier from the function name does not match the specified qualifier.")
		}
		ref.Qualifier = q
	}
	invType := r.Header.Get("X-Amz-Invocation-Type")
	switch invType {
	case "", "RequestResponse", "DryRun":
	case "Event":
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Asynchronous invocation (X-Amz-Invocation-Type: Event) is not supported by Ember yet; use RequestResponse")
	default:
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"1 validation error detected: Value '%s' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]", invType)
	}
	logType := r.Header.Get("X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"1 validation error detected: Value '%s' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]", logType)
	}
	clientContext, err := decodeClientContext(r.Header.Get("X-Amz-Client-Context"))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	} else if !json.Valid(body) {
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not parse request body into json: Unexpected character in the payload")
	}
	fn, err := s.function(r.Context(), p, ref)
	if err != nil {
		return err
	}
	if invType == "DryRun" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	release, err := s.cfg.Counter.Acquire(r.Context(), p.AccountID, fn.Name, time.Duration(fn.Timeout)*time.Second)
	if err != nil {
		return err
	}
	defer release() // on every path, panics included
	req := &invoke.Request{
		RequestID: requestID, Payload: body, ClientContext: clientContext,
		TraceID: r.Header.Get("X-Amzn-Trace-Id"), Version: lambdaapi.VersionLatest,
	}
	// A sandbox that died before the invocation reached its runtime did
	// not run it: try another, a few times.
	for attempt := 0; ; attempt++ {
		res, err := s.run(r.Context(), fn, req, requestID)
		if errors.Is(err, invoke.ErrSandboxGone) && attempt < 3 {
			continue
		}
		if err != nil {
			return err
		}
		return s.writeResult(w, logType, res)
	}
}

// run gets a sandbox and runs the invocation in it.
func (s *Server) run(ctx context.Context, fn *store.Function, req *invoke.Request, requestID string) (*invoke.Result, error) {
	a, err := s.cfg.Pool.Acquire(ctx, fn)
	var ie *invoke.InitError
	if errors.As(err, &ie) {
		s.log.Info("init failed", "function", fn.Key(), "request_id", requestID, "error_type", ie.Type)
		return &invoke.Result{
			FunctionError: "Unhandled",
			Payload:       errorJSON(ie.Type, "RequestId: "+requestID+" Error: "+ie.Message),
			Log:           ie.Log,
		}, nil
	}
	if err != nil {
		return nil, err
	}
	healthy := false
	defer func() { s.cfg.Pool.Release(a, healthy) }()
	req.InitDuration = 0
	if a.Cold {
		req.InitDuration = a.InitDuration
	}
	res, err := a.Worker.Invoke(ctx, a.SandboxID, req)
	if err != nil {
		return nil, err
	}
	healthy = !res.Discard
	return res, nil
}

func (s *Server) writeResult(w http.ResponseWriter, logType string, res *invoke.Result) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amz-Executed-Version", lambdaapi.VersionLatest)
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	if logType == "Tail" {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(res.Log))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
	return nil
}

func tooLarge() error {
	return lambdaapi.Errorf(lambdaapi.RequestTooLarge,
		"Request must be smaller than %d bytes for the InvokeFunction operation", MaxRequestPayload)
}

// decodeClientContext checks X-Amz-Client-Context (base64 JSON, at most
// 3,583 bytes) and returns the JSON.
func decodeClientContext(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	bad := lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "Client context must be a valid Base64-encoded JSON object.")
	if len(v) > maxClientContext {
		return "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"Client context must be smaller than %d bytes.", maxClientContext)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !json.Valid(b) {
		return "", bad
	}
	return string(b), nil
}

func errorJSON(typ, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{msg, typ})
	return b
}

// writeError is the one place the Front End turns errors into HTTP.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	le := lambdaapi.AsError(err)
	if le.Type == lambdaapi.Service {
		s.log.Error("invoke failed", "path", r.URL.Path, "request_id", w.Header().Get("X-Amzn-RequestId"), "err", err)
	}
	b, _ := json.Marshal(le)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", le.Type)
	if le.Type == lambdaapi.TooManyRequests && le.RetryAfterSeconds != "" {
		w.Header().Set("Retry-After", le.RetryAfterSeconds)
	}
	w.WriteHeader(le.Status())
	_, _ = w.Write(b)
}
