package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dialRaw opens a connection to ts for a test that writes HTTP by hand.
func dialRaw(t *testing.T, ts *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readAnswer reads one answer and its whole body.
func readAnswer(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a body: %v", err)
	}
	return resp, string(b)
}

// TestWireKeepAlivePipelinedAndContinue: requests written back to back on
// one connection are answered in order; Expect: 100-continue gets its 100
// before the body is sent; chunk extensions and trailers are read.
func TestWireKeepAlivePipelinedAndContinue(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, br := dialRaw(t, ts)
	res := invokeAsync(t.Context(), ts.Server, inv("p1", `{"n":1}`))
	eventually(t, "pending", func() bool { _, st := ts.state(); return st == callPending })

	// /next and its chunked answer, pipelined.
	io.WriteString(c, "GET "+pathNext+" HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST "+pathInvocation+"p1/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Other: 1\r\n\r\n")
	resp, body := readAnswer(t, br, "GET")
	if resp.StatusCode != 200 || body != `{"n":1}` || resp.Header.Get(hdrRequestID) != "p1" {
		t.Fatalf("next: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if resp, body := readAnswer(t, br, "POST"); resp.StatusCode != 202 {
		t.Fatalf("response: %d %q", resp.StatusCode, body)
	}
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != "abcde" {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}

	// Expect: 100-continue: the body goes only after the 100.
	res = invokeAsync(t.Context(), ts.Server, inv("p2", `{}`))
	io.WriteString(c, "GET "+pathNext+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("next: %d", resp.StatusCode)
	}
	io.WriteString(c, "POST "+pathInvocation+"p2/response HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("before the body: %q %v", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after the 100: %q", blank)
	}
	io.WriteString(c, "ok")
	if resp, _ := readAnswer(t, br, "POST"); resp.StatusCode != 202 {
		t.Fatalf("response: %d", resp.StatusCode)
	}
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != "ok" {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

// TestWireRefusals: malformed requests get 400 with an error document and
// the connection is closed; HTTP/1.0 and Connection: close end the
// connection after the answer; an answer refused before its body was read
// keeps the connection when the body is small and was not held back by
// Expect.
func TestWireRefusals(t *testing.T) {
	ts := newTestServer(t, Config{})
	for name, req := range map[string]string{
		"no version":       "GET " + pathNext + "\r\n\r\n",
		"HTTP/2.0":         "GET " + pathNext + " HTTP/2.0\r\n\r\n",
		"folded header":    "GET " + pathNext + " HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
		"two lengths":      "POST " + pathInitError + " HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"gzip coding":      "POST " + pathInitError + " HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		"signed length":    "POST " + pathInitError + " HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
		"bad escape":       "GET /2018-06-01/runtime/invocation/%zz/response HTTP/1.1\r\n\r\n",
		"control in path":  "GET /a\x01b HTTP/1.1\r\n\r\n",
		"bad header name":  "GET " + pathNext + " HTTP/1.1\r\nA b: c\r\n\r\n",
		"other expect":     "GET " + pathNext + " HTTP/1.1\r\nExpect: tea\r\n\r\n",
		"headers too long": "GET " + pathNext + " HTTP/1.1\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n",
	} {
		c, br := dialRaw(t, ts)
		go io.WriteString(c, req)
		resp, body := readAnswer(t, br, "GET")
		if resp.StatusCode != 400 || !strings.Contains(body, `"errorType":"InvalidRequest"`) || !resp.Close {
			t.Errorf("%s: %d close=%v %q", name, resp.StatusCode, resp.Close, body)
		}
		if _, err := br.ReadByte(); err == nil { // EOF, or a reset when it closed with bytes unread
			t.Errorf("%s: connection left open", name)
		}
	}
	if p, _ := ts.state(); p != phaseStarting {
		t.Errorf("phase = %v after refused requests", p)
	}

	// A refused answer with a small body: the body is skipped, the
	// connection kept.
	c, br := dialRaw(t, ts)
	io.WriteString(c, "POST "+pathInvocation+"x/response HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /nope HTTP/1.1\r\n\r\n")
	if resp, _ := readAnswer(t, br, "POST"); resp.StatusCode != 403 || resp.Close {
		t.Fatalf("stale answer: %d close=%v", resp.StatusCode, resp.Close)
	}
	if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 404 {
		t.Fatalf("after the skipped body: %d", resp.StatusCode)
	}
	// With Expect: 100-continue, no 100 and the connection is closed.
	io.WriteString(c, "POST "+pathInvocation+"x/response HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	if resp, _ := readAnswer(t, br, "POST"); resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("stale answer with Expect: %d close=%v", resp.StatusCode, resp.Close)
	}

	// HTTP/1.0 and Connection: close.
	for _, req := range []string{"GET /nope HTTP/1.0\r\n\r\n", "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"} {
		c, br := dialRaw(t, ts)
		io.WriteString(c, req)
		if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 404 || !resp.Close {
			t.Errorf("%q: %d close=%v", req, resp.StatusCode, resp.Close)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("%q: connection left open", req)
		}
	}
}

// TestWireConnectionLimit: a runtime cannot hold more than maxConns
// connections; the ones over are closed at once, and the server still
// answers on the others.
func TestWireConnectionLimit(t *testing.T) {
	ts := newTestServer(t, Config{})
	var conns []net.Conn
	for range maxConns {
		c, br := dialRaw(t, ts)
		io.WriteString(c, "GET /nope HTTP/1.1\r\n\r\n") // accepted: answered
		if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		conns = append(conns, c)
	}
	c, br := dialRaw(t, ts)
	io.WriteString(c, "GET /nope HTTP/1.1\r\n\r\n")
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a connection over the limit was answered")
	}
	conns[0].Close()
	eventually(t, "a connection freed", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.open) < maxConns
	})
	c, br = dialRaw(t, ts)
	io.WriteString(c, "GET /nope HTTP/1.1\r\n\r\n")
	if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 404 {
		t.Fatalf("after one closed: %d", resp.StatusCode)
	}
}

// TestCloseEndsConnections: Close ends a long poll and idle connections,
// and waits for their goroutines.
func TestCloseEndsConnections(t *testing.T) {
	ts := newTestServer(t, Config{})
	poll, pbr := dialRaw(t, ts)
	io.WriteString(poll, "GET "+pathNext+" HTTP/1.1\r\n\r\n")
	eventually(t, "ready", func() bool { p, _ := ts.state(); return p == phaseReady })
	idle, ibr := dialRaw(t, ts)
	io.WriteString(idle, "GET /nope HTTP/1.1\r\n\r\n")
	readAnswer(t, ibr, "GET")
	ts.shutdown(t)
	resp, err := http.ReadResponse(pbr, nil)
	if err == nil && resp.StatusCode != 500 {
		t.Fatalf("long poll at Close: %d", resp.StatusCode)
	}
	if _, err := ibr.ReadByte(); err == nil {
		t.Fatal("idle connection left open")
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.open) != 0 {
		t.Fatalf("%d connections left", len(ts.open))
	}
}

// FuzzWire feeds arbitrary bytes to a connection of a server whose
// runtime has an invocation to take: it must answer only with well-formed
// HTTP/1.1 answers of the statuses the Runtime API uses, and end.
func FuzzWire(f *testing.F) {
	for _, seed := range []string{
		"GET " + pathNext + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + pathNext + " HTTP/1.1\r\n\r\nPOST " + pathInvocation + "w/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
		"GET " + pathNext + " HTTP/1.1\r\n\r\nPOST " + pathInvocation + "w/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nLambda-Runtime-Function-Error-Type: E\r\n\r\n",
		"GET " + pathNext + " HTTP/1.1\r\n\r\nPOST " + pathInvocation + "w/error HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
		"POST " + pathInitError + " HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
		"POST " + pathInitError + " HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"GET " + pathNext + " HTTP/1.1\r\n\r\nPOST " + pathInvocation + "w/response HTTP/1.1\r\nContent-Length: 99999\r\n\r\n",
		"\r\n\r\nHEAD " + pathNext + " HTTP/1.1\r\n\r\n",
		"GET http://host" + pathNext + "?q=1 HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(Config{MaxResponse: 64})
		defer s.Close()
		res := invokeAsync(context.Background(), s, inv("w", `{"e":1}`))
		server, client := net.Pipe()
		c := newConn(s, server)
		s.mu.Lock()
		s.open[server] = c
		s.conns.Add(1)
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { defer close(done); s.serveConn(c) }()
		go func() {
			client.Write(data)
			// The server may now wait in a /next with nothing to give:
			// Close ends that, as it would a runtime's.
			time.AfterFunc(20*time.Millisecond, func() { s.Close() })
		}()
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(client)
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				// An answer to HEAD has no body: read as GET's, the next
				// answer is taken for its body.
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!bytes.Contains(data, []byte("HEAD")) {
					t.Fatalf("reading answers: %v", err)
				}
				break
			}
			switch resp.StatusCode {
			case 100, 200, 202, 400, 403, 404, 405, 413, 500:
			default:
				t.Fatalf("status %d", resp.StatusCode)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				break
			}
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection's goroutine did not end")
		}
		s.Close()
		<-res
	})
}

// TestWireEvictsAbandonedPolls: long polls whose clients went away hold
// their connections until written to; at the limit, the oldest is dropped
// for a new connection, which then gets the invocation.
func TestWireEvictsAbandonedPolls(t *testing.T) {
	ts := newTestServer(t, Config{})
	for range maxConns {
		c, _ := dialRaw(t, ts)
		io.WriteString(c, "GET "+pathNext+" HTTP/1.1\r\n\r\n")
	}
	eventually(t, "every connection polling", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		n := 0
		for _, c := range ts.open {
			if c.polling {
				n++
			}
		}
		return n == maxConns
	})
	c, br := dialRaw(t, ts)
	io.WriteString(c, "GET "+pathNext+" HTTP/1.1\r\n\r\n")
	eventually(t, "the oldest poll dropped", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return len(ts.open) == maxConns
	})
	res := invokeAsync(t.Context(), ts.Server, inv("ev", `{}`))
	// Every waiting poll is handed it (a runtime polls from one loop, so
	// there is one), the new connection's too.
	resp, body := readAnswer(t, br, "GET")
	if resp.StatusCode != 200 || resp.Header.Get(hdrRequestID) != "ev" || body != `{}` {
		t.Fatalf("the new connection's poll: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	io.WriteString(c, "POST "+pathInvocation+"ev/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
	if resp, _ := readAnswer(t, br, "POST"); resp.StatusCode != 202 {
		t.Fatalf("answer: %d", resp.StatusCode)
	}
	if got := wait(t, res); got.err != nil || string(got.resp.Payload) != "ok" {
		t.Fatalf("Invoke = %+v, %v", got.resp, got.err)
	}
}

// TestWireManySmallChunks: a body sent in many small chunks (a streaming
// runtime's writes) is read whole: its framing is not charged to the
// header budget.
func TestWireManySmallChunks(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, br := dialRaw(t, ts)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	res := invokeAsync(t.Context(), ts.Server, inv("sm", `{}`))
	io.WriteString(c, "GET "+pathNext+" HTTP/1.1\r\n\r\n")
	if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("next: %d", resp.StatusCode)
	}
	const n = 500_000
	var req bytes.Buffer
	req.WriteString("POST " + pathInvocation + "sm/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range n {
		req.WriteString("1\r\nx\r\n")
	}
	req.WriteString("0\r\n\r\n")
	go c.Write(req.Bytes())
	if resp, body := readAnswer(t, br, "POST"); resp.StatusCode != 202 {
		t.Fatalf("answer in %d one-byte chunks: %d %s", n, resp.StatusCode, body)
	}
	if got := wait(t, res); got.err != nil || len(got.resp.Payload) != n {
		t.Fatalf("Invoke = %d bytes, %v", len(got.resp.Payload), got.err)
	}
}

// TestWireHeaderForms: Connection is a list (close anywhere ends the
// connection), an empty Expect is ignored, HTTP/1.0 gets no 100 Continue,
// and a refused request whose body never comes is answered at once.
func TestWireHeaderForms(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, br := dialRaw(t, ts)
	io.WriteString(c, "GET /nope HTTP/1.1\r\nConnection: TE, close\r\nExpect:\r\n\r\n")
	if resp, _ := readAnswer(t, br, "GET"); resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("Connection: TE, close: %d close=%v", resp.StatusCode, resp.Close)
	}

	c, br = dialRaw(t, ts)
	io.WriteString(c, "POST "+pathInitError+" HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}")
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 202 Accepted\r\n" {
		t.Fatalf("HTTP/1.0 with Expect: first line %q, want the answer itself", line)
	}

	// Malformed, with a body announced that never comes: 400 at once.
	c, br = dialRaw(t, ts)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /x HTTP/1.1\r\nContent-Length: 1000\r\nTransfer-Encoding: gzip\r\n\r\n")
	if resp, _ := readAnswer(t, br, "POST"); resp.StatusCode != 400 {
		t.Fatalf("malformed with an unsent body: %d", resp.StatusCode)
	}
}
