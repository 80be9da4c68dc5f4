package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Fuzz setups: the state the server is in when the fuzzed request arrives.
// In each, GET /next answers at once, so no request can long-poll.
const (
	fuzzPending    = iota // starting; an invocation posted, not handed out
	fuzzDelivered         // ready; the invocation handed out to the runtime
	fuzzInitFailed        // the runtime reported an init error
	fuzzClosed            // Close was called
	fuzzSetups
)

const fuzzID = "fuzz-id"

// FuzzRuntimeAPI sends an arbitrary request through the handler and checks
// that it answers with a status the Runtime API defines, never hangs or
// panics, and keeps its state machine consistent. In target, "{id}" stands
// for the outstanding request id. headers holds "Key: value" lines; a line
// "trailer Key: value" sets a trailer. lie is added to the Content-Length;
// a negative total means chunked.
func FuzzRuntimeAPI(f *testing.F) {
	resp := "/2018-06-01/runtime/invocation/{id}/response"
	errp := "/2018-06-01/runtime/invocation/{id}/error"
	f.Add(uint8(fuzzDelivered), "POST", resp, "", []byte(`"ok"`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", resp, "", []byte(`"ok"`), int8(-100))
	f.Add(uint8(fuzzDelivered), "POST", resp, "", []byte(`short`), int8(10))
	f.Add(uint8(fuzzDelivered), "POST", resp, "", bytes.Repeat([]byte("x"), 65), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", resp, "", bytes.Repeat([]byte("x"), 65), int8(-100))
	f.Add(uint8(fuzzDelivered), "POST", resp, "Lambda-Runtime-Function-Response-Mode: streaming", []byte(`{}`), int8(-100))
	f.Add(uint8(fuzzDelivered), "POST", resp, "Lambda-Runtime-Function-Response-Mode: bogus", []byte(`{}`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", resp, "trailer Lambda-Runtime-Function-Error-Type: E\ntrailer Lambda-Runtime-Function-Error-Body: e30=", []byte(`x`), int8(-100))
	f.Add(uint8(fuzzDelivered), "POST", resp, "trailer Lambda-Runtime-Function-Error-Type: E\ntrailer Lambda-Runtime-Function-Error-Body: !!", []byte(`x`), int8(-100))
	f.Add(uint8(fuzzDelivered), "POST", errp, "Lambda-Runtime-Function-Error-Type: Runtime.X", []byte(`{"errorType":"T","errorMessage":"m"}`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", errp, "", []byte(`{"errorType":`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", "/2018-06-01/runtime/invocation/other/response", "", []byte(`1`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", "/2018-06-01/runtime/invocation/fuzz%2Did/response", "", []byte(`1`), int8(0))
	f.Add(uint8(fuzzDelivered), "GET", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzPending), "GET", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzPending), "POST", resp, "", []byte(`1`), int8(0))
	f.Add(uint8(fuzzPending), "POST", "/2018-06-01/runtime/init/error", "Lambda-Runtime-Function-Error-Type: Runtime.Init", []byte(`{"errorMessage":"m"}`), int8(0))
	f.Add(uint8(fuzzDelivered), "POST", "/2018-06-01/runtime/init/error", "", []byte(`{}`), int8(0))
	f.Add(uint8(fuzzInitFailed), "GET", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzClosed), "GET", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzDelivered), "HEAD", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzDelivered), "DELETE", resp, "", []byte(nil), int8(0))
	f.Add(uint8(fuzzDelivered), "GET", "/2018-06-01/runtime/../runtime/invocation/next", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzDelivered), "GET", "*", "", []byte(nil), int8(0))
	f.Add(uint8(fuzzDelivered), "CONNECT", "/2018-06-01/runtime/invocation/next", "", []byte(nil), int8(0))

	f.Fuzz(func(t *testing.T, setup uint8, method, target, headers string, body []byte, lie int8) {
		req := fuzzRequest(t, method, strings.ReplaceAll(target, "{id}", fuzzID), headers, body, lie)
		setup %= fuzzSetups
		s := New(Config{MaxResponse: 64})
		addr := serveFuzz(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := fuzzSetup(t, s, addr, ctx, setup)
		if setup == fuzzClosed {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatal("a closed server accepted a connection")
			}
			return
		}

		start := time.Now()
		code, header, respBody := exchange(t, addr, req)
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("request took %v", el)
		}
		w := struct {
			Code int
			Body *bytes.Buffer
		}{code, bytes.NewBuffer(respBody)}

		switch w.Code {
		case 200:
			if req.Method != http.MethodGet || header.Get(hdrRequestID) != fuzzID {
				t.Fatalf("200 for %s %s: %v", req.Method, req.URL, header)
			}
		case 202:
			if req.Method != http.MethodPost {
				t.Fatalf("202 for %s", req.Method)
			}
		case 400, 403, 413:
			var doc errorDoc
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.Type == "" {
				t.Fatalf("%d with body %q", w.Code, w.Body)
			}
		case 404, 405:
		case 500:
			if setup != fuzzClosed {
				t.Fatalf("500 while open: %s", w.Body)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}

		// The state machine is consistent with what the runtime was told.
		_, st := s.state()
		if st == callReceiving {
			t.Fatal("left in receiving")
		}
		answered := w.Code == 202 || w.Code == 413
		if res != nil && answered && strings.Contains(req.URL.Path, "/invocation/") {
			got := wait(t, res)
			var fe *FunctionError
			switch {
			case w.Code == 202 && got.err != nil:
				t.Fatalf("202 but Invoke = %v", got.err)
			case w.Code == 413 && !errors.As(got.err, &fe):
				t.Fatalf("413 but Invoke = %+v, %v", got.resp, got.err)
			}
			res = nil
		}
		cancel()
		if res != nil {
			wait(t, res)
		}
	})
}

// fuzzSetup brings s into setup; it returns the Invoke in progress, if any.
func fuzzSetup(t *testing.T, s *Server, addr string, ctx context.Context, setup uint8) <-chan invokeResult {
	switch setup {
	case fuzzPending, fuzzDelivered:
		res := invokeAsync(ctx, s, inv(fuzzID, `{"event":1}`))
		eventually(t, "pending", func() bool { _, st := s.state(); return st == callPending })
		if setup == fuzzDelivered {
			if code, _, _ := exchange(t, addr, httptest.NewRequest(http.MethodGet, pathNext, nil)); code != 200 {
				t.Fatalf("setup next: %d", code)
			}
		}
		return res
	case fuzzInitFailed:
		if code, _, _ := exchange(t, addr, httptest.NewRequest(http.MethodPost, pathInitError, strings.NewReader(`{}`))); code != 202 {
			t.Fatalf("setup init error: %d", code)
		}
	case fuzzClosed:
		s.Close()
	}
	return nil
}

// serveFuzz serves s on a loopback listener until the test ends.
func serveFuzz(t *testing.T, s *Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// exchange sends req on a new connection, as wire writes it, closes the
// connection's write side, and returns the final answer (after any 100
// Continue).
func exchange(t *testing.T, addr string, req *http.Request) (int, http.Header, []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		c.Write(wire(t, req))
		c.(*net.TCPConn).CloseWrite()
	}()
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("reading the answer to %s %s: %v", req.Method, req.URL, err)
		}
		if resp.StatusCode == http.StatusContinue {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the body of the answer to %s %s: %v", req.Method, req.URL, err)
		}
		if _, err := br.Peek(1); err == nil && req.Method != http.MethodHead {
			t.Fatalf("bytes after the answer to %s %s", req.Method, req.URL)
		}
		return resp.StatusCode, resp.Header, body
	}
}

// wire is req as a client writes it, but with req.ContentLength as is:
// a Content-Length larger than the body leaves the body short (the
// connection then ends), a smaller one leaves the rest to be read as the
// next request; -1 is a chunked body, with req.Trailer.
func wire(t *testing.T, req *http.Request) []byte {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", req.Method, req.URL.RequestURI())
	req.Header.Write(&b)
	switch {
	case req.ContentLength < 0:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(&b)
		cw.Write(body)
		cw.Close()
		req.Trailer.Write(&b)
		b.WriteString("\r\n")
	case req.ContentLength > 0 || req.Method == http.MethodPost:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", req.ContentLength)
		b.Write(body)
	default:
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// fuzzRequest builds the fuzzed request, skipping inputs that no HTTP
// server would hand to a handler.
func fuzzRequest(t *testing.T, method, target, headers string, body []byte, lie int8) *http.Request {
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		t.Skip("invalid method")
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Skip("invalid target")
	}
	req := &http.Request{
		Method:     method,
		URL:        u,
		RequestURI: target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Host:       "127.0.0.1",
		Body:       io.NopCloser(bytes.NewReader(body)),
	}
	for line := range strings.SplitSeq(headers, "\n") {
		dst := req.Header
		if rest, ok := strings.CutPrefix(line, "trailer "); ok {
			if req.Trailer == nil {
				req.Trailer = http.Header{}
			}
			dst, line = req.Trailer, rest
		}
		if k, v, ok := strings.Cut(line, ":"); ok && validToken(k) {
			dst.Add(k, strings.TrimSpace(v))
		}
	}
	req.ContentLength = int64(len(body)) + int64(lie)
	if req.ContentLength < 0 {
		req.ContentLength = -1
	}
	return req
}

// validToken reports whether s is an HTTP token (a method or header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
