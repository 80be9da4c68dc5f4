// Package controlapi serves Lambda's control plane: creating, reading,
// updating, listing and deleting functions, their code, versions and
// aliases, and layers, at Lambda's REST paths and JSON shapes, plus Ember's
// own account administration.
package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// Store is the state the control API reads and writes.
type Store interface {
	CreateFunction(ctx context.Context, f store.Function) (uint64, error)
	GetFunction(ctx context.Context, account, name string) (store.Revision, error)
	UpdateFunction(ctx context.Context, f store.Function, rev uint64) (uint64, error)
	DeleteFunction(ctx context.Context, account, name string, rev uint64) error
	ListFunctions(ctx context.Context, account, after string, max int) ([]store.Function, bool, error)
	CreateVersion(ctx context.Context, f store.Function) (uint64, error)
	GetVersion(ctx context.Context, account, name, version string) (store.Function, error)
	DeleteVersion(ctx context.Context, account, name, version string) error
	ListVersions(ctx context.Context, account, name string) ([]store.Function, error)
	CreateAlias(ctx context.Context, a store.Alias) (uint64, error)
	GetAlias(ctx context.Context, account, function, alias string) (store.AliasRevision, error)
	UpdateAlias(ctx context.Context, a store.Alias, rev uint64) (uint64, error)
	DeleteAlias(ctx context.Context, account, function, alias string, rev uint64) error
	ListAliases(ctx context.Context, account, function string) ([]store.Alias, error)
	NextLayerVersion(ctx context.Context, account, name string) (int, error)
	CreateLayerVersion(ctx context.Context, l store.LayerVersion) error
	GetLayerVersion(ctx context.Context, account, name string, version int) (store.LayerVersion, error)
	DeleteLayerVersion(ctx context.Context, account, name string, version int) error
	ListLayerVersions(ctx context.Context, account, name string) ([]store.LayerVersion, error)
	CodeInUse(ctx context.Context, account, sha256hex string) (bool, error)
	PutCode(ctx context.Context, account, sha256hex string, zip []byte) error
	GetCode(ctx context.Context, account, sha256hex string) (io.ReadCloser, int64, error)
	DeleteCode(ctx context.Context, account, sha256hex string) error
	Account(ctx context.Context, id string) (store.Account, error)
	SetAccountLimit(ctx context.Context, id string, limit int) (store.Account, error)
}

// Authenticator verifies a request's signature and names its caller.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request, body []byte, service string) (auth.Principal, error)
}

// PreAuthenticator is an Authenticator that can check a request's
// signature header, date and access key before its body is read
// (auth.Verifier.Precheck). When the Authenticator is one, no body is read
// for a caller that those checks refuse.
type PreAuthenticator interface {
	Precheck(ctx context.Context, r *http.Request, service string) error
}

// URLSigner signs and checks the time-limited code download URLs.
type URLSigner interface {
	Sign(msg []byte) []byte
	VerifySignature(msg, mac []byte) bool
}

// AccountCreator makes accounts (the admin API).
type AccountCreator interface {
	CreateAccount(ctx context.Context, name string, admin bool) (auth.NewAccount, error)
}

// Config configures the control API. Store, Auth and Signer are required.
type Config struct {
	Store    Store
	Auth     Authenticator
	Signer   URLSigner
	Accounts AccountCreator // nil: no account administration
	// Region appears in ARNs (default us-east-1).
	Region string
	// RuntimeCatalog is every runtime Ember knows, served here or not;
	// without one, every runtime not in Runtimes is refused with Lambda's
	// enum message.
	RuntimeCatalog RuntimeCatalog
	// Runtimes accepted by CreateFunction/UpdateFunctionConfiguration,
	// each mapped to whether its package needs a bootstrap at the root.
	// Default: provided.al2023 and provided.al2.
	Runtimes map[string]bool
	// RatePerSecond and Burst limit control-plane requests per account
	// (defaults 50 and 100); beyond them callers get 429.
	RatePerSecond float64
	Burst         int
	// AccountConcurrency is the concurrency limit of accounts without
	// their own (default 1,000); MinUnreserved what reservations must
	// leave (default 100).
	AccountConcurrency int
	MinUnreserved      int
	// OnReservation, if set, is told at once of a changed reservation (the
	// in-process Counting Service; others learn it from the store).
	OnReservation func(account, function string, n *int)
	// Provisioned stores provisioned concurrency configurations (default:
	// Store, if it does); Provisioner, if set, is the Worker Manager that
	// keeps their sandboxes.
	Provisioned ProvisionedStore
	Provisioner Provisioner
	// CodeURLTTL is how long a Code.Location URL works (default 10 min).
	CodeURLTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Server is the control API's HTTP handler.
type Server struct {
	cfg   Config
	mux   *http.ServeMux
	log   *slog.Logger
	arch  string
	codeM [64]sync.Mutex // serialises code writes and deletes per account

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	deadLetters atomic.Pointer[deadLetterTargets] // SetDeadLetterTargets
}

// New makes the control API.
func New(cfg Config) *Server {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Runtimes == nil {
		cfg.Runtimes = map[string]bool{"provided.al2023": true, "provided.al2": true}
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond = 50
	}
	if cfg.Burst == 0 {
		cfg.Burst = 100
	}
	if cfg.AccountConcurrency == 0 {
		cfg.AccountConcurrency = 1000
	}
	if cfg.MinUnreserved == 0 {
		cfg.MinUnreserved = 100
	}
	if cfg.Provisioned == nil {
		cfg.Provisioned, _ = cfg.Store.(ProvisionedStore)
	}
	if cfg.CodeURLTTL == 0 {
		cfg.CodeURLTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger.With("component", "controlapi"),
		arch: hostArch(), limiters: map[string]*rate.Limiter{}}
	fn := "/2015-03-31/functions/{fn}"
	s.route("POST /2015-03-31/functions", lambdaapi.MaxCreateBody, s.createFunction)
	s.route("POST /2015-03-31/functions/{$}", lambdaapi.MaxCreateBody, s.createFunction)
	s.route("GET /2015-03-31/functions", 0, s.listFunctions)
	s.route("GET /2015-03-31/functions/{$}", 0, s.listFunctions)
	s.route("GET "+fn, 0, s.getFunction)
	s.route("GET "+fn+"/{$}", 0, s.getFunction)
	s.route("GET "+fn+"/configuration", 0, s.getFunctionConfiguration)
	s.route("PUT "+fn+"/code", lambdaapi.MaxCreateBody, s.updateFunctionCode)
	s.route("PUT "+fn+"/configuration", lambdaapi.MaxControlBody, s.updateFunctionConfiguration)
	s.route("DELETE "+fn, 0, s.deleteFunction)
	s.route("DELETE "+fn+"/{$}", 0, s.deleteFunction)
	s.route("POST "+fn+"/versions", lambdaapi.MaxControlBody, s.publishVersion)
	s.route("GET "+fn+"/versions", 0, s.listVersions)
	s.route("POST "+fn+"/aliases", lambdaapi.MaxControlBody, s.createAlias)
	s.route("GET "+fn+"/aliases", 0, s.listAliases)
	s.route("GET "+fn+"/aliases/{alias}", 0, s.getAlias)
	s.route("PUT "+fn+"/aliases/{alias}", lambdaapi.MaxControlBody, s.updateAlias)
	s.route("DELETE "+fn+"/aliases/{alias}", 0, s.deleteAlias)
	s.route("PUT /2017-10-31/functions/{fn}/concurrency", lambdaapi.MaxControlBody, s.putFunctionConcurrency)
	s.route("GET /2019-09-30/functions/{fn}/concurrency", 0, s.getFunctionConcurrency)
	s.route("DELETE /2017-10-31/functions/{fn}/concurrency", 0, s.deleteFunctionConcurrency)
	s.route("PUT /2019-09-30/functions/{fn}/provisioned-concurrency", lambdaapi.MaxControlBody, s.putProvisionedConcurrency)
	s.route("GET /2019-09-30/functions/{fn}/provisioned-concurrency", 0, s.getProvisionedConcurrency) // also List
	s.route("DELETE /2019-09-30/functions/{fn}/provisioned-concurrency", 0, s.deleteProvisionedConcurrency)
	layer := "/2018-10-31/layers/{layer}/versions"
	s.route("GET /2018-10-31/layers", 0, s.listLayers) // also GetLayerVersionByArn
	s.route("GET /2018-10-31/layers/{$}", 0, s.listLayers)
	s.route("POST "+layer, lambdaapi.MaxCreateBody, s.publishLayerVersion)
	s.route("GET "+layer, 0, s.listLayerVersions)
	s.route("GET "+layer+"/{version}", 0, s.getLayerVersion)
	s.route("DELETE "+layer+"/{version}", 0, s.deleteLayerVersion)
	s.route("POST "+layer+"/{version}/policy", lambdaapi.MaxControlBody, s.layerPermissions)
	s.route("GET "+layer+"/{version}/policy", 0, s.layerPermissions)
	s.route("DELETE "+layer+"/{version}/policy/{sid}", 0, s.layerPermissions)
	s.route("GET /2016-08-19/account-settings", 0, s.getAccountSettings)
	s.route("GET /2016-08-19/account-settings/{$}", 0, s.getAccountSettings)
	s.mux.HandleFunc("GET "+codePath+"{account}/{sha}", s.downloadCode) // authenticated by its URL signature
	if cfg.Accounts != nil {
		s.routeService("POST /ember/v1/accounts", lambdaapi.MaxControlBody, "ember", s.createAccount)
		s.routeService("PUT /ember/v1/accounts/{id}/concurrency-limit", lambdaapi.MaxControlBody, "ember", s.setAccountLimit)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, lambdaapi.Errorf(lambdaapi.UnknownOperation, "Unknown operation %s %s", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP serves the control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", lambdaapi.NewRequestID())
	s.mux.ServeHTTP(w, r)
}

// request is what an authenticated handler gets.
type request struct {
	*http.Request
	principal auth.Principal
	body      []byte
}

type handler func(w http.ResponseWriter, r *request) error

func (s *Server) route(pattern string, maxBody int64, h handler) {
	s.routeService(pattern, maxBody, "lambda", h)
}

// routeService registers h behind body bounding, SigV4 for service, and
// the per-account rate limit. The body is read only once what can be
// checked without it has passed: a declared length within the bound, and
// (with a PreAuthenticator) the signature's form, date and access key; an
// unsigned or unknown caller cannot make Ember buffer a body. The
// signature itself covers the body's hash, so it is verified after.
func (s *Server) routeService(pattern string, maxBody int64, service string, h handler) {
	pre, _ := s.cfg.Auth.(PreAuthenticator)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := checkLength(r, maxBody); err != nil {
			s.writeError(w, r, err)
			return
		}
		if pre != nil && r.ContentLength != 0 { // no body (a GET): Verify alone
			if err := pre.Precheck(r.Context(), r, service); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		body, err := readBody(w, r, maxBody)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		p, err := s.cfg.Auth.Verify(r.Context(), r, body, service)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !s.allow(p.AccountID) {
			e := lambdaapi.Errorf(lambdaapi.TooManyRequests, "Rate exceeded")
			e.Reason = lambdaapi.ReasonCallerRateLimitExceeded
			e.RetryAfterSeconds = "1"
			w.Header().Set("Retry-After", "1")
			s.writeError(w, r, e)
			return
		}
		if err := h(w, &request{Request: r, principal: p, body: body}); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// bodyLimit is the bound of a route's body (0: none is expected, but a
// small one is tolerated).
func bodyLimit(max int64) int64 {
	if max == 0 {
		return 64 << 10
	}
	return max
}

// checkLength refuses a declared Content-Length over the route's bound,
// without reading anything.
func checkLength(r *http.Request, max int64) error {
	if max = bodyLimit(max); r.ContentLength > max {
		return lambdaapi.Errorf(lambdaapi.RequestTooLarge,
			"Request must be smaller than %d bytes for the operation", max)
	}
	return nil
}

// readBody reads at most the route's bound of the body.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if err := checkLength(r, max); err != nil {
		return nil, err
	}
	max = bodyLimit(max)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, lambdaapi.Errorf(lambdaapi.RequestTooLarge,
			"Request must be smaller than %d bytes for the operation", max)
	}
	if err != nil {
		return nil, lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not read request body: %v", err)
	}
	return body, nil
}

func (s *Server) allow(account string) bool {
	s.limMu.Lock()
	l, ok := s.limiters[account]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.RatePerSecond), s.cfg.Burst)
		s.limiters[account] = l
	}
	s.limMu.Unlock()
	return l.AllowN(s.cfg.Now(), 1)
}

// decode parses a JSON body into v, answering Lambda's errors for a wrong
// media type or malformed JSON.
func decode(r *request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json") ||
			strings.HasPrefix(mt, "application/x-amz-json")) {
			return lambdaapi.Errorf(lambdaapi.UnsupportedMediaType,
				"The content type %q is not supported; send application/json", ct)
		}
	}
	if len(r.body) == 0 {
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not parse request body into json: the body is empty")
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return lambdaapi.Errorf(lambdaapi.InvalidRequestContent,
				"Could not parse request body into json: Could not parse payload into json: field %s has the wrong type (expected %s)", ute.Field, ute.Type)
		}
		return lambdaapi.Errorf(lambdaapi.InvalidRequestContent,
			"Could not parse request body into json: Could not parse payload into json: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// writeError maps err to Lambda's error shape; this is the one place the
// control API turns errors into HTTP.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if errors.As(err, &se) {
		w.Header().Set("X-Amzn-ErrorType", se.le.Type)
		_ = writeJSON(w, se.status, se.le)
		return
	}
	le := lambdaapi.AsError(err)
	if le.Type == lambdaapi.Service {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", w.Header().Get("X-Amzn-RequestId"), "err", err)
	}
	w.Header().Set("X-Amzn-ErrorType", le.Type)
	_ = writeJSON(w, le.Status(), le)
}

// lockCode serialises code writes and deletes of one account on this node.
func (s *Server) lockCode(account string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	m := &s.codeM[h.Sum32()%uint32(len(s.codeM))]
	m.Lock()
	return m.Unlock
}

func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}
