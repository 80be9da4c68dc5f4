package controlapi

// Fuzzers of the control API's request decoders, driven through the whole
// handler on the in-memory store. Their seed corpora are committed under
// testdata/fuzz/<FuzzName>/; `go test` runs them as regression tests, and
// `go test -fuzz FuzzName` explores further.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// makeTestZip is a package of one file.
func makeTestZip(t testing.TB, name string, mode os.FileMode, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fuzzServer is a server on a fresh in-memory store that holds one
// function, f, with the bootstrap package.
func fuzzServer(t *testing.T) (*fakeStore, *Server) {
	t.Helper()
	st := newFakeStore()
	s := newTestServer(t, st, &clock{time.Now()})
	if w := do(s, "POST", "/2015-03-31/functions", createBody("f")); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	return st, s
}

// updated is the outcome of fuzzUpdate: the configuration answered (nil
// if refused), the store's contents before and after, and the server.
type updated struct {
	out           *lambdaapi.FunctionConfiguration
	before, after snapshot
	s             *Server
}

// fuzzUpdate PUTs body to path on a fresh server holding function f. A
// refusal must leave the store as it was (refusal).
func fuzzUpdate(t *testing.T, path string, body []byte) updated {
	t.Helper()
	st, s := fuzzServer(t)
	u := updated{before: st.snapshot(), s: s}
	w := do(s, "PUT", path, body)
	u.after = st.snapshot()
	if w.Code != 200 {
		refusal(t, w, u.before, u.after)
		return u
	}
	u.out = new(lambdaapi.FunctionConfiguration)
	if err := json.Unmarshal(w.Body.Bytes(), u.out); err != nil {
		t.Fatalf("200 with a body that is no configuration: %v %s", err, w.Body)
	}
	return u
}

// snapshot is a deep copy of what the fake store holds.
type snapshot struct {
	fns      map[string]store.Revision
	versions map[string]store.Function
	code     map[string]string
}

func (f *fakeStore) snapshot() snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := snapshot{fns: map[string]store.Revision{}, versions: map[string]store.Function{}, code: map[string]string{}}
	for k, v := range f.fns {
		v.Environment = cloneMap(v.Environment)
		v.Layers = slices.Clone(v.Layers)
		s.fns[k] = v
	}
	for k, v := range f.versions {
		s.versions[k] = v
	}
	for k, v := range f.code {
		s.code[k] = string(v)
	}
	return s
}

// refusal checks an error answer: one of the statuses a refused update may
// have, Lambda's error header, and nothing stored changed.
func refusal(t *testing.T, w *httptest.ResponseRecorder, before, after snapshot) {
	t.Helper()
	switch w.Code {
	case 400, 404, 409, 412, 413, 415:
	default:
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var le struct{ Type, Message string }
	if w.Header().Get("X-Amzn-ErrorType") == "" || json.Unmarshal(w.Body.Bytes(), &le) != nil {
		t.Fatalf("%d without Lambda's error shape: %q %s", w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("%d %s, but the store changed:\nbefore %+v\nafter  %+v", w.Code, w.Body, before, after)
	}
}

// codeSHA is a configuration's CodeSha256 (base64) as the store keeps it
// (hex).
func codeSHA(t *testing.T, b64 string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("CodeSha256 %q: %v", b64, err)
	}
	return hex.EncodeToString(b)
}

// FuzzUpdateFunctionConfigurationRequest sends arbitrary bodies to
// UpdateFunctionConfiguration: it must never panic; a 200 must store a new
// revision whose settings are all within Lambda's bounds and are what it
// answered, with the code untouched; any other answer is one of Lambda's
// errors and changes nothing.
func FuzzUpdateFunctionConfigurationRequest(f *testing.F) {
	for _, seed := range []string{
		`{"Timeout":30,"MemorySize":256,"Description":"d","Handler":"main"}`,
		`{"Runtime":"provided.al2"}`,
		`{"Runtime":"cobol85"}`,
		`{"Timeout":0}`,
		`{"MemorySize":64}`,
		`{"EphemeralStorage":{"Size":10240}}`,
		`{"Environment":{"Variables":{"GREETING":"hi","AWS_REGION":"x"}}}`,
		`{"Environment":{"Variables":{"1BAD":"x"}}}`,
		`{"Environment":null}`,
		`{"Layers":[]}`,
		`{"Layers":["arn:aws:lambda:us-east-1:123456789012:layer:l:1"]}`,
		`{"DeadLetterConfig":{"TargetArn":"arn:aws:sqs:us-east-1:123456789012:q"}}`,
		`{"RevisionId":"not-the-revision","Timeout":5}`,
		`{"Role":"admin"}`,
		`{"Timeout":"3"}`,
		`{"Timeout":1e400}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u := fuzzUpdate(t, "/2015-03-31/functions/f/configuration", body)
		out, before, after, s := u.out, u.before, u.after, u.s
		if out == nil {
			return
		}
		old, now := before.fns[acct+".f"].Function, after.fns[acct+".f"].Function
		if now.RevisionID == old.RevisionID || out.RevisionId != now.RevisionID {
			t.Fatalf("RevisionId %q -> stored %q, answered %q", old.RevisionID, now.RevisionID, out.RevisionId)
		}
		if now.Timeout < lambdaapi.MinTimeout || now.Timeout > lambdaapi.MaxTimeout ||
			now.MemorySize < lambdaapi.MinMemory || now.MemorySize > lambdaapi.MaxMemory ||
			now.EphemeralStorage < lambdaapi.MinEphemeral || now.EphemeralStorage > lambdaapi.MaxEphemeral {
			t.Fatalf("stored out of bounds: timeout %d memory %d /tmp %d", now.Timeout, now.MemorySize, now.EphemeralStorage)
		}
		if _, ok := s.cfg.Runtimes[now.Runtime]; !ok {
			t.Fatalf("stored runtime %q", now.Runtime)
		}
		if err := lambdaapi.ValidateEnvironment(now.Environment); err != nil {
			t.Fatalf("stored an environment Lambda refuses: %v", err)
		}
		if out.Timeout != now.Timeout || out.MemorySize != now.MemorySize || out.Runtime != now.Runtime ||
			out.EphemeralStorage.Size != now.EphemeralStorage {
			t.Fatalf("answered %+v, stored %+v", out, now)
		}
		if now.CodeSHA256 != old.CodeSHA256 || codeSHA(t, out.CodeSha256) != now.CodeSHA256 ||
			!reflect.DeepEqual(before.code, after.code) || !reflect.DeepEqual(before.versions, after.versions) {
			t.Fatal("a configuration update changed code or versions")
		}
	})
}

// FuzzUpdateFunctionCodeRequest sends arbitrary bodies to
// UpdateFunctionCode: it must never panic; a 200 answers the CodeSha256
// that $LATEST now has, every stored package is one a function or version
// uses, and $LATEST's package is stored; any other answer is one of
// Lambda's errors and changes nothing.
func FuzzUpdateFunctionCodeRequest(f *testing.F) {
	other := base64.StdEncoding.EncodeToString(makeTestZip(f, "bootstrap", 0o755, "#!/bin/sh\necho other\n"))
	noBootstrap := base64.StdEncoding.EncodeToString(makeTestZip(f, "main", 0o755, "x"))
	for _, seed := range []string{
		`{"ZipFile":"` + bootstrapZipB64 + `"}`,
		`{"ZipFile":"` + other + `"}`,
		`{"ZipFile":"` + other + `","DryRun":true}`,
		`{"ZipFile":"` + other + `","Publish":true}`,
		`{"ZipFile":"` + other + `","Publish":true,"DryRun":true}`,
		`{"ZipFile":"` + other + `","RevisionId":"stale"}`,
		`{"ZipFile":"` + other + `","Architectures":["riscv"]}`,
		`{"ZipFile":"` + noBootstrap + `"}`,
		`{"ZipFile":"aGVsbG8sIG5vdCBhIHppcA=="}`,
		`{"ZipFile":"not base64!"}`,
		`{"S3Bucket":"b","S3Key":"k"}`,
		`{"ImageUri":"x"}`,
		`{"ZipFile":""}`,
		`{"ZipFile":7}`,
		`{}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u := fuzzUpdate(t, "/2015-03-31/functions/f/code", body)
		out, before, after := u.out, u.before, u.after
		if out == nil {
			return
		}
		latest := after.fns[acct+".f"].Function
		if codeSHA(t, out.CodeSha256) != latest.CodeSHA256 {
			t.Fatalf("answered CodeSha256 %s, $LATEST has %s", out.CodeSha256, latest.CodeSHA256)
		}
		if _, ok := after.code[acct+"/"+latest.CodeSHA256]; !ok {
			t.Fatalf("$LATEST's package %s is not stored", latest.CodeSHA256)
		}
		for k := range after.code {
			sha := strings.TrimPrefix(k, acct+"/")
			used := latest.CodeSHA256 == sha
			for _, v := range after.versions {
				used = used || v.CodeSHA256 == sha
			}
			if !used {
				t.Fatalf("package %s is stored but nothing uses it", sha)
			}
		}
		if latest.Runtime != before.fns[acct+".f"].Function.Runtime || latest.Timeout != before.fns[acct+".f"].Function.Timeout {
			t.Fatal("a code update changed the configuration")
		}
	})
}

// listStore is the fake store with ListFunctions.
type listStore struct{ *fakeStore }

func (l listStore) ListFunctions(_ context.Context, account, after string, max int) ([]store.Function, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Function
	for _, r := range l.fns {
		if r.AccountID == account && r.Name > after {
			out = append(out, r.Function)
		}
	}
	slices.SortFunc(out, func(a, b store.Function) int { return strings.Compare(a.Name, b.Name) })
	if len(out) > max {
		return out[:max], true, nil
	}
	return out, false, nil
}

// FuzzListFunctionsQuery sends arbitrary query strings to ListFunctions
// over seven functions: it must never panic and answer 200 or 400; a 200
// lists names in order, after the Marker, at most MaxItems (50 without
// one), with a NextMarker exactly when more follow, which names the last.
func FuzzListFunctionsQuery(f *testing.F) {
	m := func(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }
	for _, seed := range []string{
		"",
		"MaxItems=2",
		"MaxItems=2&Marker=" + m("b"),
		"Marker=" + m("zzz"),
		"Marker=" + m("bad/name"),
		"Marker=!!!",
		"Marker=" + m("a") + "=",
		"MaxItems=0",
		"MaxItems=10001",
		"MaxItems=-1",
		"MaxItems=1&MaxItems=9",
		"MaxItems=%zz",
		"FunctionVersion=ALL",
		"FunctionVersion=1",
		"MasterRegion=ALL&MaxItems=3",
	} {
		f.Add(seed)
	}
	names := []string{"a", "b", "c", "d-fn", "e_fn", "f", "g"}
	f.Fuzz(func(t *testing.T, query string) {
		s := newTestServer(t, listStore{newFakeStore()}, &clock{time.Now()})
		for _, n := range names {
			if w := do(s, "POST", "/2015-03-31/functions", createBody(n)); w.Code != 201 {
				t.Fatalf("create %s: %d %s", n, w.Code, w.Body)
			}
		}
		req := httptest.NewRequest("GET", "/2015-03-31/functions", nil)
		req.URL.RawQuery = query
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		switch w.Code {
		case 200:
		case 400:
			if typ := w.Header().Get("X-Amzn-ErrorType"); typ != lambdaapi.InvalidParameterValue && typ != lambdaapi.Validation {
				t.Fatalf("400 of type %q", typ)
			}
			return
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		q := req.URL.Query()
		var out struct {
			Functions  []struct{ FunctionName string }
			NextMarker *string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		max := 50
		if v := q.Get("MaxItems"); v != "" {
			if _, err := json.Number(v).Int64(); err != nil {
				t.Fatalf("MaxItems %q accepted", v)
			}
			n, _ := json.Number(v).Int64()
			if n < 1 || n > 10000 {
				t.Fatalf("MaxItems %d accepted", n)
			}
			max = int(n)
		}
		after := ""
		if v := q.Get("Marker"); v != "" {
			b, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil || !lambdaapi.ValidName(string(b)) {
				t.Fatalf("Marker %q accepted", v)
			}
			after = string(b)
		}
		var want []string
		for _, n := range names {
			if n > after {
				want = append(want, n)
			}
		}
		more := len(want) > max
		if more {
			want = want[:max]
		}
		var got []string
		for _, fn := range out.Functions {
			got = append(got, fn.FunctionName)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v; want %v", got, want)
		}
		if (out.NextMarker != nil) != more {
			t.Fatalf("NextMarker %v with more=%v", out.NextMarker, more)
		}
		if more && *out.NextMarker != m(want[len(want)-1]) {
			t.Fatalf("NextMarker %q does not name %q", *out.NextMarker, want[len(want)-1])
		}
	})
}
