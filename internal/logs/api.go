package logs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/lambdaapi"
)

// TargetPrefix starts the X-Amz-Target of every CloudWatch Logs request.
const TargetPrefix = "Logs_20140328."

// Limits of the API (CloudWatch's).
const (
	maxRequestBody   = 1 << 20
	maxResponseBytes = 1 << 20 // of events, counted as CloudWatch does
	maxEventsLimit   = 10000
	maxDescribeLimit = 50
)

// Error types of CloudWatch Logs; the SDKs raise the exception so named.
const (
	InvalidParameter   = "InvalidParameterException"
	ResourceNotFound   = "ResourceNotFoundException"
	ServiceUnavailable = "ServiceUnavailableException"
	UnknownOperation   = "UnknownOperationException"
	Serialization      = "SerializationException"
)

// Error is a CloudWatch Logs error; it marshals to the awsJson1.1 error
// body. Every client error is a 400, as the service answers them.
type Error struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
	status  int
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

func errorf(typ, format string, args ...any) *Error {
	st := http.StatusBadRequest
	if typ == ServiceUnavailable {
		st = http.StatusServiceUnavailable
	}
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...), status: st}
}

func groupNotFound() *Error {
	return errorf(ResourceNotFound, "The specified log group does not exist.")
}

// Authenticator verifies a request's SigV4 signature and names its caller
// (auth.Verifier).
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request, body []byte, service string) (auth.Principal, error)
}

// APIConfig configures the API. Store and Auth are required.
type APIConfig struct {
	Store *Store
	Auth  Authenticator
	// Region appears in ARNs (default us-east-1).
	Region string
	Logger *slog.Logger
}

// API serves CloudWatch Logs' JSON API (POST /, X-Amz-Target
// Logs_20140328.*, SigV4 service "logs") over the log store. Every caller
// sees only its own account's logs.
type API struct {
	cfg APIConfig
	log *slog.Logger
	ops map[string]func(ctx context.Context, account string, body []byte) (any, error)
}

// NewAPI makes the API handler.
func NewAPI(cfg APIConfig) *API {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "logsapi")}
	a.ops = map[string]func(context.Context, string, []byte) (any, error){
		"DescribeLogGroups":  a.describeLogGroups,
		"DescribeLogStreams": a.describeLogStreams,
		"GetLogEvents":       a.getLogEvents,
		"FilterLogEvents":    a.filterLogEvents,
	}
	return a
}

// IsLogsRequest says whether r is a CloudWatch Logs API request: POST /
// with an X-Amz-Target of Logs_20140328.*. The Lambda API shares the
// listen address; it never uses that header.
func IsLogsRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/" &&
		strings.HasPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
}

// ServeHTTP serves one API request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", lambdaapi.NewRequestID())
	out, err := a.serve(w, r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(b)
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) (any, error) {
	if !IsLogsRequest(r) {
		return nil, errorf(UnknownOperation, "Not a CloudWatch Logs request: %s %s", r.Method, r.URL.Path)
	}
	if r.ContentLength > maxRequestBody {
		return nil, errorf(InvalidParameter, "Request must be smaller than %d bytes", maxRequestBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(InvalidParameter, "Request must be smaller than %d bytes", maxRequestBody)
		}
		return nil, errorf(Serialization, "Could not read the request body: %v", err)
	}
	p, err := a.cfg.Auth.Verify(r.Context(), r, body, "logs")
	if err != nil {
		return nil, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/x-amz-json")) {
			return nil, errorf(Serialization, "The content type %q is not supported; send application/x-amz-json-1.1", ct)
		}
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	h, ok := a.ops[op]
	if !ok {
		return nil, errorf(UnknownOperation, "Ember does not implement the CloudWatch Logs operation %s", op)
	}
	return h(r.Context(), p.AccountID, body)
}

// writeError is the one place the API turns errors into HTTP.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var le *lambdaapi.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &le) && le.Type != lambdaapi.Service:
		// Authentication: the same exceptions as Lambda's, but an
		// awsJson service answers them with 400.
		e = &Error{Type: le.Type, Message: le.Message, status: http.StatusBadRequest}
		if le.Status() >= 500 {
			e.status = http.StatusInternalServerError
		}
	default:
		a.log.Error("request failed", "target", r.Header.Get("X-Amz-Target"),
			"request_id", w.Header().Get("X-Amzn-RequestId"), "err", err)
		e = errorf(ServiceUnavailable, "The service cannot answer now; retry")
	}
	b, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.Type)
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(Serialization, "Could not parse the request body: %v", err)
	}
	return nil
}

// limit checks an optional limit against [1, max] and defaults it.
func limit(v *int, max, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > max {
		return 0, errorf(InvalidParameter,
			"1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *v, max)
	}
	return *v, nil
}

// groupName resolves logGroupName or logGroupIdentifier (a name or an
// ARN) to a group of the caller's account.
func (a *API) groupName(account string, name, ident *string) (string, error) {
	switch {
	case name != nil && ident != nil:
		return "", errorf(InvalidParameter, "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case name != nil:
		if !validName(*name) {
			return "", errorf(InvalidParameter, "1 validation error detected: Value at 'logGroupName' failed to satisfy constraint: Member must have length between 1 and 512")
		}
		return *name, nil
	case ident != nil:
		id := *ident
		if !strings.HasPrefix(id, "arn:") {
			if !validName(id) {
				return "", errorf(InvalidParameter, "Invalid logGroupIdentifier")
			}
			return id, nil
		}
		// arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]
		parts := strings.SplitN(id, ":", 7)
		if len(parts) != 7 || parts[2] != "logs" || parts[5] != "log-group" || parts[6] == "" {
			return "", errorf(InvalidParameter, "Invalid logGroupIdentifier: %s", id)
		}
		if parts[4] != account || parts[3] != a.cfg.Region {
			return "", groupNotFound()
		}
		return strings.TrimSuffix(parts[6], ":*"), nil
	}
	return "", errorf(InvalidParameter, "Either logGroupName or logGroupIdentifier must be specified.")
}

func (a *API) groupARN(account, group string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", a.cfg.Region, account, group)
}

// pageToken is the opaque nextToken of the Describe operations.
type pageToken struct {
	Name string `json:"n"`
	Time int64  `json:"t,omitempty"`
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parsePageToken(s *string) (*pageToken, error) {
	if s == nil {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	var t pageToken
	if err != nil || json.Unmarshal(b, &t) != nil {
		return nil, errorf(InvalidParameter, "The specified nextToken is invalid.")
	}
	return &t, nil
}
