package controlapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/store"
)

// fakeStore is an in-memory Store; fail makes every call fail.
type fakeStore struct {
	mu        sync.Mutex
	fail      error
	fns       map[string]store.Revision
	versions  map[string]store.Function
	aliases   map[string]store.AliasRevision
	code      map[string][]byte
	layers    map[string]store.LayerVersion
	lastLayer map[string]int
	revNo     uint64
}

func newFakeStore() *fakeStore {
	return &fakeStore{fns: map[string]store.Revision{}, code: map[string][]byte{},
		versions: map[string]store.Function{}, aliases: map[string]store.AliasRevision{},
		layers: map[string]store.LayerVersion{}, lastLayer: map[string]int{}}
}

func (f *fakeStore) CreateVersion(_ context.Context, v store.Function) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	k := v.Key() + "." + v.Version
	if _, ok := f.versions[k]; ok {
		return 0, store.ErrExists
	}
	f.revNo++
	f.versions[k] = v
	return f.revNo, nil
}

func (f *fakeStore) GetVersion(_ context.Context, account, name, version string) (store.Function, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.Function{}, f.fail
	}
	v, ok := f.versions[account+"."+name+"."+version]
	if !ok {
		return v, store.ErrNotFound
	}
	return v, nil
}

func (f *fakeStore) DeleteVersion(_ context.Context, account, name, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.versions, account+"."+name+"."+version)
	return f.fail
}

func (f *fakeStore) ListVersions(_ context.Context, account, name string) ([]store.Function, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []store.Function
	for _, v := range f.versions {
		if v.AccountID == account && v.Name == name {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b store.Function) int {
		x, _ := strconv.Atoi(a.Version)
		y, _ := strconv.Atoi(b.Version)
		return x - y
	})
	return out, nil
}

func (f *fakeStore) CreateAlias(_ context.Context, a store.Alias) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	k := a.AccountID + "." + a.Function + "." + a.Name
	if _, ok := f.aliases[k]; ok {
		return 0, store.ErrExists
	}
	f.revNo++
	f.aliases[k] = store.AliasRevision{Alias: a, Rev: f.revNo}
	return f.revNo, nil
}

func (f *fakeStore) GetAlias(_ context.Context, account, function, alias string) (store.AliasRevision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.AliasRevision{}, f.fail
	}
	a, ok := f.aliases[account+"."+function+"."+alias]
	if !ok {
		return a, store.ErrNotFound
	}
	return a, nil
}

func (f *fakeStore) UpdateAlias(_ context.Context, a store.Alias, rev uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	k := a.AccountID + "." + a.Function + "." + a.Name
	if f.aliases[k].Rev != rev {
		return 0, store.ErrConflict
	}
	f.revNo++
	f.aliases[k] = store.AliasRevision{Alias: a, Rev: f.revNo}
	return f.revNo, nil
}

func (f *fakeStore) DeleteAlias(_ context.Context, account, function, alias string, _ uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.aliases, account+"."+function+"."+alias)
	return f.fail
}

func (f *fakeStore) ListAliases(_ context.Context, account, function string) ([]store.Alias, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []store.Alias
	for _, a := range f.aliases {
		if a.AccountID == account && a.Function == function {
			out = append(out, a.Alias)
		}
	}
	slices.SortFunc(out, func(a, b store.Alias) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeStore) CreateFunction(_ context.Context, fn store.Function) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	if _, ok := f.fns[fn.Key()]; ok {
		return 0, store.ErrExists
	}
	f.revNo++
	f.fns[fn.Key()] = store.Revision{Function: fn, Rev: f.revNo}
	return f.revNo, nil
}

func (f *fakeStore) GetFunction(_ context.Context, account, name string) (store.Revision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.Revision{}, f.fail
	}
	r, ok := f.fns[account+"."+name]
	if !ok {
		return r, store.ErrNotFound
	}
	return r, nil
}

func (f *fakeStore) UpdateFunction(_ context.Context, fn store.Function, rev uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	if f.fns[fn.Key()].Rev != rev {
		return 0, store.ErrConflict
	}
	f.revNo++
	f.fns[fn.Key()] = store.Revision{Function: fn, Rev: f.revNo}
	return f.revNo, nil
}

func (f *fakeStore) DeleteFunction(_ context.Context, account, name string, rev uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.fns, account+"."+name)
	return f.fail
}

func (f *fakeStore) ListFunctions(context.Context, string, string, int) ([]store.Function, bool, error) {
	return nil, false, f.fail
}

func (f *fakeStore) CodeInUse(_ context.Context, account, sha string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	uses := func(fn store.Function) bool {
		if fn.AccountID != account {
			return false
		}
		if fn.CodeSHA256 == sha {
			return true
		}
		return slices.ContainsFunc(fn.Layers, func(l store.FunctionLayer) bool { return l.CodeSHA256 == sha })
	}
	for _, r := range f.fns {
		if uses(r.Function) {
			return true, nil
		}
	}
	for _, v := range f.versions {
		if uses(v) {
			return true, nil
		}
	}
	for _, l := range f.layers {
		if l.AccountID == account && l.CodeSHA256 == sha {
			return true, nil
		}
	}
	return false, nil
}

func layerKey(account, name string, version int) string {
	return account + "." + name + "." + strconv.Itoa(version)
}

func (f *fakeStore) NextLayerVersion(_ context.Context, account, name string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	f.lastLayer[account+"."+name]++
	return f.lastLayer[account+"."+name], nil
}

func (f *fakeStore) CreateLayerVersion(_ context.Context, l store.LayerVersion) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	k := layerKey(l.AccountID, l.Name, l.Version)
	if _, ok := f.layers[k]; ok {
		return store.ErrExists
	}
	f.layers[k] = l
	return nil
}

func (f *fakeStore) GetLayerVersion(_ context.Context, account, name string, version int) (store.LayerVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.LayerVersion{}, f.fail
	}
	l, ok := f.layers[layerKey(account, name, version)]
	if !ok {
		return l, store.ErrNotFound
	}
	return l, nil
}

func (f *fakeStore) DeleteLayerVersion(_ context.Context, account, name string, version int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.layers, layerKey(account, name, version))
	return f.fail
}

func (f *fakeStore) ListLayerVersions(_ context.Context, account, name string) ([]store.LayerVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []store.LayerVersion
	for _, l := range f.layers {
		if l.AccountID == account && (name == "" || l.Name == name) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b store.LayerVersion) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	return out, nil
}

func (f *fakeStore) PutCode(_ context.Context, account, sha string, zip []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.code[account+"/"+sha] = zip
	return nil
}

func (f *fakeStore) GetCode(_ context.Context, account, sha string) (io.ReadCloser, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.code[account+"/"+sha]
	if !ok {
		return nil, 0, store.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (f *fakeStore) DeleteCode(_ context.Context, account, sha string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.code, account+"/"+sha)
	return nil
}

func (f *fakeStore) Account(context.Context, string) (store.Account, error) {
	return store.Account{}, store.ErrNotFound
}

func (f *fakeStore) SetAccountLimit(context.Context, string, int) (store.Account, error) {
	return store.Account{}, store.ErrNotFound
}

// trustAll authenticates every request as one account (the signature
// checks have their own tests in auth and the system tests).
type trustAll struct{}

func (trustAll) Verify(context.Context, *http.Request, []byte, string) (auth.Principal, error) {
	return auth.Principal{AccountID: "123456789012"}, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestServer(t testing.TB, st Store, clk *clock) *Server {
	sealer, err := auth.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Store: st, Auth: trustAll{}, Signer: sealer, Now: clk.now, RatePerSecond: 1e6, Burst: 1e6,
		Logger: slog.New(slog.DiscardHandler)})
}

func do(s *Server, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

const bootstrapZipB64 = "UEsDBBQAAAAIAAAAIQDihkXDEwAAABEAAAAJAAAAYm9vdHN0cmFwU1bUT8rM0y/O4EqtyCxRMOACAFBLAQIUAxQAAAAIAAAAIQDihkXDEwAAABEAAAAJAAAAAAAAAAAAAADtgQAAAABib290c3RyYXBQSwUGAAAAAAEAAQA3AAAAOgAAAAAA"

func createBody(name string) []byte {
	return []byte(`{"FunctionName":"` + name + `","Runtime":"provided.al2023","Code":{"ZipFile":"` + bootstrapZipB64 + `"}}`)
}

func TestStoreFailureIsServiceException(t *testing.T) {
	st := newFakeStore()
	s := newTestServer(t, st, &clock{time.Now()})
	if w := do(s, "POST", "/2015-03-31/functions", createBody("f")); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	st.fail = errors.New("nats: connection closed (secret internals)")
	for _, r := range []struct{ method, path string }{
		{"GET", "/2015-03-31/functions/f"}, {"GET", "/2015-03-31/functions/"}, {"DELETE", "/2015-03-31/functions/f"},
	} {
		w := do(s, r.method, r.path, nil)
		if w.Code != 500 || w.Header().Get("X-Amzn-ErrorType") != "ServiceException" {
			t.Fatalf("%s %s: %d %q", r.method, r.path, w.Code, w.Header().Get("X-Amzn-ErrorType"))
		}
		if strings.Contains(w.Body.String(), "secret internals") {
			t.Fatal("a ServiceException leaks the internal error")
		}
	}
}

func TestCodeURLExpires(t *testing.T) {
	clk := &clock{time.Now()}
	s := newTestServer(t, newFakeStore(), clk)
	if w := do(s, "POST", "/2015-03-31/functions", createBody("f")); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	w := do(s, "GET", "/2015-03-31/functions/f", nil)
	var out struct{ Code struct{ Location string } }
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(out.Code.Location, "http://example.com")
	if w := do(s, "GET", path, nil); w.Code != 200 || w.Header().Get("Content-Type") != "application/zip" {
		t.Fatalf("fresh URL: %d", w.Code)
	}
	clk.t = clk.t.Add(11 * time.Minute)
	if w := do(s, "GET", path, nil); w.Code != 403 || w.Header().Get("X-Amzn-ErrorType") != "AccessDeniedException" {
		t.Fatalf("expired URL: %d", w.Code)
	}
}

// FuzzCreateFunctionRequest drives the whole CreateFunction handler with
// arbitrary bodies: it must never panic, answer only Lambda's statuses,
// and store a function only when it answers 201.
func FuzzCreateFunctionRequest(f *testing.F) {
	f.Add(createBody("f"))
	f.Add([]byte(`{"FunctionName":"x","Runtime":"provided.al2","Timeout":0,"Code":{"ZipFile":"AAAA"}}`))
	f.Add([]byte(`{"FunctionName":"x","Environment":{"Variables":{"AWS_REGION":"x"}}}`))
	f.Add([]byte(`{"FunctionName":["x"]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"FunctionName":"arn:aws:lambda:us-east-1:123456789012:function:f","Runtime":"provided.al2023","MemorySize":128,"Code":{"ZipFile":"` + bootstrapZipB64 + `"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st := newFakeStore()
		s := newTestServer(t, st, &clock{time.Now()})
		w := do(s, "POST", "/2015-03-31/functions", body)
		switch w.Code {
		case 201:
			if len(st.fns) != 1 || len(st.code) != 1 {
				t.Fatalf("201 but stored %d functions, %d packages", len(st.fns), len(st.code))
			}
		case 400, 409, 413, 415:
			if len(st.fns) != 0 || len(st.code) != 0 {
				t.Fatalf("%d but stored something", w.Code)
			}
			if w.Header().Get("X-Amzn-ErrorType") == "" {
				t.Fatal("error without X-Amzn-ErrorType")
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}

// Versions and aliases through the handlers, on the fake store: an empty
// PublishVersion body is fine, unchanged functions publish nothing new,
// aliases hold their versions, and deleting the function takes
// everything with it.
func TestVersionsAndAliasesHandlers(t *testing.T) {
	st := newFakeStore()
	s := newTestServer(t, st, &clock{time.Now()})
	if w := do(s, "POST", "/2015-03-31/functions", createBody("f")); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	version := func(w *httptest.ResponseRecorder) string {
		var out struct{ Version, FunctionArn string }
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return out.Version
	}
	if w := do(s, "POST", "/2015-03-31/functions/f/versions", nil); w.Code != 201 || version(w) != "1" {
		t.Fatalf("publish: %d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/2015-03-31/functions/f/versions", []byte(`{}`)); w.Code != 201 || version(w) != "1" {
		t.Fatalf("publish unchanged: %d %s", w.Code, w.Body)
	}
	if w := do(s, "PUT", "/2015-03-31/functions/f/configuration", []byte(`{"Timeout":9}`)); w.Code != 200 {
		t.Fatalf("update: %d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/2015-03-31/functions/f/versions", nil); w.Code != 201 || version(w) != "2" {
		t.Fatalf("publish after a change: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/2015-03-31/functions/f/configuration?Qualifier=1", nil); w.Code != 200 || strings.Contains(w.Body.String(), `"Timeout":9`) {
		t.Fatalf("version 1 changed with $LATEST: %s", w.Body)
	}
	if w := do(s, "POST", "/2015-03-31/functions/f/aliases", []byte(`{"Name":"live","FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":0.25}}}`)); w.Code != 201 {
		t.Fatalf("create alias: %d %s", w.Code, w.Body)
	}
	for _, q := range []string{"1", "2"} {
		if w := do(s, "DELETE", "/2015-03-31/functions/f?Qualifier="+q, nil); w.Code != 409 {
			t.Fatalf("delete version %s an alias uses: %d %s", q, w.Code, w.Body)
		}
	}
	if w := do(s, "GET", "/2015-03-31/functions?FunctionVersion=ALL", nil); w.Code != 400 {
		t.Fatalf("ListFunctions ALL: %d", w.Code)
	}
	if w := do(s, "DELETE", "/2015-03-31/functions/f", nil); w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if len(st.fns)+len(st.versions)+len(st.aliases)+len(st.code) != 0 {
		t.Fatalf("left behind: %d functions, %d versions, %d aliases, %d packages", len(st.fns), len(st.versions), len(st.aliases), len(st.code))
	}
}

// readCounter is a request body that counts what is read of it.
type readCounter struct {
	mu   sync.Mutex
	r    io.Reader
	read int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.read += n
	c.mu.Unlock()
	return n, err
}

func (c *readCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// keyMap is an auth.KeyLookup over a map.
type keyMap map[string]auth.Key

func (m keyMap) LookupKey(_ context.Context, id string) (auth.Key, bool, error) {
	k, ok := m[id]
	return k, ok, nil
}

// With the real SigV4 verifier, a request that no body could make valid
// (no signature, an unknown key, a stale date, a garbled header) is refused
// with the SDKs' error types before a byte of its body is read; a signed
// one from a known key is read and verified in full, and a tampered body
// is still caught.
func TestAuthBeforeBody(t *testing.T) {
	const akid, secret = "EMBRAAAAAAAAAAAAAAAA", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	now := time.Now()
	sealer, err := auth.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st := newFakeStore()
	s := New(Config{Store: st, Signer: sealer, RatePerSecond: 1e6, Burst: 1e6,
		Auth: auth.NewVerifier(auth.VerifierConfig{Keys: keyMap{akid: {AccountID: "123456789012", Secret: secret}}})})

	body := createBody("f")
	big := append(bytes.Repeat([]byte(" "), 20<<20), body...) // valid JSON, 20 MB
	send := func(id, sec string, at time.Time, payload []byte, mutate func(*http.Request)) (*httptest.ResponseRecorder, int) {
		t.Helper()
		req := httptest.NewRequest("POST", "/2015-03-31/functions", nil)
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256(payload)
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: id, SecretAccessKey: sec},
			req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(req)
		}
		rc := &readCounter{r: bytes.NewReader(payload)}
		req.Body = io.NopCloser(rc)
		req.ContentLength = int64(len(payload))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w, rc.n()
	}
	for _, c := range []struct {
		name   string
		id     string
		at     time.Time
		mutate func(*http.Request)
		typ    string
	}{
		{"unknown key", "EMBRZZZZZZZZZZZZZZZZ", now, nil, "UnrecognizedClientException"},
		{"no signature", akid, now, func(r *http.Request) { r.Header.Del("Authorization") }, "MissingAuthenticationTokenException"},
		{"garbled signature", akid, now, func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") }, "IncompleteSignatureException"},
		{"no date", akid, now, func(r *http.Request) { r.Header.Del("X-Amz-Date") }, "IncompleteSignatureException"},
		{"stale date", akid, now.Add(-20 * time.Minute), nil, "InvalidSignatureException"},
	} {
		w, read := send(c.id, secret, c.at, big, c.mutate)
		if w.Code != 403 || w.Header().Get("X-Amzn-ErrorType") != c.typ {
			t.Fatalf("%s: %d %q %s; want 403 %s", c.name, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, c.typ)
		}
		if read != 0 {
			t.Fatalf("%s: %d bytes of the body were read before the caller was refused", c.name, read)
		}
		if w.Header().Get("X-Amzn-RequestId") == "" {
			t.Fatalf("%s: no X-Amzn-RequestId", c.name)
		}
	}
	// A declared length over the bound is refused unread too, signed or not.
	req := httptest.NewRequest("POST", "/2015-03-31/functions", nil)
	rc := &readCounter{r: bytes.NewReader(nil)}
	req.Body, req.ContentLength = io.NopCloser(rc), 71<<20
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 413 || w.Header().Get("X-Amzn-ErrorType") != "RequestTooLargeException" || rc.n() != 0 {
		t.Fatalf("declared 71 MB: %d %q, %d bytes read", w.Code, w.Header().Get("X-Amzn-ErrorType"), rc.n())
	}

	// A known key's wrong secret and a tampered body need the body: they
	// are read, then refused.
	if w, read := send(akid, "not-the-secret", now, body, nil); w.Code != 403 ||
		w.Header().Get("X-Amzn-ErrorType") != "InvalidSignatureException" || read != len(body) {
		t.Fatalf("wrong secret: %d %q, %d bytes read", w.Code, w.Header().Get("X-Amzn-ErrorType"), read)
	}
	tampered := bytes.Replace(body, []byte(`"f"`), []byte(`"g"`), 1)
	w, _ = send(akid, secret, now, body, nil)
	if w.Code != 201 {
		t.Fatalf("good request: %d %s", w.Code, w.Body)
	}
	req = httptest.NewRequest("POST", "/2015-03-31/functions", bytes.NewReader(tampered))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 403 || w.Header().Get("X-Amzn-ErrorType") != "InvalidSignatureException" {
		t.Fatalf("tampered body: %d %q", w.Code, w.Header().Get("X-Amzn-ErrorType"))
	}
	if len(st.fns) != 1 {
		t.Fatalf("%d functions stored; want only the good request's", len(st.fns))
	}
}

// A request with a fault against the API model and one against Lambda's
// own checks gets the model's (ValidationException), as AWS checks the
// model first.
func TestModelConstraintsFirst(t *testing.T) {
	s := newTestServer(t, newFakeStore(), &clock{time.Now()})
	if w := do(s, "POST", "/2015-03-31/functions", createBody("f")); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for _, body := range []string{
		`{"Role":"admin","Environment":{"Variables":{"AWS_REGION":"x"}}}`,
		`{"Timeout":0,"Environment":{"Variables":{"BIG":"` + strings.Repeat("x", 4100) + `"}}}`,
	} {
		w := do(s, "PUT", "/2015-03-31/functions/f/configuration", []byte(body))
		if w.Code != 400 || w.Header().Get("X-Amzn-ErrorType") != "ValidationException" {
			t.Errorf("%.60s: %d %s %s", body, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body)
		}
	}
}
