package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/auth"
	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// EventInvokeConfig is a function's (or version's or alias's) event invoke
// config as stored, in Lambda's field names.
type EventInvokeConfig struct {
	MaximumRetryAttempts     *int               `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int               `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        *DestinationConfig `json:"DestinationConfig,omitempty"`
	LastModified             time.Time          `json:"lastModified"`
}

// DestinationConfig names where outcomes go.
type DestinationConfig struct {
	OnSuccess *Destination `json:"OnSuccess,omitempty"`
	OnFailure *Destination `json:"OnFailure,omitempty"`
}

// Destination is one destination's ARN.
type Destination struct {
	Destination *string `json:"Destination,omitempty"`
}

// configKey is the bucket key of a function's qualifier: $LATEST (or no
// qualifier) is "=LATEST", which no alias or version can be named.
func configKey(account, name, qualifier string) string {
	if qualifier == "" || qualifier == lambdaapi.VersionLatest {
		qualifier = "=LATEST"
	}
	return account + "." + name + "." + qualifier
}

func (q *Queue) getConfig(ctx context.Context, account, name, qualifier string) (EventInvokeConfig, error) {
	var c EventInvokeConfig
	e, err := q.kv.Get(ctx, configKey(account, name, qualifier))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c, store.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return c, fmt.Errorf("async: decoding config: %w", err)
	}
	return c, nil
}

// DeleteConfigs removes every event invoke config of a function (for a
// function that was deleted).
func (q *Queue) DeleteConfigs(ctx context.Context, account, name string) error {
	// Whatever the bucket still lists: on the other Embers of a cluster
	// the first one's removal leaves none.
	defer q.configsChanged(account + "." + name + ".")
	keys, err := q.configKeys(ctx, account, name)
	if err != nil {
		return err
	}
	for _, k := range keys {
		err := q.kv.Purge(ctx, k)
		q.configChanged(k)
		if err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) configKeys(ctx context.Context, account, name string) ([]string, error) {
	l, err := q.kv.ListKeysFiltered(ctx, account+"."+name+".*")
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	_ = l.Stop() // the lister stops its watcher itself once it listed all
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Strings(keys)
	return keys, nil
}

// Authenticator verifies a request's signature and names its caller.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request, body []byte, service string) (auth.Principal, error)
}

// Functions looks functions, versions and aliases up (the store).
type Functions interface {
	GetFunction(ctx context.Context, account, name string) (store.Revision, error)
	GetVersion(ctx context.Context, account, name, version string) (store.Function, error)
	GetAlias(ctx context.Context, account, function, alias string) (store.AliasRevision, error)
}

// APIConfig configures the event-invoke-config API.
type APIConfig struct {
	Queue     *Queue
	Auth      Authenticator
	Functions Functions
	Region    string // default us-east-1
	Logger    *slog.Logger
}

// API serves PutFunctionEventInvokeConfig, UpdateFunctionEventInvokeConfig,
// GetFunctionEventInvokeConfig, DeleteFunctionEventInvokeConfig and
// ListFunctionEventInvokeConfigs at Lambda's paths, and Ember's queue API
// under /ember/v1/queues (queues_api.go): Patterns.
type API struct {
	cfg APIConfig
	log *slog.Logger
	mux *http.ServeMux
}

// Patterns are the ServeMux patterns the API serves.
var Patterns = append([]string{
	"PUT " + configPath, "POST " + configPath, "GET " + configPath, "DELETE " + configPath,
	"GET " + configPath + "/list",
}, queuePatterns...)

const configPath = "/2019-09-25/functions/{fn}/event-invoke-config"

// NewAPI makes the API handler.
func NewAPI(cfg APIConfig) *API {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "async-api"), mux: http.NewServeMux()}
	a.route("PUT "+configPath, a.put)
	a.route("POST "+configPath, a.update)
	a.route("GET "+configPath, a.get)
	a.route("DELETE "+configPath, a.delete)
	a.route("GET "+configPath+"/list", a.list)
	a.routeQueues()
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, lambdaapi.Errorf(lambdaapi.UnknownOperation, "Unknown operation %s %s", r.Method, r.URL.Path))
	})
	return a
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", lambdaapi.NewRequestID())
	a.mux.ServeHTTP(w, r)
}

type request struct {
	*http.Request
	principal auth.Principal
	body      []byte
}

const maxBody = 64 << 10

func (a *API) route(pattern string, h func(w http.ResponseWriter, r *request) error) {
	a.routeService(pattern, "lambda", h)
}

// routeService registers h behind body bounding and SigV4 for service.
func (a *API) routeService(pattern, service string, h func(w http.ResponseWriter, r *request) error) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			a.writeError(w, r, lambdaapi.Errorf(lambdaapi.RequestTooLarge, "Request must be smaller than %d bytes for the operation", maxBody))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = lambdaapi.Errorf(lambdaapi.RequestTooLarge, "Request must be smaller than %d bytes for the operation", maxBody)
			} else {
				err = lambdaapi.Errorf(lambdaapi.InvalidRequestContent, "Could not read request body: %v", err)
			}
			a.writeError(w, r, err)
			return
		}
		p, err := a.cfg.Auth.Verify(r.Context(), r, body, service)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := h(w, &request{Request: r, principal: p, body: body}); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// target resolves {fn} and ?Qualifier= to an existing function, version
// or alias of the caller's account.
func (a *API) target(r *request) (name, qualifier string, err error) {
	ref, err := lambdaapi.ParseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return "", "", err
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if err := lambdaapi.CheckQualifier(q); err != nil {
			return "", "", err
		}
		if ref.Qualifier != "" && ref.Qualifier != q {
			return "", "", lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
				"The derived qualifier from the function name does not match the specified qualifier.")
		}
		ref.Qualifier = q
	}
	account := r.principal.AccountID
	notFound := lambdaapi.Errorf(lambdaapi.ResourceNotFound, "Function not found: %s",
		lambdaapi.QualifiedARN(a.cfg.Region, account, ref.Name, ref.Qualifier))
	if (ref.Account != "" && ref.Account != account) || (ref.Region != "" && ref.Region != a.cfg.Region) {
		return "", "", notFound
	}
	ctx := r.Context()
	_, err = a.cfg.Functions.GetFunction(ctx, account, ref.Name)
	switch q := ref.Qualifier; {
	case err != nil:
	case q == "" || q == lambdaapi.VersionLatest:
	case lambdaapi.IsVersionNumber(q):
		_, err = a.cfg.Functions.GetVersion(ctx, account, ref.Name, q)
	default:
		_, err = a.cfg.Functions.GetAlias(ctx, account, ref.Name, q)
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", "", notFound
	}
	if err != nil {
		return "", "", err
	}
	return ref.Name, ref.Qualifier, nil
}

// input is the body of Put and Update.
type input struct {
	MaximumRetryAttempts     *int               `json:"MaximumRetryAttempts"`
	MaximumEventAgeInSeconds *int               `json:"MaximumEventAgeInSeconds"`
	DestinationConfig        *DestinationConfig `json:"DestinationConfig"`
}

func (a *API) decode(r *request) (input, error) {
	ctx := r.Context()
	var in input
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json") ||
			strings.HasPrefix(mt, "application/x-amz-json")) {
			return in, lambdaapi.Errorf(lambdaapi.UnsupportedMediaType,
				"The content type %q is not supported; send application/json", ct)
		}
	}
	if len(r.body) == 0 {
		return in, nil
	}
	if err := json.Unmarshal(r.body, &in); err != nil {
		return in, lambdaapi.Errorf(lambdaapi.InvalidRequestContent,
			"Could not parse request body into json: Could not parse payload into json: %v", err)
	}
	if n := in.MaximumRetryAttempts; n != nil && (*n < 0 || *n > 2) {
		return in, lambdaapi.Validationf(
			"Value '%d' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value %s", *n, lambdaapi.Bound(*n, 0, 2))
	}
	if n := in.MaximumEventAgeInSeconds; n != nil && (*n < minEventAge || *n > DefaultMaxEventAge) {
		return in, lambdaapi.Validationf(
			"Value '%d' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value %s", *n, lambdaapi.Bound(*n, minEventAge, DefaultMaxEventAge))
	}
	if d := in.DestinationConfig; d != nil {
		for _, x := range []struct {
			what string
			d    *Destination
		}{{"OnSuccess", d.OnSuccess}, {"OnFailure", d.OnFailure}} {
			if err := a.checkDestination(ctx, r.principal.AccountID, x.what, x.d); err != nil {
				return in, err
			}
		}
	}
	return in, nil
}

// checkDestination accepts a function or an existing Ember queue of the
// caller's account (by ARN). Topics, buses and buckets are not built.
func (a *API) checkDestination(ctx context.Context, account, what string, d *Destination) error {
	if d == nil || d.Destination == nil || *d.Destination == "" {
		return nil
	}
	arn := *d.Destination
	if len(arn) > 350 {
		return lambdaapi.Validationf(
			"Value at 'destinationConfig.%s.destination' failed to satisfy constraint: Member must have length less than or equal to 350", strings.ToLower(what[:1])+what[1:])
	}
	if !strings.HasPrefix(arn, "arn:") {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "The destination ARN %s is invalid.", arn)
	}
	if strings.HasPrefix(arn, "arn:"+lambdaapi.Partition+":sqs:") {
		return a.cfg.Queue.CheckQueueTarget(ctx, account, arn)
	}
	if !strings.HasPrefix(arn, "arn:"+lambdaapi.Partition+":lambda:") {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The destination ARN %s is not supported: Ember's destinations are Lambda functions and Ember queues (arn:aws:sqs:...) of the same account", arn)
	}
	ref, err := lambdaapi.ParseFunctionRef(arn)
	if err != nil {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "The destination ARN %s is invalid.", arn)
	}
	if ref.Account != account || ref.Region != a.cfg.Region {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue,
			"The destination ARN %s is not supported: Ember's destinations are Lambda functions of the same account and region", arn)
	}
	return nil
}

// output is a config as the API answers it.
type output struct {
	LastModified             float64            `json:"LastModified"`
	FunctionArn              string             `json:"FunctionArn"`
	MaximumRetryAttempts     *int               `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int               `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        *DestinationConfig `json:"DestinationConfig,omitempty"`
}

func (a *API) output(account, name, qualifier string, c EventInvokeConfig) output {
	if qualifier == "" {
		qualifier = lambdaapi.VersionLatest
	}
	dc := c.DestinationConfig
	if dc == nil {
		dc = &DestinationConfig{}
	}
	if dc.OnSuccess == nil {
		dc.OnSuccess = &Destination{}
	}
	if dc.OnFailure == nil {
		dc.OnFailure = &Destination{}
	}
	return output{
		LastModified:             float64(c.LastModified.UnixMilli()) / 1000,
		FunctionArn:              lambdaapi.QualifiedARN(a.cfg.Region, account, name, qualifier),
		MaximumRetryAttempts:     c.MaximumRetryAttempts,
		MaximumEventAgeInSeconds: c.MaximumEventAgeInSeconds,
		DestinationConfig:        dc,
	}
}

func (a *API) put(w http.ResponseWriter, r *request) error { return a.write(w, r, false) }

func (a *API) update(w http.ResponseWriter, r *request) error { return a.write(w, r, true) }

// write stores a config: Put replaces it, Update changes only the fields
// given (a destination given as {} or without an ARN is removed).
func (a *API) write(w http.ResponseWriter, r *request, merge bool) error {
	name, qualifier, err := a.target(r)
	if err != nil {
		return err
	}
	in, err := a.decode(r)
	if err != nil {
		return err
	}
	account := r.principal.AccountID
	key := configKey(account, name, qualifier)
	kv := a.cfg.Queue.kv
	ctx := r.Context()
	for range 10 {
		var c EventInvokeConfig
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if merge {
				return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "The function %s doesn't have an EventInvokeConfig",
					lambdaapi.QualifiedARN(a.cfg.Region, account, name, orLatest(qualifier)))
			}
		case err != nil:
			return err
		default:
			rev = e.Revision()
			if merge {
				if err := json.Unmarshal(e.Value(), &c); err != nil {
					return err
				}
			}
		}
		if !merge || in.MaximumRetryAttempts != nil {
			c.MaximumRetryAttempts = in.MaximumRetryAttempts
		}
		if !merge || in.MaximumEventAgeInSeconds != nil {
			c.MaximumEventAgeInSeconds = in.MaximumEventAgeInSeconds
		}
		if d := in.DestinationConfig; !merge || d != nil {
			if c.DestinationConfig == nil || !merge {
				c.DestinationConfig = &DestinationConfig{}
			}
			if d != nil && (!merge || d.OnSuccess != nil) {
				c.DestinationConfig.OnSuccess = clean(d.OnSuccess)
			}
			if d != nil && (!merge || d.OnFailure != nil) {
				c.DestinationConfig.OnFailure = clean(d.OnFailure)
			}
		}
		c.LastModified = time.Now().UTC()
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		a.cfg.Queue.configChanged(key) // also when the outcome is unknown
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			continue // changed concurrently: read again
		}
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, a.output(account, name, qualifier, c))
	}
	return lambdaapi.Errorf(lambdaapi.ResourceConflict, "The EventInvokeConfig is being changed concurrently; try again")
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func clean(d *Destination) *Destination {
	if d == nil || d.Destination == nil || *d.Destination == "" {
		return nil
	}
	return d
}

func orLatest(q string) string {
	if q == "" {
		return lambdaapi.VersionLatest
	}
	return q
}

func (a *API) get(w http.ResponseWriter, r *request) error {
	name, qualifier, err := a.target(r)
	if err != nil {
		return err
	}
	account := r.principal.AccountID
	c, err := a.cfg.Queue.getConfig(r.Context(), account, name, qualifier)
	if errors.Is(err, store.ErrNotFound) {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "The function %s doesn't have an EventInvokeConfig",
			lambdaapi.QualifiedARN(a.cfg.Region, account, name, orLatest(qualifier)))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.output(account, name, qualifier, c))
}

func (a *API) delete(w http.ResponseWriter, r *request) error {
	name, qualifier, err := a.target(r)
	if err != nil {
		return err
	}
	account := r.principal.AccountID
	key := configKey(account, name, qualifier)
	if _, err := a.cfg.Queue.kv.Get(r.Context(), key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return lambdaapi.Errorf(lambdaapi.ResourceNotFound, "The function %s doesn't have an EventInvokeConfig",
			lambdaapi.QualifiedARN(a.cfg.Region, account, name, orLatest(qualifier)))
	} else if err != nil {
		return err
	}
	err = a.cfg.Queue.kv.Purge(r.Context(), key)
	a.cfg.Queue.configChanged(key)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// list answers every config of a function (its qualifiers), in pages of
// MaxItems (1-50, default 50) after the opaque Marker (a bucket key).
func (a *API) list(w http.ResponseWriter, r *request) error {
	ref, err := lambdaapi.ParseFunctionRef(r.PathValue("fn"))
	if err != nil {
		return err
	}
	if ref.Qualifier != "" {
		return lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "ListFunctionEventInvokeConfigs takes an unqualified function name")
	}
	query := r.URL.Query()
	r.URL.RawQuery = "" // no Qualifier here
	name, _, err := a.target(r)
	if err != nil {
		return err
	}
	max := 50
	if v := query.Get("MaxItems"); v != "" {
		n, err := lambdaapi.ParseMaxItems(v, 50)
		if err != nil {
			return err
		}
		max = n
	}
	marker := query.Get("Marker")
	account := r.principal.AccountID
	keys, err := a.cfg.Queue.configKeys(r.Context(), account, name)
	if err != nil {
		return err
	}
	out := struct {
		FunctionEventInvokeConfigs []output `json:"FunctionEventInvokeConfigs"`
		NextMarker                 *string  `json:"NextMarker,omitempty"`
	}{FunctionEventInvokeConfigs: []output{}}
	prefix := account + "." + name + "."
	for _, k := range keys {
		if marker != "" && k <= marker {
			continue
		}
		if len(out.FunctionEventInvokeConfigs) == max {
			last := prefix + lastQualifierKey(out.FunctionEventInvokeConfigs)
			out.NextMarker = &last
			break
		}
		qualifier := strings.TrimPrefix(k, prefix)
		c, err := a.cfg.Queue.getConfig(r.Context(), account, name, qualifier)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if qualifier == "=LATEST" {
			qualifier = lambdaapi.VersionLatest
		}
		out.FunctionEventInvokeConfigs = append(out.FunctionEventInvokeConfigs, a.output(account, name, qualifier, c))
	}
	return writeJSON(w, http.StatusOK, out)
}

// lastQualifierKey is the key part of the last listed config's qualifier.
func lastQualifierKey(list []output) string {
	arn := list[len(list)-1].FunctionArn
	q := arn[strings.LastIndex(arn, ":")+1:]
	if q == lambdaapi.VersionLatest {
		return "=LATEST"
	}
	return q
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

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	le := lambdaapi.AsError(err)
	if le.Type == lambdaapi.Service {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path,
			"request_id", w.Header().Get("X-Amzn-RequestId"), "err", err)
	}
	w.Header().Set("X-Amzn-ErrorType", le.Type)
	_ = writeJSON(w, le.Status(), le)
}

// FunctionWatcher reports changes and deletes of functions, versions and
// aliases (the store).
type FunctionWatcher interface {
	WatchFunctions(ctx context.Context, initial bool, fn func(account, name string, f *store.Function)) error
	WatchVersions(ctx context.Context, fn func(account, name, version string, f *store.Function)) error
	WatchAliases(ctx context.Context, fn func(account, function, alias string, a *store.Alias)) error
}

// ForgetDeleted removes the event invoke configs of every function,
// version and alias deleted while it runs (until ctx ends), so a new one
// of the same name starts without them; if w also looks functions up
// (Functions), it first removes the configs of those deleted while Ember
// was not running. Queued events of a deleted function are dropped when
// they come up (the Front End no longer finds it).
func (q *Queue) ForgetDeleted(ctx context.Context, w FunctionWatcher) error {
	forget := func(what, key string) {
		err := q.kv.Purge(ctx, key)
		q.configChanged(key)
		if err != nil && ctx.Err() == nil {
			q.log.Warn("removing the event invoke config of a deleted "+what, "key", key, "err", err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		errs[0] = w.WatchFunctions(ctx, false, func(account, name string, f *store.Function) {
			if f != nil {
				return
			}
			if err := q.DeleteConfigs(ctx, account, name); err != nil && ctx.Err() == nil {
				q.log.Warn("removing the event invoke configs of a deleted function", "function", account+"."+name, "err", err)
			}
		})
	}()
	go func() {
		defer wg.Done()
		errs[1] = w.WatchVersions(ctx, func(account, name, version string, f *store.Function) {
			if f == nil {
				forget("version", configKey(account, name, version))
			}
		})
	}()
	go func() {
		defer wg.Done()
		errs[2] = w.WatchAliases(ctx, func(account, function, alias string, a *store.Alias) {
			if a == nil {
				forget("alias", configKey(account, function, alias))
			}
		})
	}()
	if fns, ok := w.(Functions); ok {
		if err := q.sweepConfigs(ctx, fns); err != nil && ctx.Err() == nil {
			q.log.Warn("removing the event invoke configs of deleted functions", "err", err)
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// sweepConfigs removes every config whose function, version or alias does
// not exist.
func (q *Queue) sweepConfigs(ctx context.Context, fns Functions) error {
	l, err := q.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	_ = l.Stop()
	for _, k := range keys {
		account, rest, ok1 := strings.Cut(k, ".")
		name, qualifier, ok2 := strings.Cut(rest, ".")
		if !ok1 || !ok2 {
			continue
		}
		e, err := q.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = fns.GetFunction(ctx, account, name)
		switch {
		case err != nil:
		case qualifier == "=LATEST":
		case lambdaapi.IsVersionNumber(qualifier):
			_, err = fns.GetVersion(ctx, account, name, qualifier)
		default:
			_, err = fns.GetAlias(ctx, account, name, qualifier)
		}
		if errors.Is(err, store.ErrNotFound) {
			q.log.Info("removing the event invoke config of a deleted function, version or alias", "key", k)
			// Only the config seen: one written since is for a new
			// function of that name.
			err := q.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
			q.configChanged(k)
			if err != nil && !isWrongSequence(err) {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return ctx.Err()
}
