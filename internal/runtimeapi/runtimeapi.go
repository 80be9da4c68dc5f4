// Package runtimeapi serves the Lambda Runtime API (version 2018-06-01) to
// the runtime of one sandbox, and lets the worker hand that runtime one
// invocation at a time.
//
// The worker makes a Server with New, runs Serve on a listener it opened
// inside the sandbox, starts the runtime with AWS_LAMBDA_RUNTIME_API pointing
// at that listener, waits for WaitInit, then calls Invoke for each event.
// Close ends it all.
//
// # Protocol decisions
//
// The behaviour follows Lambda's own Runtime API server (RAPID, as shipped in
// the official runtime interface emulator) where it is observable:
//
//   - GET /next long-polls. The first /next marks the runtime initialized.
//     A /next that arrives while the current invocation is delivered but not
//     yet answered gets that same invocation again (same request id, same
//     deadline), as RAPID does: a runtime that asks again has lost the event,
//     and nothing is lost if its first /next dropped the connection (so
//     concurrent pollers would all get it; a Lambda runtime polls from one
//     loop). A /next while a response is being received waits for the next
//     invocation.
//   - POST /{id}/response and /{id}/error are checked before anything
//     changes: when no invocation awaits a reply (none given yet, already
//     answered, abandoned by Invoke) the answer is 403 InvalidStateTransition;
//     when one does but the id is another, 400 InvalidRequestID. A second
//     answer for the same id therefore gets 403.
//   - A body larger than Config.MaxResponse gets 413 RequestEntityTooLarge and
//     the invocation fails with Function.ResponseSizeTooLarge. A body cut
//     short (the runtime's connection broke) gets 400 and the invocation
//     still awaits its answer.
//   - Lambda-Runtime-Function-Response-Mode: streaming (or buffered) is
//     accepted and the response is buffered, which is what Lambda does when
//     a streaming function is called with Invoke; chunked bodies and the
//     Lambda-Runtime-Function-Error-Type/-Body trailers a runtime sends when
//     its stream fails mid-way are honoured. Any other mode is 400
//     InvalidFunctionResponseMode.
//   - POST /init/error is accepted only before the first /next; afterwards
//     (and a second time) it gets 403. After an init error, /next gets 403.
//     An init error body over Config.MaxResponse gets 413 and changes
//     nothing.
//   - An error's type is the Lambda-Runtime-Function-Error-Type header, else
//     the errorType of the JSON body, else "Runtime.Unknown".
//   - Requests after Close get 500, which the Runtime API defines as
//     "container error, the runtime should exit".
//   - The HTTP/1.1 is Ember's own (wire.go), not net/http's: one goroutine
//     per connection and one write per answer. A malformed request gets
//     400 with an error document and the connection is closed. A runtime
//     may hold at most 64 connections; at the limit the one that has
//     waited in /next the longest is dropped for a new one. A runtime
//     that drops a long-polling /next is noticed only when the invocation
//     is written to it (net/http would notice at once with a background
//     read per request): it took nothing, and its next /next gets the
//     same invocation.
//
// # Concurrency
//
// One mutex (Server.mu) guards all state; it is never held across I/O.
// Serve runs one goroutine per connection of the runtime (wire.go), which
// reads a request, runs its handler and answers it; Invoke and WaitInit
// run on the caller's goroutine. Close closes the listeners and
// connections and waits for those goroutines.
package runtimeapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/stagetime"
)

// DefaultMaxResponse is Lambda's limit on a synchronous response: 6 MB, in
// Lambda's own arithmetic.
const DefaultMaxResponse = 6291556

// Errors returned by Server methods.
var (
	// ErrClosed is returned by WaitInit and Invoke once Close has been
	// called.
	ErrClosed = errors.New("runtimeapi: server closed")
	// ErrBusy is returned by Invoke while another Invoke is in progress: a
	// sandbox runs one invocation at a time.
	ErrBusy = errors.New("runtimeapi: an invocation is already in progress")
	// ErrNotReady is returned by Invoke when the runtime reported an init
	// error; the returned error also wraps that *FunctionError.
	ErrNotReady = errors.New("runtimeapi: runtime failed to initialize")
	// ErrNotDelivered wraps the reason an Invoke gave up (ctx, Close)
	// before any GET /next had taken the invocation: the function never
	// saw it, so it may be run elsewhere.
	ErrNotDelivered = errors.New("runtimeapi: invocation not delivered to the runtime")
	// ErrInvalidInvocation is returned by Invoke for an Invocation it cannot
	// hand to a runtime (no request id, no deadline, a header value with
	// control characters).
	ErrInvalidInvocation = errors.New("runtimeapi: invalid invocation")
)

// Config configures a Server. The zero value is usable.
type Config struct {
	// FunctionARN is the Lambda-Runtime-Invoked-Function-Arn sent with an
	// invocation that does not set its own.
	FunctionARN string
	// MaxResponse bounds the body of a runtime's /response, /error and
	// /init/error, in bytes. Default DefaultMaxResponse.
	MaxResponse int64
	// Logger receives the server's diagnostics; "component" is added.
	// Default: discard.
	Logger *slog.Logger
}

// Invocation is one event for the runtime.
type Invocation struct {
	// RequestID identifies the invocation (a UUID in Lambda). It must be
	// letters, digits and "-._:~", at most 256 bytes: the runtime puts it
	// in a URL path.
	RequestID string
	// Payload is the event, sent as the body of /next. The server reads it
	// until the runtime has received it, which may be after Invoke has
	// returned (when the invocation was abandoned): treat it as immutable.
	Payload []byte
	// Deadline is when the invocation times out; the runtime gets it as
	// Lambda-Runtime-Deadline-Ms. Required.
	Deadline time.Time
	// InvokedFunctionARN overrides Config.FunctionARN (the ARN with the
	// qualifier the caller used).
	InvokedFunctionARN string
	// ClientContext is the client context JSON, already decoded from the
	// base64 of X-Amz-Client-Context: Lambda-Runtime-Client-Context carries
	// the JSON itself, which runtimes parse directly.
	ClientContext string
	// CognitoIdentity is the Cognito identity JSON
	// ({"cognitoIdentityId":...,"cognitoIdentityPoolId":...}), if any.
	CognitoIdentity string
	// TraceID is the X-Ray tracing header (Root=...;Parent=...;Sampled=...),
	// if any.
	TraceID string
}

// Response is the runtime's answer to an invocation.
type Response struct {
	// Payload is the body of the runtime's /response, or of its /error.
	Payload []byte
	// FunctionError is "" on success; otherwise the error type the runtime
	// reported. Turning it into X-Amz-Function-Error: Unhandled is the
	// caller's business.
	FunctionError string
}

// FunctionError is a failure the function is blamed for outside a normal
// /error answer: an init error, or a response too large.
type FunctionError struct {
	// Type is the error type, e.g. "Runtime.ExitError" or
	// "Function.ResponseSizeTooLarge".
	Type string
	// Message is the human-readable message (errorMessage).
	Message string
	// Body is the error document as Lambda returns it to the invoker: the
	// runtime's raw /init/error body, or one made here as
	// {"errorMessage":...,"errorType":...}.
	Body []byte
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Server phases. Allowed transitions, all in this file or handlers.go:
//
//	starting    -> ready        first GET /next
//	starting    -> initFailed   POST /init/error
//	any         -> closed       Close
type phase uint8

const (
	phaseStarting phase = iota
	phaseReady
	phaseInitFailed
	phaseClosed
)

// Invocation states. Allowed transitions:
//
//	none       -> pending     Invoke posts it
//	pending    -> delivered   GET /next hands it out
//	delivered  -> delivered   GET /next hands it out again
//	delivered  -> receiving   POST /response or /error for its id (claim)
//	receiving  -> delivered   the body could not be read (unclaim)
//	receiving  -> done        the answer is recorded (finish)
//	done       -> none        Invoke collects the answer
//	pending, delivered, receiving -> none   Invoke gives up (ctx, Close)
type callState uint8

const (
	callNone callState = iota
	callPending
	callDelivered
	callReceiving
	callDone
)

// call is the server's one invocation slot. seq tells a handler that claimed
// an invocation whether the slot still holds that invocation when it
// finishes reading.
type call struct {
	seq   uint64
	state callState
	out   *outgoing
	resp  *Response
	err   error
}

// Server is a Runtime API server for one sandbox. Its methods are safe for
// concurrent use.
type Server struct {
	maxResponse int64
	functionARN string
	log         *slog.Logger
	bufs        sync.Pool // *bytes.Buffer for chunked bodies

	// closed is closed by Close. initDone is closed when the phase leaves
	// starting. result carries one token each time cur becomes done; only
	// the single Invoke in progress receives it.
	closed   chan struct{}
	initDone chan struct{}
	result   chan struct{}

	// conns counts the connection goroutines; Add happens under mu while
	// not closed, so Close's Wait follows every Add.
	conns sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	open      map[net.Conn]*conn
	phase     phase
	initErr   *FunctionError // set in phaseInitFailed
	// initErrBusy: a POST /init/error's body is being read.
	initErrBusy bool
	invoking    bool // an Invoke is in progress
	cur         call
	// wake is closed (and set to nil) when cur becomes deliverable; GET
	// /next waiters make it on demand.
	wake chan struct{}
}

// New returns a Server; call Serve to start answering the runtime.
func New(cfg Config) *Server {
	if cfg.MaxResponse <= 0 {
		cfg.MaxResponse = DefaultMaxResponse
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "runtimeapi")
	s := &Server{
		maxResponse: cfg.MaxResponse,
		functionARN: cfg.FunctionARN,
		log:         lg,
		closed:      make(chan struct{}),
		initDone:    make(chan struct{}),
		result:      make(chan struct{}, 1),
		bufs:        sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	s.listeners = make(map[net.Listener]struct{})
	s.open = make(map[net.Conn]*conn)
	return s
}

// Serve answers the runtime on ln until Close, and closes ln. It returns
// nil once Close has been called (also when Close came first, so that the
// caller's goroutine need not race it), or else the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.phase == phaseClosed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return nil
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || isTemporary(err) {
				// As net/http does: EMFILE and the like pass.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.closed:
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		switch {
		case s.phase == phaseClosed:
			s.mu.Unlock()
			nc.Close()
			return nil
		case len(s.open) >= maxConns:
			// A runtime uses one connection. At the limit, the one that
			// has waited in /next the longest is dropped for the new one
			// (a client that gave up on its long poll leaves it behind,
			// unnoticed until written to); with none waiting, the new one
			// is refused.
			victim := s.oldestPollerLocked()
			if victim == nil {
				s.mu.Unlock()
				s.log.Warn("too many connections from the runtime; closing a new one", "limit", maxConns)
				nc.Close()
				continue
			}
			victim.polling = false
			close(victim.evicted)
			victim.nc.Close()
			s.log.Debug("too many connections from the runtime; dropped the oldest long poll", "limit", maxConns)
		}
		c := newConn(s, nc)
		s.open[nc] = c
		s.conns.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops serving: it closes the listeners and connections, fails any
// waiting WaitInit and Invoke with ErrClosed, and returns once every
// connection's goroutine has returned. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.phase != phaseClosed {
		if s.phase == phaseStarting {
			close(s.initDone)
		}
		s.phase = phaseClosed
		close(s.closed)
	}
	var err error
	for ln := range s.listeners {
		if e := ln.Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	for nc := range s.open {
		nc.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
	return err
}

// WaitInit blocks until the runtime is ready for invocations (its first GET
// /next: nil), reports an init error (a *FunctionError), the server closes
// (ErrClosed) or ctx is done (ctx.Err()). The caller bounds ctx by the init
// timeout and cancels it when the runtime's process dies.
func (s *Server) WaitInit(ctx context.Context) error {
	select {
	case <-s.initDone:
	case <-ctx.Done():
		select {
		case <-s.initDone:
		default:
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseInitFailed:
		return s.initErr
	case phaseClosed:
		return ErrClosed
	}
	return nil
}

// Invoke hands inv to the runtime's waiting (or next) GET /next and waits
// for its /response or /error, or for ctx. On ctx done or Close the
// invocation is abandoned: a later answer for it gets 403 and changes
// nothing; the runtime is then still busy with it, so the caller should
// discard the sandbox, as Lambda does after a timeout.
//
// Invoke returns ErrBusy if another Invoke is in progress, ErrNotReady
// (wrapping the *FunctionError) after an init error, also one reported
// while Invoke waits for the runtime's first /next, and a *FunctionError
// of type Function.ResponseSizeTooLarge when the answer exceeded
// Config.MaxResponse. A function error is a Response, not an error.
func (s *Server) Invoke(ctx context.Context, inv *Invocation) (*Response, error) {
	stagetime.Mark(stagetime.RuntimeAPI)
	out, err := s.prepare(inv)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	switch {
	case s.phase == phaseClosed:
		s.mu.Unlock()
		return nil, ErrClosed
	case s.phase == phaseInitFailed:
		fe := s.initErr
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrNotReady, fe)
	case s.invoking:
		s.mu.Unlock()
		return nil, ErrBusy
	}
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.invoking = true
	s.cur.seq++
	seq := s.cur.seq
	s.cur.state = callPending
	s.cur.out = out
	s.wakeLocked()
	var initDone chan struct{} // watched only while the runtime may still fail init
	if s.phase == phaseStarting {
		initDone = s.initDone
	}
	s.mu.Unlock()

	var why error
	for why == nil {
		select {
		case <-s.result:
			stagetime.Mark(stagetime.InvokeResumed)
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.collectLocked()
		case <-ctx.Done():
			why = ctx.Err()
		case <-s.closed:
			why = ErrClosed
		case <-initDone:
			initDone = nil
			s.mu.Lock()
			if s.phase == phaseInitFailed {
				why = fmt.Errorf("%w: %w", ErrNotReady, s.initErr)
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.seq == seq && s.cur.state == callDone {
		// The answer was recorded while ctx or Close fired: its token is
		// in s.result (sent under mu), so this receive does not block.
		<-s.result
		return s.collectLocked()
	}
	undelivered := s.cur.seq == seq && s.cur.state == callPending
	s.invoking = false
	s.cur = call{seq: seq}
	if undelivered {
		return nil, fmt.Errorf("%w: %w", ErrNotDelivered, why)
	}
	return nil, why
}

// collectLocked takes the answer out of the done slot: done -> none.
func (s *Server) collectLocked() (*Response, error) {
	resp, err := s.cur.resp, s.cur.err
	s.cur = call{seq: s.cur.seq}
	s.invoking = false
	return resp, err
}

// wakeLocked wakes the GET /next handlers waiting for a deliverable
// invocation.
func (s *Server) wakeLocked() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// claim moves the invocation id from delivered to receiving. On refusal it
// returns the HTTP status and error type to answer with; state is
// unchanged.
func (s *Server) claim(id []byte) (seq uint64, status int, errType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.state != callDelivered {
		return 0, 403, errTypeInvalidStateTransition
	}
	if s.cur.out.id != string(id) {
		return 0, 400, errTypeInvalidRequestID
	}
	s.cur.state = callReceiving
	return s.cur.seq, 0, ""
}

// unclaim gives a claimed invocation back (receiving -> delivered) when its
// body could not be read, so that the runtime may answer again.
func (s *Server) unclaim(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.seq == seq && s.cur.state == callReceiving {
		s.cur.state = callDelivered
		s.wakeLocked()
	}
}

// finish records the answer of a claimed invocation (receiving -> done) and
// wakes Invoke. It reports false if the invocation was abandoned meanwhile.
func (s *Server) finish(seq uint64, resp *Response, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.seq != seq || s.cur.state != callReceiving {
		return false
	}
	s.cur.state = callDone
	s.cur.resp, s.cur.err = resp, err
	stagetime.Mark(stagetime.AnswerRecorded)
	s.result <- struct{}{} // never blocks: one token per done, Invoke drains it
	return true
}

// outgoing is an invocation as GET /next sends it, computed once per Invoke:
// head is the whole answer but its body, from the status line on.
type outgoing struct {
	id      string
	payload []byte
	head    []byte
}

// prepare validates inv and computes what /next sends.
func (s *Server) prepare(inv *Invocation) (*outgoing, error) {
	if inv == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidInvocation)
	}
	if !validRequestID(inv.RequestID) {
		return nil, fmt.Errorf("%w: request id %q", ErrInvalidInvocation, inv.RequestID)
	}
	if inv.Deadline.IsZero() {
		return nil, fmt.Errorf("%w: no deadline", ErrInvalidInvocation)
	}
	arn := inv.InvokedFunctionARN
	if arn == "" {
		arn = s.functionARN
	}
	optional := [...]struct{ name, value string }{
		{hdrARN, arn},
		{hdrTrace, inv.TraceID},
		{hdrClientContext, inv.ClientContext},
		{hdrCognito, inv.CognitoIdentity},
	}
	size := 200 + len(inv.RequestID)
	for _, h := range optional {
		if !validHeaderValue(h.value) {
			return nil, fmt.Errorf("%w: header value %q", ErrInvalidInvocation, h.value)
		}
		size += len(h.name) + len(h.value) + 4
	}
	h := make([]byte, 0, size)
	h = append(h, statusLines[200]...)
	h = append(h, hdrRequestID+": "...)
	h = append(h, inv.RequestID...)
	h = append(h, "\r\n"+hdrDeadline+": "...)
	h = strconv.AppendInt(h, inv.Deadline.UnixMilli(), 10)
	h = append(h, "\r\n"...)
	for _, o := range optional {
		if o.value != "" {
			h = append(h, o.name...)
			h = append(h, ": "...)
			h = append(h, o.value...)
			h = append(h, "\r\n"...)
		}
	}
	h = append(h, hdrContentType+": "+contentTypeJSONVal+"\r\n"+hdrContentLength+": "...)
	h = strconv.AppendInt(h, int64(len(inv.Payload)), 10)
	h = append(h, "\r\n\r\n"...)
	return &outgoing{id: inv.RequestID, payload: inv.Payload, head: h}, nil
}

// validRequestID reports whether id can travel in a URL path segment as is.
func validRequestID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	alnum := false
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			alnum = true
		case c == '-', c == '.', c == '_', c == ':', c == '~':
		default:
			return false
		}
	}
	return alnum // "." and ".." would be cleaned out of the path
}

// validHeaderValue reports whether v may be sent as an HTTP header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
