package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/emberfn/ember/internal/lambdaapi"
)

const (
	testAKID    = "EMBRAAAAAAAAAAAAAAAA"
	testSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testAccount = "123456789012"
	arnPath     = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn/invocations"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// memKeys is a KeyLookup over a map.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]Key
	err  error
}

func (m *memKeys) LookupKey(_ context.Context, id string) (Key, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return Key{}, false, m.err
	}
	k, ok := m.keys[id]
	return k, ok, nil
}

func (m *memKeys) set(id string, k Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[id] = k
}

type verifyResult struct {
	p          Principal
	err        error
	requestURI string
	// preErr is what Precheck said before the body was read.
	preErr error
}

// harness is an HTTP server whose handler verifies every request, so that
// Verify sees what a real server sees (r.Host, RawPath, moved headers).
type harness struct {
	t       *testing.T
	keys    *memKeys
	v       *Verifier
	srv     *httptest.Server
	service string
	results chan verifyResult
}

func newHarness(t *testing.T, now time.Time) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		keys:    &memKeys{keys: map[string]Key{testAKID: {AccountID: testAccount, Secret: testSecret, Admin: true}}},
		service: "lambda",
		results: make(chan verifyResult, 1),
	}
	h.v = NewVerifier(VerifierConfig{Keys: h.keys, Now: func() time.Time { return now }})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		preErr := h.v.Precheck(r.Context(), r, h.service)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			h.results <- verifyResult{err: err}
			return
		}
		p, err := h.v.Verify(r.Context(), r, body, h.service)
		h.results <- verifyResult{p: p, err: err, requestURI: r.RequestURI, preErr: preErr}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// newRequest makes a request to the harness; target is path and query,
// already escaped.
func (h *harness) newRequest(method, target string, body []byte) *http.Request {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+target, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

type signOpts struct {
	akid, secret, token, service, region string
	at                                   time.Time
}

func (o signOpts) withDefaults() signOpts {
	if o.akid == "" {
		o.akid = testAKID
	}
	if o.secret == "" {
		o.secret = testSecret
	}
	if o.service == "" {
		o.service = "lambda"
	}
	if o.region == "" {
		o.region = "us-east-1"
	}
	if o.at.IsZero() {
		o.at = testNow
	}
	return o
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sign signs req with the real aws-sdk-go-v2 signer.
func sign(t *testing.T, req *http.Request, body []byte, o signOpts) {
	t.Helper()
	o = o.withDefaults()
	creds := aws.Credentials{AccessKeyID: o.akid, SecretAccessKey: o.secret, SessionToken: o.token}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hashHex(body), o.service, o.region, o.at); err != nil {
		t.Fatal(err)
	}
}

// do sends req and returns what the server's Verify said.
func (h *harness) do(req *http.Request) verifyResult {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case r := <-h.results:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("handler did not run")
		return verifyResult{}
	}
}

func wantOK(t *testing.T, r verifyResult) {
	t.Helper()
	if r.preErr != nil {
		t.Fatalf("Precheck: %v (request URI %s)", r.preErr, r.requestURI)
	}
	if r.err != nil {
		t.Fatalf("Verify: %v (request URI %s)", r.err, r.requestURI)
	}
	want := Principal{AccountID: testAccount, AccessKeyID: testAKID, Admin: true}
	if r.p != want {
		t.Fatalf("principal = %+v, want %+v", r.p, want)
	}
}

func wantErr(t *testing.T, err error, typ, msgPart string) {
	t.Helper()
	var le *lambdaapi.Error
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a %s", err, typ)
	}
	if le.Type != typ {
		t.Fatalf("error type = %s (%q), want %s", le.Type, le.Message, typ)
	}
	if !strings.Contains(le.Message, msgPart) {
		t.Fatalf("message %q does not contain %q", le.Message, msgPart)
	}
}

func TestVerifyAcceptsSDKSignatures(t *testing.T) {
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	cases := []struct {
		name, method, target string
		body                 []byte
		header               map[string]string
		wantURI              string // what the server must have received, if set
	}{
		{name: "plain path", method: "GET", target: "/2015-03-31/functions/my-fn"},
		{name: "function ARN and qualifier", method: "POST", target: arnPath + "?Qualifier=$LATEST",
			body: []byte(`{"hello":"world"}`), header: map[string]string{"Content-Type": "application/json"},
			wantURI: arnPath + "?Qualifier=%24LATEST"},
		{name: "query with spaces and repeated keys", method: "GET",
			target: "/2015-03-31/functions/?b=x%20y&a=2&a=1&c=p+q&d=%2F%3D&e"},
		{name: "empty body", method: "POST", target: "/2015-03-31/functions/my-fn/invocations", body: []byte{}},
		{name: "binary body", method: "POST", target: "/2015-03-31/functions/my-fn/invocations", body: binary,
			header: map[string]string{"Content-Type": "application/octet-stream"}},
		{name: "multi-space header value", method: "PUT", target: "/2015-03-31/functions/my-fn/configuration",
			body: []byte("{}"), header: map[string]string{"X-Custom": "a   b  c"}},
		{name: "client content sha256 header", method: "POST", target: "/2015-03-31/functions/f/invocations",
			body: []byte("x"), header: map[string]string{"X-Amz-Content-Sha256": hashHex([]byte("x"))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, testNow)
			req := h.newRequest(c.method, c.target, c.body)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			sign(t, req, c.body, signOpts{})
			r := h.do(req)
			wantOK(t, r)
			if c.wantURI != "" && r.requestURI != c.wantURI {
				t.Fatalf("server saw %s, want %s", r.requestURI, c.wantURI)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	body := []byte(`{"k":"v"}`)
	const mismatch = "does not match the signature you provided"
	cases := []struct {
		name    string
		opts    signOpts
		now     time.Time // verifier clock; default testNow
		prepare func(*http.Request)
		tamper  func(*http.Request) // after signing
		typ     string
		msg     string
	}{
		{name: "tampered body", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.Body = io.NopCloser(bytes.NewReader([]byte(`{"k":"w"}`))) }},
		{name: "tampered path", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) {
				r.URL.Path = strings.Replace(r.URL.Path, "my-fn", "my-fo", 1)
				r.URL.RawPath = strings.Replace(r.URL.RawPath, "my-fn", "my-fo", 1)
			}},
		{name: "path escaping changed", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.URL.RawPath = "" }}, // ':' sent unescaped
		{name: "tampered query", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.URL.RawQuery = "Qualifier=1" }},
		{name: "added query parameter", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.URL.RawQuery += "&x=1" }},
		{name: "tampered signed header", typ: lambdaapi.InvalidSignature, msg: mismatch,
			prepare: func(r *http.Request) { r.Header.Set("Content-Type", "application/json") },
			tamper:  func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }},
		{name: "tampered method", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.Method = "PUT" }},
		{name: "tampered x-amz-date within skew", typ: lambdaapi.InvalidSignature, msg: mismatch,
			tamper: func(r *http.Request) { r.Header.Set("X-Amz-Date", testNow.Add(time.Second).Format(amzDateLayout)) }},
		{name: "wrong secret", opts: signOpts{secret: "not-the-secret"}, typ: lambdaapi.InvalidSignature, msg: mismatch},
		{name: "unknown key", opts: signOpts{akid: "EMBRZZZZZZZZZZZZZZZZ"}, typ: lambdaapi.UnrecognizedClient,
			msg: "The security token included in the request is invalid."},
		{name: "session token", opts: signOpts{token: "tok"}, typ: lambdaapi.UnrecognizedClient, msg: "security token"},
		{name: "stale date", now: testNow.Add(20 * time.Minute), typ: lambdaapi.InvalidSignature,
			msg: "Signature expired: 20260102T030405Z is now earlier than 20260102T030905Z (20260102T032405Z - 15 min.)"},
		{name: "future date", now: testNow.Add(-20 * time.Minute), typ: lambdaapi.InvalidSignature,
			msg: "Signature not yet current: 20260102T030405Z is still later than"},
		{name: "scope date differs from x-amz-date", typ: lambdaapi.InvalidSignature, msg: "Date in Credential scope does not match",
			tamper: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20260102/", "/20260101/", 1))
			}},
		{name: "wrong region", opts: signOpts{region: "us-west-2"}, typ: lambdaapi.InvalidSignature,
			msg: "Credential should be scoped to a valid region"},
		{name: "wrong service", opts: signOpts{service: "s3"}, typ: lambdaapi.InvalidSignature,
			msg: "Credential should be scoped to correct service: 'lambda'"},
		{name: "missing authorization", typ: lambdaapi.MissingAuthenticationToken, msg: "Missing Authentication Token",
			tamper: func(r *http.Request) { r.Header.Del("Authorization") }},
		{name: "malformed authorization", typ: lambdaapi.IncompleteSignature, msg: "requires 'Signature'",
			tamper: func(r *http.Request) {
				a := r.Header.Get("Authorization")
				r.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
			}},
		{name: "wrong algorithm", typ: lambdaapi.IncompleteSignature, msg: "Unsupported",
			tamper: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), algorithm, "AWS4-HMAC-SHA1", 1))
			}},
		{name: "bad scope shape", typ: lambdaapi.IncompleteSignature, msg: "terminator",
			tamper: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "aws4_request", "aws5_request", 1))
			}},
		{name: "host not signed", typ: lambdaapi.IncompleteSignature, msg: "must include 'host'",
			tamper: func(r *http.Request) {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "host;", "", 1))
			}},
		{name: "missing date", typ: lambdaapi.IncompleteSignature, msg: "'X-Amz-Date' or a 'Date'",
			tamper: func(r *http.Request) { r.Header.Del("X-Amz-Date") }},
		{name: "malformed date", typ: lambdaapi.IncompleteSignature, msg: "ISO-8601",
			tamper: func(r *http.Request) { r.Header.Set("X-Amz-Date", "2026-01-02T03:04:05Z") }},
		{name: "content sha256 mismatch", typ: lambdaapi.InvalidSignature, msg: "x-amz-content-sha256",
			tamper: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", hashHex([]byte("other"))) }},
		{name: "unsigned payload outside presigned URLs", typ: lambdaapi.InvalidSignature, msg: "x-amz-content-sha256",
			tamper: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", unsignedPayload) }},
		{name: "header and presigned query", typ: lambdaapi.IncompleteSignature, msg: "Only one auth mechanism",
			tamper: func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Algorithm=" + algorithm }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = testNow
			}
			h := newHarness(t, now)
			req := h.newRequest("POST", arnPath+"?Qualifier=$LATEST", body)
			if c.prepare != nil {
				c.prepare(req)
			}
			sign(t, req, body, c.opts)
			if c.tamper != nil {
				c.tamper(req)
			}
			r := h.do(req)
			wantErr(t, r.err, c.typ, c.msg)
			// Precheck refuses what needs no body the same way, and
			// leaves the signature (which covers the body) to Verify.
			if c.msg == mismatch || strings.Contains(c.msg, "x-amz-content-sha256") {
				if r.preErr != nil {
					t.Fatalf("Precheck refused a request only its signature or body hash gives away: %v", r.preErr)
				}
			} else {
				wantErr(t, r.preErr, c.typ, c.msg)
			}
		})
	}
}

func TestVerifyClockEdges(t *testing.T) {
	for _, d := range []time.Duration{-15 * time.Minute, 15 * time.Minute, 14 * time.Minute, -14 * time.Minute} {
		h := newHarness(t, testNow.Add(d))
		req := h.newRequest("GET", "/2015-03-31/functions/", nil)
		sign(t, req, nil, signOpts{})
		wantOK(t, h.do(req))
	}
}

func TestVerifyDateHeader(t *testing.T) {
	send := func(date time.Time) verifyResult {
		h := newHarness(t, testNow)
		req := h.newRequest("GET", "/2015-03-31/functions/", nil)
		sign(t, req, nil, signOpts{})
		req.Header.Del("X-Amz-Date")
		req.Header.Set("Date", date.Format(http.TimeFormat))
		return h.do(req)
	}
	// The Date header is used when X-Amz-Date is absent: a stale one is
	// refused as such, a current one gets as far as the signature (which
	// covered the X-Amz-Date header that is now gone, so cannot match).
	wantErr(t, send(testNow.Add(-time.Hour)).err, lambdaapi.InvalidSignature, "Signature expired: 20260102T020405Z")
	wantErr(t, send(testNow).err, lambdaapi.InvalidSignature, "does not match the signature")
}

func TestVerifyLookupError(t *testing.T) {
	h := newHarness(t, testNow)
	boom := errors.New("store down")
	h.keys.err = boom
	req := h.newRequest("GET", "/2015-03-31/functions/", nil)
	sign(t, req, nil, signOpts{})
	r := h.do(req)
	if !errors.Is(r.err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", r.err, boom)
	}
	var le *lambdaapi.Error
	if errors.As(r.err, &le) {
		t.Fatalf("a lookup failure must not be a Lambda error, got %v", le)
	}
}

func TestVerifySigningKeyCacheFollowsSecret(t *testing.T) {
	h := newHarness(t, testNow)
	send := func(secret string) verifyResult {
		req := h.newRequest("GET", "/2015-03-31/functions/", nil)
		sign(t, req, nil, signOpts{secret: secret})
		return h.do(req)
	}
	wantOK(t, send(testSecret))
	wantOK(t, send(testSecret)) // cached
	const rotated = "rotatedSecretrotatedSecretrotatedSecret0"
	h.keys.set(testAKID, Key{AccountID: testAccount, Secret: rotated, Admin: true})
	wantErr(t, send(testSecret).err, lambdaapi.InvalidSignature, "does not match")
	wantOK(t, send(rotated))
	wantOK(t, send(rotated))
}

func TestSigningKeyCacheBounded(t *testing.T) {
	v := NewVerifier(VerifierConfig{Keys: &memKeys{}})
	for i := range 3 * maxCachedKeys {
		c := credential{accessKeyID: fmt.Sprintf("K%d", i), date: "20260102", region: "us-east-1", service: "lambda"}
		got := v.signingKey(c, "s").key
		if want := deriveSigningKey("s", c.date, c.region, c.service); !bytes.Equal(got, want) {
			t.Fatal("cached key differs from derived key")
		}
	}
	if n := len(v.cache); n > maxCachedKeys || n == 0 {
		t.Fatalf("cache holds %d keys, want 1..%d", n, maxCachedKeys)
	}
}

func TestVerifyPresigned(t *testing.T) {
	body := []byte("payload")
	presign := func(t *testing.T, h *harness, payloadHash, extraQuery string) *http.Request {
		t.Helper()
		req := h.newRequest("POST", arnPath+"?Qualifier=$LATEST"+extraQuery, body)
		creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
		u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, payloadHash, "lambda", "us-east-1", testNow)
		if err != nil {
			t.Fatal(err)
		}
		out, err := http.NewRequest("POST", u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range hdr {
			if k != "Host" {
				out.Header[k] = vs
			}
		}
		return out
	}
	t.Run("body hash", func(t *testing.T) {
		h := newHarness(t, testNow)
		wantOK(t, h.do(presign(t, h, hashHex(body), "")))
	})
	t.Run("unsigned payload", func(t *testing.T) {
		h := newHarness(t, testNow)
		wantOK(t, h.do(presign(t, h, unsignedPayload, "")))
	})
	t.Run("within X-Amz-Expires", func(t *testing.T) {
		h := newHarness(t, testNow.Add(50*time.Minute))
		wantOK(t, h.do(presign(t, h, hashHex(body), "&X-Amz-Expires=3600")))
	})
	t.Run("past X-Amz-Expires", func(t *testing.T) {
		h := newHarness(t, testNow.Add(61*time.Minute))
		wantErr(t, h.do(presign(t, h, hashHex(body), "&X-Amz-Expires=3600")).err, lambdaapi.InvalidSignature, "Signature expired")
	})
	t.Run("tampered body", func(t *testing.T) {
		h := newHarness(t, testNow)
		req := presign(t, h, hashHex(body), "")
		req.Body = io.NopCloser(bytes.NewReader([]byte("PAYLOAD")))
		wantErr(t, h.do(req).err, lambdaapi.InvalidSignature, "does not match")
	})
	t.Run("tampered query", func(t *testing.T) {
		h := newHarness(t, testNow)
		req := presign(t, h, unsignedPayload, "")
		req.URL.RawQuery = strings.Replace(req.URL.RawQuery, "Qualifier=%24LATEST", "Qualifier=2", 1)
		wantErr(t, h.do(req).err, lambdaapi.InvalidSignature, "does not match")
	})
	t.Run("missing signature", func(t *testing.T) {
		h := newHarness(t, testNow)
		req := presign(t, h, unsignedPayload, "")
		q := req.URL.Query()
		q.Del("X-Amz-Signature")
		req.URL.RawQuery = q.Encode()
		wantErr(t, h.do(req).err, lambdaapi.IncompleteSignature, "requires 'Signature'")
	})
}

func TestCanonicalHelpers(t *testing.T) {
	if got, want := awsEscape("/a b/arn%3Ax~_.-", false), "/a%20b/arn%253Ax~_.-"; got != want {
		t.Errorf("awsEscape path = %q, want %q", got, want)
	}
	if got, want := awsEscape("a/b+c=d", true), "a%2Fb%2Bc%3Dd"; got != want {
		t.Errorf("awsEscape query = %q, want %q", got, want)
	}
	for in, want := range map[string]string{"  a   b  ": "a b", "a": "a", "": "", "a  b c": "a b c"} {
		if got := stripExcessSpaces(in); got != want {
			t.Errorf("stripExcessSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=EMBRAAAAAAAAAAAAAAAA/20260102/us-east-1/lambda/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/lambda/aws4_request,SignedHeaders=host,Signature=00")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=x")
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/lambda/aws4_request, SignedHeaders=;;, Signature=x")
	f.Add("AWS4-HMAC-SHA256 Signature=x, Signature=y")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			var le *lambdaapi.Error
			if !errors.As(err, &le) || le.Type != lambdaapi.IncompleteSignature {
				t.Fatalf("error %v is not an IncompleteSignatureException", err)
			}
			return
		}
		for _, s := range []string{a.accessKeyID, a.date, a.region, a.service} {
			if s == "" || strings.Contains(s, "/") {
				t.Fatalf("bad credential component %q in %+v", s, a)
			}
		}
		if a.signature == "" || strings.Join(a.signedHeaders, ";") != a.signedHeadersRaw {
			t.Fatalf("inconsistent parse %+v", a)
		}
		hasHost := false
		for _, n := range a.signedHeaders {
			hasHost = hasHost || n == "host"
		}
		if !hasHost {
			t.Fatalf("parsed SignedHeaders without host: %+v", a)
		}
		again, err := parseAuthorization(fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
			algorithm, a.accessKeyID, a.scope(), a.signedHeadersRaw, a.signature))
		if err != nil {
			t.Fatalf("re-rendered header does not parse: %v", err)
		}
		if fmt.Sprint(again) != fmt.Sprint(a) {
			t.Fatalf("round trip: %+v != %+v", again, a)
		}
	})
}
