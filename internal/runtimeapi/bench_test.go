package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// BenchmarkInvokeRoundTrip measures one Invoke through a Server on loopback:
// the event out through GET /next, the same bytes back through POST
// /response. Allocations count both sides, since the runtime runs in the
// benchmark's process:
//
//   - client=nethttp: the runtime is a net/http client posting chunked
//     bodies, as aws-lambda-go does;
//   - client=raw: the runtime speaks HTTP/1.1 by hand on one connection
//     and allocates nothing per round trip, so allocs/op is the server's
//     (its net/http included).
func BenchmarkInvokeRoundTrip(b *testing.B) {
	for _, size := range []int{16, 64 << 10} {
		for _, client := range []struct {
			name string
			run  func(ctx context.Context, ts *testServer)
		}{
			{"nethttp", netHTTPRuntime},
			{"raw", rawRuntime},
		} {
			b.Run(fmt.Sprintf("client=%s/payload=%d", client.name, size), func(b *testing.B) {
				benchRoundTrip(b, size, client.run)
			})
		}
	}
}

func benchRoundTrip(b *testing.B, size int, runtime func(context.Context, *testServer)) {
	ts := newTestServer(b, Config{FunctionARN: testARN})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime(ctx, ts)
	}()
	defer func() {
		cancel()
		ts.shutdown(b)
		<-done
	}()

	payload := bytes.Repeat([]byte("e"), size)
	var ids [64]string
	for i := range ids {
		ids[i] = "bench-" + strconv.Itoa(i)
	}
	in := &Invocation{Payload: payload, Deadline: time.Now().Add(time.Hour)}
	b.SetBytes(int64(2 * size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.RequestID = ids[i%len(ids)]
		resp, err := ts.Invoke(ctx, in)
		if err != nil || len(resp.Payload) != size {
			b.Fatalf("Invoke = %v, %v", resp, err)
		}
	}
}

// netHTTPRuntime is a runtime loop on net/http's client.
func netHTTPRuntime(ctx context.Context, ts *testServer) {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.base+pathNext, nil)
		resp, err := ts.client.Do(req)
		if err != nil {
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		url := ts.base + pathInvocation + resp.Header.Get(hdrRequestID) + "/response"
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, url, opaque{bytes.NewReader(body)})
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = ts.client.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// rawRuntime is a runtime loop that writes and parses HTTP/1.1 itself,
// reusing its buffers, so that it allocates nothing per invocation.
func rawRuntime(ctx context.Context, ts *testServer) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ts.addr)
	if err != nil {
		return
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.Close() })
	br := bufio.NewReaderSize(conn, 64<<10)
	nextReq := []byte("GET " + pathNext + " HTTP/1.1\r\nHost: rapi\r\n\r\n")
	var id, body, post []byte
	for {
		if _, err := conn.Write(nextReq); err != nil {
			return
		}
		var n int
		var ok bool
		if id, n, ok = readReply(br, id); !ok {
			return
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		post = append(post[:0], "POST "+pathInvocation...)
		post = append(post, id...)
		post = append(post, "/response HTTP/1.1\r\nHost: rapi\r\nContent-Length: "...)
		post = strconv.AppendInt(post, int64(n), 10)
		post = append(post, "\r\n\r\n"...)
		post = append(post, body...)
		if _, err := conn.Write(post); err != nil {
			return
		}
		if _, n, ok = readReply(br, nil); !ok {
			return
		}
		if _, err := br.Discard(n); err != nil {
			return
		}
	}
}

// readReply reads a response's status line and headers; it returns the
// request id header (appended to id[:0]) and the Content-Length.
func readReply(br *bufio.Reader, id []byte) ([]byte, int, bool) {
	line, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("HTTP/1.1 2")) {
		return id, 0, false
	}
	n := 0
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return id, 0, false
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return id, n, true
		}
		k, v, _ := bytes.Cut(line, []byte(": "))
		switch string(k) { // no allocation: the compiler converts in place
		case hdrContentLength:
			for _, c := range v {
				n = n*10 + int(c-'0')
			}
		case hdrRequestID:
			id = append(id[:0], v...)
		}
	}
}

// BenchmarkLambdaGoRoundTrip measures one Invoke of testdata/echofn, a
// function built with aws-lambda-go running as its own process: the round
// trip a warm invoke makes between Ember and a real runtime (two processes
// waking each other), without the Front End and without a sandbox.
func BenchmarkLambdaGoRoundTrip(b *testing.B) {
	ts, _ := startEcho(b, Config{FunctionARN: testARN})
	payload := []byte(`{"op":"echo","data":{"hello":"world"}}`)
	var ids [64]string
	for i := range ids {
		ids[i] = "bench-" + strconv.Itoa(i)
	}
	in := &Invocation{Payload: payload, Deadline: time.Now().Add(time.Hour)}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.RequestID = ids[i%len(ids)]
		resp, err := ts.Invoke(ctx, in)
		if err != nil || string(resp.Payload) != `{"hello":"world"}` {
			b.Fatalf("Invoke = %v, %v", resp, err)
		}
	}
}
