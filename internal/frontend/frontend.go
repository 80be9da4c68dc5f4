// Package frontend is the Front End Invoke: it authenticates each invoke,
// resolves the function and loads its configuration (cached, invalidated by
// a watch on the store), asks the Counting Service for a slot and the
// Worker Manager for a sandbox, then calls Invoke on that sandbox's worker.
package frontend

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/stagetime"
	"github.com/emberfn/ember/internal/store"
)

// Lambda's limits on a synchronous invoke.
const (
	MaxRequestPayload = 6 * 1024 * 1024 // 6,291,456 bytes
	maxClientContext  = 3583
	// MaxEventPayload is the limit of an asynchronous (Event) invoke.
	MaxEventPayload = 1024 * 1024 // 1,048,576 bytes
)

// EventQueue accepts asynchronous (Event) invokes durably (internal/async):
// Enqueue returns nil only once the event is stored. qualifier is as the
// caller gave it ("" for unqualified).
type EventQueue interface {
	// traceID is the caller's X-Amzn-Trace-Id, or "".
	Enqueue(ctx context.Context, account, name, qualifier string, payload []byte, requestID, traceID string) error
}

// Authenticator verifies a request's signature.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request, body []byte, service string) (auth.Principal, error)
}

// preAuthenticator is an Authenticator that can check a request's
// signature header, date and access key before its body is read
// (auth.Verifier.Precheck).
type preAuthenticator interface {
	Precheck(ctx context.Context, r *http.Request, service string) error
}

// precheckAbove is the body size (declared, or unknown) over which the
// checks that need no body run before the body is read: an unsigned or
// unknown caller makes Ember buffer at most this much. Smaller bodies are
// read first and verified once, which keeps the warm path to one check.
const precheckAbove = 64 << 10

// Counter grants a concurrency slot (the Counting Service).
type Counter interface {
	// Acquire takes a slot for one invoke of version ("$LATEST" or a
	// number) of function, held at most for timeout (plus a grace).
	Acquire(ctx context.Context, account, function, version string, timeout time.Duration) (release func(), err error)
}

// Pool hands out sandboxes (the Worker Manager).
type Pool interface {
	Acquire(ctx context.Context, fn *store.Function) (invoke.Assignment, error)
	Release(a invoke.Assignment, healthy bool)
	// Retire destroys idle sandboxes of one version of a function (target
	// account.name:version) or of every version (target account.name).
	Retire(target string)
}

// Functions reads function configuration (the store).
type Functions interface {
	GetFunction(ctx context.Context, account, name string) (store.Revision, error)
	GetVersion(ctx context.Context, account, name, version string) (store.Function, error)
	GetAlias(ctx context.Context, account, function, alias string) (store.AliasRevision, error)
	WatchFunctions(ctx context.Context, initial bool, fn func(account, name string, f *store.Function)) error
	WatchVersions(ctx context.Context, fn func(account, name, version string, f *store.Function)) error
	WatchAliases(ctx context.Context, fn func(account, function, alias string, a *store.Alias)) error
}

// Recorder receives the invoke metrics (metrics.Metrics).
type Recorder interface {
	InvokeStarted(account, function string)
	// InvokeDone: outcome is success, function_error, timeout,
	// platform_error or throttled; duration is how long the function ran.
	InvokeDone(account, function, outcome string, duration time.Duration)
	ColdStart(account, function string, initDuration time.Duration)
	Throttled(account, function, reason string)
}

// Config configures the Front End; every interface is required but Metrics.
type Config struct {
	// Metrics, if set, is told of every invoke.
	Metrics   Recorder
	Auth      Authenticator
	Counter   Counter
	Pool      Pool
	Functions Functions
	Region    string // default us-east-1
	Logger    *slog.Logger
	// Rand, for tests, picks an alias's version: it returns a number in
	// [0, 1) (default math/rand/v2's Float64).
	Rand func() float64
	// Events, if set, takes Event invokes; without it they answer 400.
	// SetEventQueue sets it later (the queue's pollers need the Server).
	Events EventQueue
}

// Server is the Invoke API's HTTP handler.
//
// It caches what invokes read: $LATEST (invalidated by a watch on the
// functions bucket), published versions (immutable: kept until deleted, or
// until their function is), and aliases (invalidated by a watch on the
// aliases bucket). A read that raced an invalidation is not cached.
type Server struct {
	cfg Config
	log *slog.Logger

	events atomic.Pointer[EventQueue]

	mu    sync.RWMutex
	gen   uint64              // counts invalidations
	cache map[string]*fnCache // by account.name
	// retired is, by account.name, the $LATEST revision whose
	// predecessors' sandboxes were retired: a change told twice (by this
	// process's write, then by the watch) retires them once.
	retired map[string]string
}

// fnCache is what the Front End knows of one function.
type fnCache struct {
	latest   *store.Function
	versions map[string]*store.Function
	aliases  map[string]*store.Alias
}

// New makes the Front End.
func New(cfg Config) *Server {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopRecorder{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "frontend"), cache: map[string]*fnCache{}}
	if cfg.Events != nil {
		s.SetEventQueue(cfg.Events)
	}
	return s
}

// SetEventQueue makes q take Event invokes from now on.
func (s *Server) SetEventQueue(q EventQueue) { s.events.Store(&q) }

// Run keeps the configuration cache current until ctx ends, and retires
// the sandboxes of functions and versions that change or go away. It
// returns when ctx ends or a watch fails (then it stops the others).
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	run := func(watch func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := watch()
			cancel() // one watch ended: the cache is no longer kept current
			errs <- err
		}()
	}
	run(func() error { return s.cfg.Functions.WatchFunctions(ctx, false, s.functionChanged) })
	run(func() error { return s.cfg.Functions.WatchVersions(ctx, s.versionChanged) })
	run(func() error { return s.cfg.Functions.WatchAliases(ctx, s.aliasChanged) })
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
	}
	return first
}

// functionChanged handles a change (f) or delete (nil) of a $LATEST.
func (s *Server) functionChanged(account, name string, f *store.Function) {
	key := account + "." + name
	s.mu.Lock()
	s.gen++
	var old *store.Function
	if c := s.cache[key]; c != nil {
		old = c.latest
		c.latest = nil
		if f == nil {
			delete(s.cache, key)
		}
	}
	seen := f != nil && s.retired[key] == f.RevisionID
	if f == nil {
		delete(s.retired, key)
	} else {
		if s.retired == nil {
			s.retired = map[string]string{}
		}
		s.retired[key] = f.RevisionID
	}
	s.mu.Unlock()
	switch {
	case f == nil:
		s.cfg.Pool.Retire(key) // every version's sandboxes
	case seen:
		// Told already (FunctionWritten, then the watch).
	case old == nil || old.RevisionID != f.RevisionID:
		// Only a new revision of code or configuration retires $LATEST's
		// sandboxes; a change of reserved concurrency does not.
		s.cfg.Pool.Retire(f.VersionKey())
	}
}

// versionChanged handles a published version created (f) or deleted (nil).
func (s *Server) versionChanged(account, name, version string, f *store.Function) {
	key := account + "." + name
	s.mu.Lock()
	s.gen++
	if c := s.cache[key]; c != nil {
		delete(c.versions, version)
	}
	s.mu.Unlock()
	if f == nil {
		s.cfg.Pool.Retire(key + ":" + version)
	}
}

// aliasChanged handles an alias changed (a) or deleted (nil).
func (s *Server) aliasChanged(account, function, alias string, _ *store.Alias) {
	key := account + "." + function
	s.mu.Lock()
	s.gen++
	if c := s.cache[key]; c != nil {
		delete(c.aliases, alias)
	}
	s.mu.Unlock()
}

// cached runs read under the cache lock and returns what it found.
func (s *Server) cached(key string, read func(c *fnCache) bool) (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.cache[key]
	if c == nil {
		return s.gen, false
	}
	return s.gen, read(c)
}

// fill stores what was read at generation gen, unless an invalidation
// came in between (then what was read may already be stale).
func (s *Server) fill(key string, gen uint64, write func(c *fnCache)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	c := s.cache[key]
	if c == nil {
		c = &fnCache{versions: map[string]*store.Function{}, aliases: map[string]*store.Alias{}}
		s.cache[key] = c
	}
	write(c)
}

// target is what an invoke runs.
type target struct {
	fn *store.Function // $LATEST or a published version
	// invokedARN is the ARN as the caller qualified it.
	invokedARN string
}

// function resolves the caller's function reference: $LATEST, a published
// version, or an alias (which picks one of its versions by weight).
func (s *Server) function(ctx context.Context, p auth.Principal, ref lambdaapi.FunctionRef) (target, error) {
	notFound := func(qualifier string) error {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found: %s",
			lambdaapi.QualifiedARN(s.cfg.Region, p.AccountID, ref.Name, qualifier))
	}
	if (ref.Account != "" && ref.Account != p.AccountID) || (ref.Region != "" && ref.Region != s.cfg.Region) {
		return target{}, notFound(ref.Qualifier)
	}
	key := p.AccountID + "." + ref.Name
	// $LATEST first, also for versions and aliases: a function that was
	// deleted has none, whatever its delete left behind.
	var latest *store.Function
	gen, ok := s.cached(key, func(c *fnCache) bool { latest = c.latest; return latest != nil })
	if !ok {
		rev, err := s.cfg.Functions.GetFunction(ctx, p.AccountID, ref.Name)
		if errors.Is(err, store.ErrNotFound) {
			return target{}, notFound(ref.Qualifier)
		}
		if err != nil {
			return target{}, err
		}
		latest = &rev.Function
		s.fill(key, gen, func(c *fnCache) { c.latest = latest })
	}
	t := target{fn: latest, invokedARN: s.qualifiedARN(p.AccountID, ref.Name, ref.Qualifier)}
	version := ref.Qualifier
	if version != "" && version != lambdaapi.VersionLatest && !lambdaapi.IsVersionNumber(version) {
		a, err := s.alias(ctx, key, p.AccountID, ref.Name, version)
		if errors.Is(err, store.ErrNotFound) {
			return target{}, notFound(ref.Qualifier)
		}
		if err != nil {
			return target{}, err
		}
		version = s.pick(a)
	}
	if version == "" || version == lambdaapi.VersionLatest {
		return t, nil
	}
	var v *store.Function
	gen, ok = s.cached(key, func(c *fnCache) bool { v = c.versions[version]; return v != nil })
	if !ok {
		f, err := s.cfg.Functions.GetVersion(ctx, p.AccountID, ref.Name, version)
		if errors.Is(err, store.ErrNotFound) {
			return target{}, notFound(version)
		}
		if err != nil {
			return target{}, err
		}
		v = &f
		s.fill(key, gen, func(c *fnCache) { c.versions[version] = v })
	}
	t.fn = v
	return t, nil
}

// qualifiedARN is lambdaapi.QualifiedARN in this region, made with one
// allocation.
func (s *Server) qualifiedARN(account, name, qualifier string) string {
	if qualifier == "" {
		return "arn:" + lambdaapi.Partition + ":lambda:" + s.cfg.Region + ":" + account + ":function:" + name
	}
	return "arn:" + lambdaapi.Partition + ":lambda:" + s.cfg.Region + ":" + account + ":function:" + name + ":" + qualifier
}

// parseFunctionRef is lambdaapi.ParseFunctionRef, without its regular
// expressions for the common case of a plain function name.
func parseFunctionRef(s string) (lambdaapi.FunctionRef, error) {
	if len(s) == 0 || len(s) > 64 || s == "arn" { // "arn" alone is a malformed ARN
		return lambdaapi.ParseFunctionRef(s)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return lambdaapi.ParseFunctionRef(s)
		}
	}
	return lambdaapi.FunctionRef{Name: s}, nil
}

// alias reads an alias, from the cache if it can.
func (s *Server) alias(ctx context.Context, key, account, function, name string) (*store.Alias, error) {
	var a *store.Alias
	gen, ok := s.cached(key, func(c *fnCache) bool { a = c.aliases[name]; return a != nil })
	if ok {
		return a, nil
	}
	ar, err := s.cfg.Functions.GetAlias(ctx, account, function, name)
	if err != nil {
		return nil, err
	}
	a = &ar.Alias
	s.fill(key, gen, func(c *fnCache) { c.aliases[name] = a })
	return a, nil
}

// pick chooses the version an alias invocation runs: each additional
// version with its weight's probability, else the alias's own version.
func (s *Server) pick(a *store.Alias) string {
	x := s.cfg.Rand()
	for v, w := range a.Weights {
		if x < w {
			return v
		}
		x -= w
	}
	return a.FunctionVersion
}

// Response headers in canonical form, set without Header.Set's
// canonicalization; their values are shared and never modified.
const hdrRequestID = "X-Amzn-Requestid" // X-Amzn-RequestId

var (
	contentTypeJSON = []string{"application/json"}
	versionLatest   = []string{lambdaapi.VersionLatest}
)

// ServeHTTP serves POST /2015-03-31/functions/{fn}/invocations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stagetime.Mark(stagetime.FrontEnd)
	requestID := lambdaapi.NewRequestID()
	w.Header()[hdrRequestID] = []string{requestID}
	if err := s.invoke(w, r, requestID); err != nil {
		s.writeError(w, r, err)
	}
}

// readBody reads the request's body, at most MaxRequestPayload bytes: one
// allocation of its exact size when the request says its length.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxRequestPayload {
		return nil, tooLarge()
	}
	if r.ContentLength >= 0 {
		body := make([]byte, r.ContentLength)
		_, err := io.ReadFull(r.Body, body)
		if err == nil {
			// The server's body reader knows it is at its end: this
			// marks it so, without reading anything.
			var one [1]byte
			if n, e := r.Body.Read(one[:]); n > 0 || (e != nil && e != io.EOF) {
				err = cmp.Or(e, io.ErrUnexpectedEOF)
			}
		}
		if err != nil {
			return nil, lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not read request body: %v", err)
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestPayload))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not read request body: %v", err)
	}
	return body, nil
}

// headerValue is h.Get(key) for a key already in canonical form.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, requestID string) error {
	var tr *invokeTrace
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		tr = &invokeTrace{t0: time.Now()}
	}
	if pre, ok := s.cfg.Auth.(preAuthenticator); ok && (r.ContentLength < 0 || r.ContentLength > precheckAbove) &&
		r.ContentLength <= MaxRequestPayload {
		if err := pre.Precheck(r.Context(), r, "lambda"); err != nil {
			return err
		}
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	p, err := s.cfg.Auth.Verify(r.Context(), r, body, "lambda")
	if err != nil {
		return err
	}
	tr.mark(stepAuth)
	ref, err := parseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		// No Qualifier: nothing to parse.
	} else if q := r.URL.Query().Get("Qualifier"); q != "" {
		if err := lambdaapi.CheckQualifier(q); err != nil {
			return err
		}
		if ref.Qualifier != "" && ref.Qualifier != q {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"The derived qualifier from the function name does not match the specified qualifier.")
		}
		ref.Qualifier = q
	}
	invType := headerValue(r.Header, "X-Amz-Invocation-Type")
	switch invType {
	case "", "RequestResponse", "DryRun":
	case "Event":
		if s.events.Load() == nil {
			return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"Asynchronous invocation (X-Amz-Invocation-Type: Event) is not enabled on this Ember; use RequestResponse")
		}
		if len(body) > MaxEventPayload {
			return lambdaapi.Errorf(lambdaapi.RequestTooLarge,
				"Request must be smaller than %d bytes for the InvokeFunction operation with the Event invocation type", MaxEventPayload)
		}
	default:
		return lambdaapi.Validationf(
			"Value '%s' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [DryRun, RequestResponse, Event]", invType)
	}
	logType := headerValue(r.Header, "X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		return lambdaapi.Validationf(
			"Value '%s' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]", logType)
	}
	clientContext, err := decodeClientContext(headerValue(r.Header, "X-Amz-Client-Context"))
	if err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	} else if !json.Valid(body) {
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not parse request body into json: Unexpected character in the payload")
	}
	t, err := s.function(r.Context(), p, ref)
	if err != nil {
		return err
	}
	tr.mark(stepLookup)
	fn := t.fn
	switch invType {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return nil
	case "Event":
		// The event is durable once Enqueue returns; the queue's pollers
		// run it (through InvokeAsync) from then on, with the caller's
		// trace header if it sent one.
		if err := (*s.events.Load()).Enqueue(r.Context(), p.AccountID, ref.Name, ref.Qualifier, body, requestID,
			callerTrace(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	// Lambda always gives the runtime a trace header: the caller's, or
	// one it makes.
	traceID := callerTrace(r)
	if traceID == "" {
		traceID = newTraceID(time.Now())
	}
	req := &invoke.Request{
		RequestID: requestID, Payload: body, ClientContext: clientContext,
		TraceID: traceID, Version: fn.VersionName(), InvokedFunctionARN: t.invokedARN,
	}
	res, err := s.execute(r.Context(), p.AccountID, fn, req, tr)
	if err != nil {
		return err
	}
	err = s.writeResult(w, logType, fn.VersionName(), res)
	if tr != nil && tr.cold {
		tr.mark(stepWrite)
		ctx := invoke.WithLogAttrs(r.Context(), slog.String("request_id", requestID),
			slog.String("function", fn.VersionKey()), slog.String("sandbox", tr.sandbox))
		s.log.DebugContext(ctx, "cold invoke", "total", time.Since(tr.t0), "auth", tr.steps[stepAuth],
			"lookup", tr.steps[stepLookup], "slot", tr.steps[stepSlot], "sandbox_wait", tr.steps[stepSandbox],
			"invoke", tr.steps[stepInvoke], "write", tr.steps[stepWrite])
	}
	return err
}

// maxCallerTrace is the longest X-Amzn-Trace-Id kept from a caller: an
// X-Ray header is about 100 bytes (with Lineage and a few fields more, a
// few hundred); a longer one is ignored as malformed, and the invoke gets
// a new one, so that a caller cannot make every event it queues or every
// /next answer carry up to the server's header limit (1 MB).
const maxCallerTrace = 1024

// callerTrace is the caller's X-Amzn-Trace-Id, or "" if it sent none or
// one too long.
func callerTrace(r *http.Request) string {
	if v := headerValue(r.Header, "X-Amzn-Trace-Id"); len(v) <= maxCallerTrace {
		return v
	}
	return ""
}

// traceIDLen is the length of a trace header newTraceID makes.
const traceIDLen = len("Root=1-") + 8 + 1 + 24 + len(";Parent=") + 16 + len(";Sampled=0")

// newTraceID is the X-Ray trace header of an invoke whose caller sent
// none, in the form Lambda gives the runtime then:
// Root=1-{epoch seconds, 8 hex digits}-{96 random bits, 24 hex
// digits};Parent={64 random bits, 16 hex digits};Sampled=0 (not sampled:
// Ember records no traces). One allocation, for the string.
func newTraceID(now time.Time) string {
	var b [traceIDLen]byte
	n := copy(b[:], "Root=1-")
	putHex(b[n:n+8], uint64(uint32(now.Unix())))
	n += 8
	b[n] = '-'
	n++
	putHex(b[n:n+8], rand.Uint64())
	putHex(b[n+8:n+24], rand.Uint64())
	n += 24
	n += copy(b[n:], ";Parent=")
	putHex(b[n:n+16], rand.Uint64())
	n += 16
	copy(b[n:], ";Sampled=0")
	return string(b[:])
}

// putHex writes the low len(dst) hex digits of v into dst, lower case.
func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&0xf]
		v >>= 4
	}
}

// invokeTrace is how long each step of one invoke took, for the debug
// line of a cold start: reading and verifying the request, resolving the
// function, the concurrency slot, getting a sandbox (the Worker Manager:
// the cold start itself), the invocation in it, and writing the response.
// Its methods do nothing on a nil trace (debug logging off).
type invokeTrace struct {
	t0, last time.Time
	cold     bool
	sandbox  string // the sandbox's id, for the log line
	steps    [numSteps]time.Duration
}

// The steps of an invokeTrace.
const (
	stepAuth = iota
	stepLookup
	stepSlot
	stepSandbox
	stepInvoke
	stepWrite
	numSteps
)

// mark ends step i now.
func (t *invokeTrace) mark(i int) {
	if t == nil {
		return
	}
	now := time.Now()
	if t.last.IsZero() {
		t.last = t.t0
	}
	t.steps[i] = now.Sub(t.last)
	t.last = now
}

// InvokeAsync runs one queued asynchronous event like a synchronous invoke
// (Counting, then a sandbox from the Worker Manager) and returns its result
// and the version that ran. Errors are platform errors and throttles (a
// *lambdaapi.Error with TooManyRequestsException), or
// ResourceNotFoundException when the function is gone. traceID is the
// caller's trace header, kept with the event; "" makes a new one.
func (s *Server) InvokeAsync(ctx context.Context, account, name, qualifier string, payload []byte, requestID, traceID string) (*invoke.Result, string, error) {
	t, err := s.function(ctx, auth.Principal{AccountID: account}, lambdaapi.FunctionRef{Name: name, Qualifier: qualifier})
	if err != nil {
		return nil, "", err
	}
	if traceID == "" {
		traceID = newTraceID(time.Now())
	}
	req := &invoke.Request{
		RequestID: requestID, Payload: payload, TraceID: traceID,
		Version: t.fn.VersionName(), InvokedFunctionARN: t.invokedARN,
	}
	res, err := s.execute(ctx, account, t.fn, req, nil)
	if err != nil {
		return nil, "", err
	}
	return res, t.fn.VersionName(), nil
}

// execute takes a concurrency slot and runs req in a sandbox.
func (s *Server) execute(ctx context.Context, account string, fn *store.Function, req *invoke.Request, tr *invokeTrace) (*invoke.Result, error) {
	// Every line Ember logs for this invoke carries its request id and
	// function (and, once known, its sandbox).
	ctx = invoke.WithLogAttrs(ctx, slog.String("request_id", req.RequestID), slog.String("function", fn.VersionKey()))
	release, err := s.cfg.Counter.Acquire(ctx, account, fn.Name, fn.VersionName(), time.Duration(fn.Timeout)*time.Second)
	if err != nil {
		s.throttled(account, fn.Name, err)
		return nil, err
	}
	defer release() // on every path, panics included
	tr.mark(stepSlot)
	s.cfg.Metrics.InvokeStarted(account, fn.Name)
	outcome, ran := "platform_error", time.Duration(0)
	defer func() { s.cfg.Metrics.InvokeDone(account, fn.Name, outcome, ran) }()
	// A sandbox that died before the invocation reached its runtime did
	// not run it: try another, a few times.
	for attempt := 0; ; attempt++ {
		res, err := s.run(ctx, fn, req, req.RequestID, tr)
		if errors.Is(err, invoke.ErrSandboxGone) && attempt < 3 {
			continue
		}
		if err != nil {
			if s.throttled(account, fn.Name, err) {
				outcome = "throttled"
			}
			return nil, err
		}
		outcome, ran = outcomeOf(res), res.Duration
		return res, nil
	}
}

// run gets a sandbox and runs the invocation in it.
func (s *Server) run(ctx context.Context, fn *store.Function, req *invoke.Request, requestID string, tr *invokeTrace) (*invoke.Result, error) {
	a, err := s.cfg.Pool.Acquire(ctx, fn)
	tr.mark(stepSandbox)
	if tr != nil {
		tr.cold, tr.sandbox = a.Cold, a.SandboxID
	}
	var ie *invoke.InitError
	if errors.As(err, &ie) {
		s.cfg.Metrics.ColdStart(fn.AccountID, fn.Name, 0)
		s.log.InfoContext(ctx, "init failed", "error_type", ie.Type, "message", ie.Message)
		return &invoke.Result{
			FunctionError: "Unhandled",
			Payload:       errorJSON(ie.Type, "RequestId: "+requestID+" Error: "+ie.Message),
			Log:           ie.Log,
		}, nil
	}
	if err != nil {
		return nil, err
	}
	ctx = invoke.WithLogAttrs(ctx, slog.String("sandbox", a.SandboxID))
	healthy := false
	defer func() { s.cfg.Pool.Release(a, healthy) }()
	req.InitDuration = 0
	if a.Cold {
		req.InitDuration = a.InitDuration
		s.cfg.Metrics.ColdStart(fn.AccountID, fn.Name, a.InitDuration)
	}
	stagetime.Mark(stagetime.ToWorker)
	res, err := a.Worker.Invoke(ctx, a.SandboxID, req)
	stagetime.Mark(stagetime.FromWorker)
	tr.mark(stepInvoke)
	if err != nil {
		s.log.WarnContext(ctx, "invoke failed in its sandbox", "err", err)
		return nil, err
	}
	healthy = !res.Discard
	s.log.DebugContext(ctx, "invoked", "cold", a.Cold, "duration", res.Duration, "function_error", res.FunctionError)
	return res, nil
}

func (s *Server) writeResult(w http.ResponseWriter, logType, version string, res *invoke.Result) error {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	if version == lambdaapi.VersionLatest {
		h["X-Amz-Executed-Version"] = versionLatest
	} else {
		h["X-Amz-Executed-Version"] = []string{version}
	}
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	if logType == "Tail" {
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(res.Log))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
	stagetime.Mark(stagetime.ResponseWritten)
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
		s.log.Error("invoke failed", "function", r.PathValue("fn"), "request_id", w.Header().Get("X-Amzn-RequestId"), "err", err)
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

// throttled counts a 429 in the metrics and says whether err was one.
func (s *Server) throttled(account, function string, err error) bool {
	var le *lambdaapi.Error
	if errors.As(err, &le) && le.Type == lambdaapi.TooManyRequests {
		s.cfg.Metrics.Throttled(account, function, le.Reason)
		return true
	}
	return false
}

// outcomeOf names how an invocation ended, for the metrics.
func outcomeOf(res *invoke.Result) string {
	switch {
	case res.FunctionError == "":
		return "success"
	case bytes.Contains(res.Payload, []byte(`"errorType":"Sandbox.Timedout"`)):
		return "timeout"
	}
	return "function_error"
}

type nopRecorder struct{}

func (nopRecorder) InvokeStarted(string, string)                     {}
func (nopRecorder) InvokeDone(string, string, string, time.Duration) {}
func (nopRecorder) ColdStart(string, string, time.Duration)          {}
func (nopRecorder) Throttled(string, string, string)                 {}
