package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emberfn/ember/internal/stagetime"
)

// Paths of the Runtime API, version 2018-06-01.
const (
	pathInvocation = "/2018-06-01/runtime/invocation/"
	pathNext       = pathInvocation + "next"
	pathInitError  = "/2018-06-01/runtime/init/error"
)

// Headers of the Runtime API, in canonical form.
const (
	hdrRequestID       = "Lambda-Runtime-Aws-Request-Id"
	hdrDeadline        = "Lambda-Runtime-Deadline-Ms"
	hdrARN             = "Lambda-Runtime-Invoked-Function-Arn"
	hdrTrace           = "Lambda-Runtime-Trace-Id"
	hdrClientContext   = "Lambda-Runtime-Client-Context"
	hdrCognito         = "Lambda-Runtime-Cognito-Identity"
	hdrErrorType       = "Lambda-Runtime-Function-Error-Type"
	hdrErrorBody       = "Lambda-Runtime-Function-Error-Body" // a trailer, base64
	hdrResponseMode    = "Lambda-Runtime-Function-Response-Mode"
	hdrContentType     = "Content-Type"
	hdrContentLength   = "Content-Length"
	contentTypeJSONVal = "application/json"
)

// Error types in the Runtime API's own error bodies.
const (
	errTypeInvalidStateTransition = "InvalidStateTransition"
	errTypeInvalidRequestID       = "InvalidRequestID"
	errTypeRequestTooLarge        = "RequestEntityTooLarge"
	errTypeTruncated              = "TruncatedHTTPRequest"
	errTypeInvalidResponseMode    = "InvalidFunctionResponseMode"
	errTypeInternal               = "InternalServerError"
	errTypeInvalidRequest         = "InvalidRequest"
)

// Function error types.
const (
	// TypeResponseSizeTooLarge is the FunctionError type for an answer over
	// Config.MaxResponse.
	TypeResponseSizeTooLarge = "Function.ResponseSizeTooLarge"
	// TypeUnknown is the error type when the runtime names none.
	TypeUnknown = "Runtime.Unknown"
)

var (
	acceptedBody = []byte(`{"status":"OK"}` + "\n")
	errTooLarge  = errors.New("runtimeapi: body too large")
)

// serveConn answers the requests of one connection until it ends.
func (s *Server) serveConn(c *conn) {
	defer func() {
		s.mu.Lock()
		delete(s.open, c.nc)
		s.mu.Unlock()
		c.nc.Close()
		s.conns.Done()
	}()
	for {
		err := c.readRequest()
		switch {
		case errors.Is(err, errMalformed):
			c.req.close = true
			c.writeError(400, errTypeInvalidRequest, "Malformed HTTP request.")
			return
		case errors.Is(err, errHeaderTooLarge):
			c.req.close = true
			c.writeError(400, errTypeInvalidRequest, "Request headers too large.")
			return
		case err != nil:
			return // the connection ended or broke
		}
		if err := s.route(c); err != nil || c.req.close {
			return
		}
		c.shrinkScratch()
	}
}

// route runs the handler of c's request. An error means the answer could
// not be written.
func (s *Server) route(c *conn) error {
	s.mu.Lock()
	closed := s.phase == phaseClosed
	s.mu.Unlock()
	if closed {
		return writeClosed(c)
	}
	r := &c.req
	p := r.path
	if !cleanPath(p) {
		return c.notFound()
	}
	get, post := string(r.method) == "GET", string(r.method) == "POST"
	switch {
	case string(p) == pathNext:
		if !get {
			return c.notAllowed("GET")
		}
		return s.handleNext(c)
	case string(p) == pathInitError:
		if !post {
			return c.notAllowed("POST")
		}
		return s.handleInitError(c)
	case bytes.HasPrefix(p, []byte(pathInvocation)):
		id, op, ok := bytes.Cut(p[len(pathInvocation):], []byte("/"))
		if !ok || len(id) == 0 || (string(op) != "response" && string(op) != "error") {
			return c.notFound()
		}
		if !post {
			return c.notAllowed("POST")
		}
		if string(op) == "response" {
			return s.handleResponse(c, id)
		}
		return s.answer(c, id, true)
	}
	return c.notFound()
}

// handleNext serves GET /runtime/invocation/next: it long-polls until an
// invocation is deliverable and sends it. A runtime that goes away while it
// waits is noticed when the invocation is written to it; it took nothing,
// and its next /next gets the same invocation.
func (s *Server) handleNext(c *conn) error {
	// A body (no runtime sends one) is skipped before the long poll, or
	// the connection ends after the answer.
	c.finishBody()
	for {
		s.mu.Lock()
		switch s.phase {
		case phaseStarting:
			s.phase = phaseReady // starting -> ready
			close(s.initDone)
		case phaseInitFailed:
			s.mu.Unlock()
			return c.writeError(403, errTypeInvalidStateTransition,
				"The runtime reported an init error; it cannot ask for invocations.")
		case phaseClosed:
			s.mu.Unlock()
			return writeClosed(c)
		}
		if st := s.cur.state; st == callPending || st == callDelivered {
			s.cur.state = callDelivered // pending|delivered -> delivered
			out := s.cur.out
			s.mu.Unlock()
			err := c.writeInvocation(out)
			stagetime.Mark(stagetime.EventWritten)
			return err
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		c.polling, c.pollSince = true, time.Now()
		s.mu.Unlock()

		select {
		case <-wake:
		case <-s.closed:
			return writeClosed(c)
		case <-c.evicted:
			return errEvicted
		}
		s.mu.Lock()
		c.polling = false
		s.mu.Unlock()
	}
}

// writeInvocation sends an invocation as the answer to /next. An error means
// the runtime went away; it may ask again.
func (c *conn) writeInvocation(o *outgoing) error {
	c.finishBody()
	if !c.req.close {
		return c.writeHead(o.head, o.payload)
	}
	c.wbuf = append(c.wbuf[:0], o.head[:len(statusLines[200])]...)
	c.wbuf = append(c.wbuf, "Connection: close\r\n"...)
	c.wbuf = append(c.wbuf, o.head[len(statusLines[200]):]...)
	return c.write(o.payload)
}

// writeHead writes a prepared head and body, in one write when small.
func (c *conn) writeHead(head, body []byte) error {
	if len(head)+len(body) <= 64<<10 {
		c.wbuf = append(append(c.wbuf[:0], head...), body...)
		_, err := c.nc.Write(c.wbuf)
		c.shrink()
		return err
	}
	bufs := net.Buffers{head, body}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// handleResponse serves POST /runtime/invocation/{id}/response.
func (s *Server) handleResponse(c *conn, id []byte) error {
	switch mode := c.req.responseMode; {
	case mode == "", strings.EqualFold(mode, "buffered"), strings.EqualFold(mode, "streaming"):
	default:
		return c.writeError(400, errTypeInvalidResponseMode,
			fmt.Sprintf("Invalid function response mode %q.", mode))
	}
	return s.answer(c, id, false)
}

// answer records the runtime's answer to invocation id: the id is checked
// before any state changes (claim), the body is read without the lock, then
// the answer is recorded if the invocation is still the one claimed.
func (s *Server) answer(c *conn, id []byte, isError bool) error {
	seq, status, errType := s.claim(id)
	if status != 0 {
		s.log.Debug("answer refused", "request_id", string(id), "status", status, "reason", errType)
		if status == 400 {
			return c.writeError(status, errType, "Invalid request ID")
		}
		return c.writeError(status, errType, "No invocation awaits an answer for this request ID.")
	}

	stagetime.Mark(stagetime.AnswerArrived)
	body, size, err := c.readBody(s.maxResponse)
	switch {
	case errors.Is(err, errTooLarge):
		c.req.close = true // the rest of the body is not read
		if !s.finish(seq, nil, tooLarge(size, s.maxResponse)) {
			return writeStale(c)
		}
		return c.writeError(413, errTypeRequestTooLarge,
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", s.maxResponse))
	case err != nil:
		c.req.close = true
		s.unclaim(seq)
		s.log.Debug("answer truncated", "request_id", string(id), "err", err)
		return c.writeError(400, errTypeTruncated, "HTTP request detected as truncated")
	}

	resp := &Response{Payload: body}
	if isError {
		resp.FunctionError = errorType(c.req.errorType, body)
	} else if t := c.req.trailerErrorType; t != "" {
		// The runtime's response stream failed after it had begun.
		resp.FunctionError = t
		resp.Payload = trailerErrorBody(c.req.trailerErrorBody, t)
	}
	if !s.finish(seq, resp, nil) {
		return writeStale(c)
	}
	return c.writeAccepted()
}

// handleInitError serves POST /runtime/init/error.
func (s *Server) handleInitError(c *conn) error {
	// One init error body is read at a time: a runtime cannot make the
	// server hold one per connection.
	s.mu.Lock()
	starting, busy := s.phase == phaseStarting, s.initErrBusy
	if starting && !busy {
		s.initErrBusy = true
	}
	s.mu.Unlock()
	switch {
	case !starting:
		return c.writeError(403, errTypeInvalidStateTransition,
			"An init error can only be reported before the first /next.")
	case busy:
		return c.writeError(403, errTypeInvalidStateTransition,
			"Another init error is being received.")
	}
	body, _, err := c.readBody(s.maxResponse)
	s.mu.Lock()
	s.initErrBusy = false
	s.mu.Unlock()
	switch {
	case errors.Is(err, errTooLarge):
		c.req.close = true
		return c.writeError(413, errTypeRequestTooLarge,
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", s.maxResponse))
	case err != nil:
		c.req.close = true
		return c.writeError(400, errTypeTruncated, "HTTP request detected as truncated")
	}
	doc := parseErrorDoc(body)
	fe := &FunctionError{Type: c.req.errorType, Message: doc.Message, Body: body}
	if fe.Type == "" {
		fe.Type = doc.Type
	}
	if fe.Type == "" {
		fe.Type = TypeUnknown
	}

	s.mu.Lock()
	if s.phase != phaseStarting { // lost a race with /next or another init error
		s.mu.Unlock()
		return c.writeError(403, errTypeInvalidStateTransition,
			"An init error can only be reported before the first /next.")
	}
	s.phase = phaseInitFailed // starting -> initFailed
	s.initErr = fe
	close(s.initDone)
	s.mu.Unlock()
	s.log.Debug("init error", "type", fe.Type, "message", fe.Message)
	return c.writeAccepted()
}

// errorDoc is the error document runtimes send: {"errorMessage",
// "errorType", "stackTrace"}.
type errorDoc struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// parseErrorDoc reads an error document; anything else yields zero values.
func parseErrorDoc(body []byte) errorDoc {
	var doc errorDoc
	if len(body) > 0 {
		_ = json.Unmarshal(body, &doc)
	}
	return doc
}

// errorType is the type of a runtime's /error answer: the header, else the
// body's errorType, else TypeUnknown.
func errorType(header string, body []byte) string {
	if header != "" {
		return header
	}
	if t := parseErrorDoc(body).Type; t != "" {
		return t
	}
	return TypeUnknown
}

// trailerErrorBody is the error document of a response stream that failed:
// the base64 Lambda-Runtime-Function-Error-Body trailer, or one made from
// the type.
func trailerErrorBody(b64, typ string) []byte {
	if b64 != "" {
		if doc, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return doc
		}
	}
	doc, _ := json.Marshal(errorDoc{Message: "The response stream failed.", Type: typ})
	return doc
}

// tooLarge is Lambda's error for an answer over the limit; size is -1 when
// unknown.
func tooLarge(size, limit int64) *FunctionError {
	var msg string
	if size >= 0 {
		msg = fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", size, limit)
	} else {
		msg = fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", limit)
	}
	body, _ := json.Marshal(errorDoc{Message: msg, Type: TypeResponseSizeTooLarge})
	return &FunctionError{Type: TypeResponseSizeTooLarge, Message: msg, Body: body}
}

// writeError sends a Runtime API error body.
func (c *conn) writeError(status int, errType, msg string) error {
	body, _ := json.Marshal(errorDoc{Message: msg, Type: errType})
	c.startAnswer(status)
	return c.send(contentTypeJSONVal, body)
}

// writeAccepted sends 202 {"status":"OK"}.
func (c *conn) writeAccepted() error {
	c.startAnswer(202)
	return c.send(contentTypeJSONVal, acceptedBody)
}

// notFound answers a path the Runtime API does not have.
func (c *conn) notFound() error {
	c.startAnswer(404)
	return c.send("text/plain; charset=utf-8", []byte("404 page not found\n"))
}

// notAllowed answers a method the path does not take.
func (c *conn) notAllowed(allow string) error {
	c.startAnswer(405)
	c.wbuf = append(c.wbuf, "Allow: "...)
	c.wbuf = append(c.wbuf, allow...)
	c.wbuf = append(c.wbuf, "\r\n"...)
	return c.send("text/plain; charset=utf-8", []byte("Method Not Allowed\n"))
}

// writeStale answers an answer whose invocation was abandoned while its body
// was being read.
func writeStale(c *conn) error {
	return c.writeError(403, errTypeInvalidStateTransition,
		"The invocation was abandoned before its answer arrived.")
}

// writeClosed answers a request that arrives while the server shuts down.
func writeClosed(c *conn) error {
	c.req.close = true
	return c.writeError(500, errTypeInternal,
		"The Runtime API is shutting down; the runtime should exit.")
}
