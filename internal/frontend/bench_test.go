package frontend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/counting"
	"github.com/emberfn/ember/internal/invoke"
	"github.com/emberfn/ember/internal/metrics"
)

const (
	benchAKID    = "EMBRAAAAAAAAAAAAAAAA"
	benchSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	benchAccount = "123456789012"
)

type staticKeys struct{}

func (staticKeys) LookupKey(_ context.Context, id string) (auth.Key, bool, error) {
	if id != benchAKID {
		return auth.Key{}, false, nil
	}
	return auth.Key{AccountID: benchAccount, Secret: benchSecret}, true, nil
}

// benchWriter is a ResponseWriter that keeps nothing but its headers map,
// reused from one request to the next.
type benchWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }
func (w *benchWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// BenchmarkInvoke is the Front End's share of a warm invoke, in process:
// the SigV4-signed request (aws-sdk-go-v2's signer) verified by the real
// verifier, the cached function, a slot from the real Counting Service,
// the real metrics, a sandbox from a pool that always has one, and a
// worker that echoes the payload.
func BenchmarkInvoke(b *testing.B) {
	body := []byte(`{"hello":"world"}`)
	p := &fakePool{worker: fakeWorker{fn: func(req *invoke.Request) (*invoke.Result, error) {
		return &invoke.Result{Payload: req.Payload, Duration: 500 * time.Microsecond}, nil
	}}}
	s := New(Config{
		Auth:    auth.NewVerifier(auth.VerifierConfig{Keys: staticKeys{}}),
		Counter: counting.New(counting.Config{}), Pool: p, Functions: newFakeFunctions(),
		Metrics: metrics.New(metrics.Config{}),
	})
	mux := http.NewServeMux()
	mux.Handle("POST /2015-03-31/functions/{fn}/invocations", s)

	r, err := http.NewRequest("POST", "http://127.0.0.1:9070/2015-03-31/functions/f/invocations", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: benchAKID, SecretAccessKey: benchSecret},
		r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r.Host = r.URL.Host
	r.RequestURI = r.URL.RequestURI()
	rd := bytes.NewReader(body)
	r.Body = io.NopCloser(rd)
	w := &benchWriter{h: http.Header{}}
	do := func() {
		rd.Reset(body)
		clear(w.h)
		w.code, w.n = 0, 0
		mux.ServeHTTP(w, r)
		if w.code != http.StatusOK || w.n != len(body) {
			b.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
	do()
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}
