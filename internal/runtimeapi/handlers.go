package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
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
	contentTypeJSON = []string{contentTypeJSONVal}
	acceptedBody    = []byte(`{"status":"OK"}` + "\n")
	errTooLarge     = errors.New("runtimeapi: body too large")
)

// serveHTTP is the server's handler: it refuses requests after Close,
// counts the ones it lets in, and routes them.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.phase == phaseClosed {
		s.mu.Unlock()
		writeClosed(w)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	// ServeMux would redirect an unclean path; no runtime sends one.
	if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
		http.NotFound(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// handleNext serves GET /runtime/invocation/next: it long-polls until an
// invocation is deliverable and sends it.
func (s *Server) handleNext(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // the GET pattern also matches HEAD
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	for {
		s.mu.Lock()
		switch s.phase {
		case phaseStarting:
			s.phase = phaseReady // starting -> ready
			close(s.initDone)
		case phaseInitFailed:
			s.mu.Unlock()
			writeError(w, http.StatusForbidden, errTypeInvalidStateTransition,
				"The runtime reported an init error; it cannot ask for invocations.")
			return
		case phaseClosed:
			s.mu.Unlock()
			writeClosed(w)
			return
		}
		if st := s.cur.state; st == callPending || st == callDelivered {
			s.cur.state = callDelivered // pending|delivered -> delivered
			out := s.cur.out
			s.mu.Unlock()
			writeInvocation(w, out)
			return
		}
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()

		select {
		case <-wake:
		case <-r.Context().Done():
			return // the runtime went away; it took nothing
		case <-s.closed:
			writeClosed(w)
			return
		}
	}
}

// writeInvocation sends an invocation as the answer to /next.
func writeInvocation(w http.ResponseWriter, o *outgoing) {
	h := w.Header()
	h[hdrRequestID] = o.vals[valRequestID : valRequestID+1 : valRequestID+1]
	h[hdrDeadline] = o.vals[valDeadline : valDeadline+1 : valDeadline+1]
	if o.vals[valARN] != "" {
		h[hdrARN] = o.vals[valARN : valARN+1 : valARN+1]
	}
	if o.vals[valTrace] != "" {
		h[hdrTrace] = o.vals[valTrace : valTrace+1 : valTrace+1]
	}
	if o.vals[valClientContext] != "" {
		h[hdrClientContext] = o.vals[valClientContext : valClientContext+1 : valClientContext+1]
	}
	if o.vals[valCognito] != "" {
		h[hdrCognito] = o.vals[valCognito : valCognito+1 : valCognito+1]
	}
	h[hdrContentType] = contentTypeJSON
	h[hdrContentLength] = o.vals[valLength : valLength+1 : valLength+1]
	w.WriteHeader(http.StatusOK)
	w.Write(o.payload) // an error means the runtime went away; it may ask again
}

// handleResponse serves POST /runtime/invocation/{id}/response.
func (s *Server) handleResponse(w http.ResponseWriter, r *http.Request) {
	switch mode := r.Header.Get(hdrResponseMode); {
	case mode == "", strings.EqualFold(mode, "buffered"), strings.EqualFold(mode, "streaming"):
	default:
		writeError(w, http.StatusBadRequest, errTypeInvalidResponseMode,
			fmt.Sprintf("Invalid function response mode %q.", mode))
		return
	}
	s.answer(w, r, false)
}

// handleInvokeError serves POST /runtime/invocation/{id}/error.
func (s *Server) handleInvokeError(w http.ResponseWriter, r *http.Request) {
	s.answer(w, r, true)
}

// answer records the runtime's answer to invocation {id}: its id is checked
// before any state changes (claim), the body is read without the lock, then
// the answer is recorded if the invocation is still the one claimed.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, isError bool) {
	id := r.PathValue("id")
	seq, status, errType := s.claim(id)
	if status != 0 {
		s.log.Debug("answer refused", "request_id", id, "status", status, "reason", errType)
		if status == http.StatusBadRequest {
			writeError(w, status, errType, "Invalid request ID")
		} else {
			writeError(w, status, errType, "No invocation awaits an answer for this request ID.")
		}
		return
	}

	body, size, err := s.readBody(w, r)
	switch {
	case errors.Is(err, errTooLarge):
		if !s.finish(seq, nil, tooLarge(size, s.maxResponse)) {
			writeStale(w)
			return
		}
		writeError(w, http.StatusRequestEntityTooLarge, errTypeRequestTooLarge,
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", s.maxResponse))
		return
	case err != nil:
		s.unclaim(seq)
		s.log.Debug("answer truncated", "request_id", id, "err", err)
		writeError(w, http.StatusBadRequest, errTypeTruncated, "HTTP request detected as truncated")
		return
	}

	resp := &Response{Payload: body}
	if isError {
		resp.FunctionError = errorType(r.Header.Get(hdrErrorType), body)
	} else if t := r.Trailer.Get(hdrErrorType); t != "" {
		// The runtime's response stream failed after it had begun.
		resp.FunctionError = t
		resp.Payload = trailerErrorBody(r.Trailer.Get(hdrErrorBody), t)
	}
	if !s.finish(seq, resp, nil) {
		writeStale(w)
		return
	}
	writeAccepted(w)
}

// handleInitError serves POST /runtime/init/error.
func (s *Server) handleInitError(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	starting := s.phase == phaseStarting
	s.mu.Unlock()
	if !starting {
		writeError(w, http.StatusForbidden, errTypeInvalidStateTransition,
			"An init error can only be reported before the first /next.")
		return
	}
	body, _, err := s.readBody(w, r)
	switch {
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, errTypeRequestTooLarge,
			fmt.Sprintf("Exceeded maximum allowed payload size (%d bytes).", s.maxResponse))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, errTypeTruncated, "HTTP request detected as truncated")
		return
	}
	doc := parseErrorDoc(body)
	fe := &FunctionError{Type: r.Header.Get(hdrErrorType), Message: doc.Message, Body: body}
	if fe.Type == "" {
		fe.Type = doc.Type
	}
	if fe.Type == "" {
		fe.Type = TypeUnknown
	}

	s.mu.Lock()
	if s.phase != phaseStarting { // lost a race with /next or another init error
		s.mu.Unlock()
		writeError(w, http.StatusForbidden, errTypeInvalidStateTransition,
			"An init error can only be reported before the first /next.")
		return
	}
	s.phase = phaseInitFailed // starting -> initFailed
	s.initErr = fe
	close(s.initDone)
	s.mu.Unlock()
	s.log.Debug("init error", "type", fe.Type, "message", fe.Message)
	writeAccepted(w)
}

// readBody reads a request body of at most s.maxResponse bytes. Over the
// limit it returns errTooLarge and the size if the request declared it
// (else -1). A body of known length is read into one exact allocation; a
// chunked one into a pooled buffer, then copied once to its exact size.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int64, error) {
	if r.ContentLength > s.maxResponse {
		return nil, r.ContentLength, errTooLarge
	}
	body := http.MaxBytesReader(w, r.Body, s.maxResponse)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, 0, err
		}
		return buf, int64(len(buf)), nil
	}
	b := s.bufs.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= int(s.maxResponse)+bytes.MinRead {
			b.Reset()
			s.bufs.Put(b)
		}
	}()
	b.Reset()
	if _, err := b.ReadFrom(body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, -1, errTooLarge
		}
		return nil, 0, err
	}
	return bytes.Clone(b.Bytes()), int64(b.Len()), nil
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
func writeError(w http.ResponseWriter, status int, errType, msg string) {
	body, _ := json.Marshal(errorDoc{Message: msg, Type: errType})
	w.Header()[hdrContentType] = contentTypeJSON
	w.WriteHeader(status)
	w.Write(body)
}

// writeAccepted sends 202 {"status":"OK"}.
func writeAccepted(w http.ResponseWriter) {
	w.Header()[hdrContentType] = contentTypeJSON
	w.WriteHeader(http.StatusAccepted)
	w.Write(acceptedBody)
}

// writeStale answers an answer whose invocation was abandoned while its body
// was being read.
func writeStale(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, errTypeInvalidStateTransition,
		"The invocation was abandoned before its answer arrived.")
}

// writeClosed answers a request that arrives while the server shuts down.
func writeClosed(w http.ResponseWriter) {
	writeError(w, http.StatusInternalServerError, errTypeInternal,
		"The Runtime API is shutting down; the runtime should exit.")
}
