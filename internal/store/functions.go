package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Function is the stored state of a function's $LATEST (bucket
// ember-functions) or of one of its published versions (bucket
// ember-versions, an immutable snapshot of $LATEST with Version set).
type Function struct {
	AccountID        string            `json:"account"`
	Name             string            `json:"name"`
	Runtime          string            `json:"runtime"`
	Handler          string            `json:"handler,omitempty"`
	Role             string            `json:"role,omitempty"`
	Description      string            `json:"description,omitempty"`
	MemorySize       int               `json:"memorySize"`
	Timeout          int               `json:"timeout"`
	EphemeralStorage int               `json:"ephemeralStorage"`
	Environment      map[string]string `json:"environment,omitempty"`
	Architectures    []string          `json:"architectures,omitempty"`
	// Code is the package: CodeSHA256 is the hex digest that names the
	// object in the code store, CodeSize its zipped size.
	CodeSHA256   string `json:"codeSha256"`
	CodeSize     int64  `json:"codeSize"`
	UnzippedSize int64  `json:"unzippedSize"`
	// Layers are the function's layer versions, in order: extracted
	// under /opt one after the other, a later one's files replacing an
	// earlier one's.
	Layers       []FunctionLayer `json:"layers,omitempty"`
	RevisionID   string          `json:"revisionId"`
	LastModified time.Time       `json:"lastModified"`
	// DeadLetterTarget is DeadLetterConfig.TargetArn: the queue that
	// asynchronous events which failed for good go to ("" : none).
	DeadLetterTarget string `json:"deadLetterTarget,omitempty"`
	// ReservedConcurrency is the function's reserved concurrency (nil:
	// none). It is not part of the code or configuration: changing it
	// keeps RevisionID. Only $LATEST carries it; it applies to every
	// version.
	ReservedConcurrency *int `json:"reservedConcurrency,omitempty"`
	// Version is "" for $LATEST and the version number ("1", "2", ...)
	// for a published version.
	Version string `json:"version,omitempty"`
	// LastVersion ($LATEST only) is the number of the last version
	// published; numbers are never reused, even after a version is
	// deleted.
	LastVersion int `json:"lastVersion,omitempty"`
	// PublishedRevision ($LATEST only) is the RevisionID $LATEST had when
	// version LastVersion was published from it: while they are equal,
	// code and configuration are unchanged since that version.
	PublishedRevision string `json:"publishedRevision,omitempty"`
	// InitializationType is not stored: the Worker Manager sets it on the
	// copy it gives a worker to make a sandbox with, for
	// AWS_LAMBDA_INITIALIZATION_TYPE ("": on-demand).
	InitializationType string `json:"-"`
}

// InitProvisioned is the InitializationType of provisioned concurrency.
const InitProvisioned = "provisioned-concurrency"

// Key is the function's key in its bucket: ACCOUNT.NAME. It is the same
// for every version of a function.
func (f *Function) Key() string { return functionKey(f.AccountID, f.Name) }

// VersionName is the function's version as Lambda names it: "$LATEST" or
// the version number.
func (f *Function) VersionName() string {
	if f.Version == "" {
		return VersionLatest
	}
	return f.Version
}

// VersionKey names one version of one function: ACCOUNT.NAME:VERSION
// (VERSION is "$LATEST" or the number).
func (f *Function) VersionKey() string { return f.Key() + ":" + f.VersionName() }

// VersionLatest is the name of the unpublished version.
const VersionLatest = "$LATEST"

func functionKey(account, name string) string { return account + "." + name }

// Revision is a stored function with the KV revision it was read at, for
// compare-and-set updates.
type Revision struct {
	Function
	Rev uint64
}

// CreateFunction stores a new function; ErrExists if the name is taken.
func (s *Store) CreateFunction(ctx context.Context, f Function) (uint64, error) {
	return record[Function]{s.functions}.create(ctx, f.Key(), f)
}

// GetFunction reads one function; ErrNotFound if there is none.
func (s *Store) GetFunction(ctx context.Context, account, name string) (Revision, error) {
	f, rev, err := record[Function]{s.functions}.get(ctx, functionKey(account, name))
	return Revision{Function: f, Rev: rev}, err
}

// UpdateFunction writes f if it is still at rev; ErrConflict otherwise.
func (s *Store) UpdateFunction(ctx context.Context, f Function, rev uint64) (uint64, error) {
	return record[Function]{s.functions}.update(ctx, f.Key(), f, rev)
}

// DeleteFunction removes the function if it is still at rev (0: any).
func (s *Store) DeleteFunction(ctx context.Context, account, name string, rev uint64) error {
	return record[Function]{s.functions}.delete(ctx, functionKey(account, name), rev)
}

// ListFunctions returns up to max functions of an account whose names sort
// after `after`, by name, and whether more follow.
func (s *Store) ListFunctions(ctx context.Context, account, after string, max int) ([]Function, bool, error) {
	r := record[Function]{s.functions}
	prefix := account + "."
	keys, err := r.keys(ctx, prefix)
	if err != nil {
		return nil, false, err
	}
	var out []Function
	for _, k := range keys {
		if k[len(prefix):] <= after && after != "" {
			continue
		}
		if len(out) == max {
			return out, true, nil
		}
		f, _, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, f)
	}
	return out, false, nil
}

// CodeInUse reports whether any function or published version of the
// account still uses the package with that digest, as its code or as one
// of its layers, or whether a layer version of the account has it as its
// content.
func (s *Store) CodeInUse(ctx context.Context, account, sha256hex string) (bool, error) {
	for _, kv := range []jetstream.KeyValue{s.functions, s.versions} {
		r := record[Function]{kv}
		keys, err := r.keys(ctx, account+".")
		if err != nil {
			return false, err
		}
		for _, k := range keys {
			f, _, err := r.get(ctx, k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("store: code in use: %w", err)
			}
			if f.CodeSHA256 == sha256hex {
				return true, nil
			}
			for _, l := range f.Layers {
				if l.CodeSHA256 == sha256hex {
					return true, nil
				}
			}
		}
	}
	return s.layersUse(ctx, account, sha256hex)
}

// WatchFunctions calls fn with every function that changes (f) or is
// deleted (f nil) until ctx ends; with initial set it first calls fn with
// every existing function. It blocks; the caller owns its goroutine.
func (s *Store) WatchFunctions(ctx context.Context, initial bool, fn func(account, name string, f *Function)) error {
	var opts []jetstream.WatchOpt
	if !initial {
		opts = append(opts, jetstream.UpdatesOnly())
	}
	w, err := s.functions.WatchAll(ctx, opts...)
	if err != nil {
		return fmt.Errorf("store: watch functions: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			account, name, found := strings.Cut(e.Key(), ".")
			if !found {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				fn(account, name, nil)
				continue
			}
			var f Function
			if err := json.Unmarshal(e.Value(), &f); err != nil {
				continue
			}
			fn(account, name, &f)
		}
	}
}

// InitType is AWS_LAMBDA_INITIALIZATION_TYPE for a sandbox made from f:
// "on-demand" unless the Worker Manager set InitializationType.
func (f *Function) InitType() string {
	if f.InitializationType == "" {
		return "on-demand"
	}
	return f.InitializationType
}
