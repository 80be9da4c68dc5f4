package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestShutdownFinishesInFlightRequests sends SIGTERM, and in a second
// case SIGINT, to a real `ember serve` while it reads the body of a
// CreateFunction of a 30 MB package, of which 4 MB have been sent: Ember stops taking connections, the request
// finishes with 201, the process exits cleanly, and a restart from the
// same data directory has the function and its code.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { shutdownInFlight(t, sig) })
	}
}

func shutdownInFlight(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	p := startEmberProcess(t, dir)
	creds := p.creds("default")

	// A package that stays 30 MB zipped (stored), in a body of about 40 MB.
	blob := make([]byte, 30<<20)
	for i := range blob {
		blob[i] = byte(i*31 + i>>11)
	}
	zip := makeZip(t, zipEntry{name: "bootstrap", mode: 0o755, body: "#!/bin/sh\n"}, zipEntry{name: "blob", mode: 0o644, body: string(blob), stored: true})
	zipSum := sha256.Sum256(zip)
	body, err := json.Marshal(map[string]any{
		"FunctionName": "in-flight", "Runtime": "provided.al2023", "Handler": "bootstrap",
		"Role": "arn:aws:iam::123456789012:role/ember", "Code": map[string]any{"ZipFile": zip},
	})
	if err != nil {
		t.Fatal(err)
	}
	const before = 4 << 20
	if len(body) < 2*before {
		t.Fatalf("body of %d bytes is too small for the test", len(body))
	}

	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	context.AfterFunc(ctx, func() { pw.CloseWithError(errors.New("test: gave up")) })
	req, err := http.NewRequestWithContext(ctx, "POST", p.url+"/2015-03-31/functions", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	bodySum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(bodySum[:]), "lambda", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	// With Expect: 100-continue the client sends no byte of the body
	// before Ember's handler asks for it (Go's server says 100 Continue at
	// the handler's first read): once the first write to the pipe returns,
	// the request is in Ember's hands, whatever the machine's load.
	req.Header.Set("Expect", "100-continue")
	tr := &http.Transport{ExpectContinueTimeout: 2 * time.Minute}
	defer tr.CloseIdleConnections()
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			answers <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers <- answer{status: resp.StatusCode, body: b, err: err}
	}()
	write := func(b []byte) {
		t.Helper()
		for len(b) > 0 {
			n := min(len(b), 1<<20)
			if _, err := pw.Write(b[:n]); err != nil {
				t.Fatalf("sending the body: %v", err)
			}
			b = b[n:]
		}
	}
	write(body[:before])

	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	// Ember has begun to shut down once it takes no new connections.
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, fmt.Sprintf("ember to stop taking connections after %v", sig), 30*time.Second, 20*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case a := <-answers:
		t.Fatalf("the in-flight request ended before its body was sent: %d %s %v", a.status, a.body, a.err)
	default:
	}
	// The rest of the body, after the shutdown began.
	write(body[before:])
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}

	var a answer
	select {
	case a = <-answers:
	case <-time.After(90 * time.Second):
		t.Fatal("no answer to the in-flight request")
	}
	if a.err != nil || a.status != 201 {
		t.Fatalf("in-flight CreateFunction after %v: %d %s %v", sig, a.status, a.body, a.err)
	}
	var out struct{ FunctionName, CodeSha256 string }
	if err := json.Unmarshal(a.body, &out); err != nil || out.FunctionName != "in-flight" ||
		out.CodeSha256 != base64.StdEncoding.EncodeToString(zipSum[:]) {
		t.Fatalf("in-flight CreateFunction answered %s (%v)", a.body, err)
	}

	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			t.Fatalf("ember exited with %v after %v: %s", p.cmd.ProcessState, sig, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("ember did not stop after %v", sig)
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Fatalf("no clean stop logged: %s", p.stderr.String())
	}

	// The function, and its whole package, survive a restart.
	srv := startEmber(t, dir)
	c := srv.client(creds)
	g, err := c.GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("in-flight")})
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if *g.Configuration.CodeSha256 != out.CodeSha256 || g.Configuration.CodeSize != int64(len(zip)) {
		t.Fatalf("after the restart: CodeSha256 %s CodeSize %d", *g.Configuration.CodeSha256, g.Configuration.CodeSize)
	}
	resp, err := http.Get(*g.Code.Location)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(zipSum[:])) {
		t.Fatalf("code download after the restart: %d %v", resp.StatusCode, err)
	}
}
