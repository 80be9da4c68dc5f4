package main

// The system tests start a real `ember serve` (in-process, or the test
// binary re-executed as ember), with real embedded NATS JetStream, and
// drive it with the real aws-sdk-go-v2 Lambda client.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"

	"github.com/emberfn/ember/internal/auth"
)

// TestMain lets a test re-execute its own binary as `ember`.
func TestMain(m *testing.M) {
	if os.Getenv("EMBER_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type emberServer struct {
	t    *testing.T
	base leakBaseline
	// noLeakCheck: the test checks for leaks itself (it runs servers of
	// its own that Ember's use grows).
	noLeakCheck bool
	url         string
	dataDir     string
	cancel      context.CancelFunc
	done        chan error
	stdout      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startEmber runs serve in-process on a free port until the test ends
// (or stop is called) and waits for /healthz.
func startEmber(t *testing.T, dataDir string, edit ...func(*serveConfig)) *emberServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	cfg := serveConfig{
		Listen: "127.0.0.1:0", DataDir: dataDir, Region: "us-east-1",
		ControlRate: 1000, ControlBurst: 1000,
		SandboxPool: 2, // as ember serve's default
		Ready:       func(a string) { addr <- a },
	}
	for _, e := range edit {
		e(&cfg)
	}
	s := &emberServer{t: t, base: takeBaseline(), dataDir: dataDir, cancel: cancel, done: make(chan error, 1), stdout: &syncBuffer{}}
	go func() { s.done <- serve(ctx, cfg, s.stdout) }()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		cancel()
		t.Fatalf("ember serve failed to start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("ember serve did not become ready")
	}
	resp, err := http.Get(s.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Cleanup(s.stop)
	return s
}

// stop shuts the server down and checks that it stopped cleanly.
func (s *emberServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("ember serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		s.t.Error("ember serve did not stop")
		return
	}
	if !s.noLeakCheck {
		s.base.check(s.t, s.dataDir)
	}
}

func (s *emberServer) creds(profile string) aws.Credentials {
	s.t.Helper()
	id, secret, err := auth.ReadCredentials(filepath.Join(s.dataDir, "credentials"), profile)
	if err != nil {
		s.t.Fatal(err)
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}
}

// client is the real SDK client against this server, with no retries so
// every error is seen as it was answered.
func (s *emberServer) client(c aws.Credentials) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.url),
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, ""),
		Retryer:      aws.NopRetryer{},
	})
}

// signed sends a raw request signed with the real SDK signer at signTime;
// mutate, if set, changes the request after signing.
func (s *emberServer) signed(c aws.Credentials, method, path string, body []byte, signTime time.Time, mutate func(*http.Request)) *http.Response {
	s.t.Helper()
	return s.signedAs(c, method, path, "application/json", body, signTime, mutate)
}

// signedAs is signed with a chosen Content-Type (signed with the rest).
func (s *emberServer) signedAs(c aws.Credentials, method, path, contentType string, body []byte, signTime time.Time, mutate func(*http.Request)) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), c, req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", signTime); err != nil {
		s.t.Fatal(err)
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// apiErr asserts err is the SDK's view of a Lambda error of type code with
// HTTP status.
func apiErr(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v; want %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("error code %q (%v); want %s", ae.ErrorCode(), err, code)
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() != status {
		t.Fatalf("status %d; want %d (%v)", re.HTTPStatusCode(), status, err)
	}
}

// rawErr asserts a raw response is a Lambda error of that type and status.
func rawErr(t *testing.T, resp *http.Response, code string, status int) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("X-Amzn-ErrorType") != code {
		t.Fatalf("got %d %q %s; want %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, status, code)
	}
	if resp.Header.Get("X-Amzn-RequestId") == "" {
		t.Fatal("no X-Amzn-RequestId")
	}
	if !strings.Contains(string(body), `"message"`) {
		t.Fatalf("error body %s has no message", body)
	}
}

type zipEntry struct {
	name   string
	mode   os.FileMode
	body   string
	stored bool // no compression
}

// makeZip builds a code package in memory.
func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.stored || e.mode&os.ModeSymlink != 0 {
			h.Method = zip.Store
		}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bootstrapZip is a minimal provided.al2023 package; tag varies its bytes.
func bootstrapZip(t testing.TB, tag string) []byte {
	return makeZip(t, zipEntry{name: "bootstrap", mode: 0o755, body: "#!/bin/sh\n# " + tag + "\nexit 0\n"})
}

func ioNop(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
