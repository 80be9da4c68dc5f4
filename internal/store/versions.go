package store

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
)

// Published versions live in bucket ember-versions under
// ACCOUNT.NAME.VERSION, aliases in ember-aliases under ACCOUNT.NAME.ALIAS.
// Function names, version numbers and alias names hold no dots, so a key
// splits unambiguously.

func versionKey(account, name, version string) string {
	return account + "." + name + "." + version
}

func splitKey3(key string) (account, name, last string, ok bool) {
	account, rest, ok1 := strings.Cut(key, ".")
	name, last, ok2 := strings.Cut(rest, ".")
	return account, name, last, ok1 && ok2 && !strings.Contains(last, ".")
}

// CreateVersion stores a published version (f.Version set); ErrExists if
// that number is taken.
func (s *Store) CreateVersion(ctx context.Context, f Function) (uint64, error) {
	if f.Version == "" {
		return 0, errors.New("store: a published version needs its number")
	}
	return record[Function]{s.versions}.create(ctx, versionKey(f.AccountID, f.Name, f.Version), f)
}

// GetVersion reads one published version; ErrNotFound if there is none.
func (s *Store) GetVersion(ctx context.Context, account, name, version string) (Function, error) {
	f, _, err := record[Function]{s.versions}.get(ctx, versionKey(account, name, version))
	return f, err
}

// DeleteVersion removes a published version (no error if it is gone).
func (s *Store) DeleteVersion(ctx context.Context, account, name, version string) error {
	return record[Function]{s.versions}.delete(ctx, versionKey(account, name, version), 0)
}

// ListVersions returns a function's published versions in number order.
func (s *Store) ListVersions(ctx context.Context, account, name string) ([]Function, error) {
	r := record[Function]{s.versions}
	keys, err := r.keys(ctx, account+"."+name+".")
	if err != nil {
		return nil, err
	}
	out := make([]Function, 0, len(keys))
	for _, k := range keys {
		f, _, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i].Version, out[j].Version) })
	return out, nil
}

func versionLess(a, b string) bool {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA != nil || errB != nil {
		return a < b
	}
	return x < y
}

// WatchVersions calls fn with every published version created (f) or
// deleted (f nil) after the watch starts, until ctx ends. It blocks; the
// caller owns its goroutine.
func (s *Store) WatchVersions(ctx context.Context, fn func(account, name, version string, f *Function)) error {
	return watch(ctx, s.versions, func(key string, value []byte) {
		account, name, version, ok := splitKey3(key)
		if !ok {
			return
		}
		if value == nil {
			fn(account, name, version, nil)
			return
		}
		var f Function
		if json.Unmarshal(value, &f) == nil {
			fn(account, name, version, &f)
		}
	})
}

// Alias is a named pointer to a version of a function, optionally routing
// a share of invocations to a second version.
type Alias struct {
	AccountID       string `json:"account"`
	Function        string `json:"function"`
	Name            string `json:"name"`
	FunctionVersion string `json:"functionVersion"` // "$LATEST" or a number
	Description     string `json:"description,omitempty"`
	// Weights is RoutingConfig.AdditionalVersionWeights: version -> the
	// share (0..1) of invocations that go to it instead.
	Weights    map[string]float64 `json:"weights,omitempty"`
	RevisionID string             `json:"revisionId"`
}

// References reports whether the alias routes any invocations to version.
func (a *Alias) References(version string) bool {
	if a.FunctionVersion == version {
		return true
	}
	_, ok := a.Weights[version]
	return ok
}

// AliasRevision is a stored alias with the KV revision it was read at.
type AliasRevision struct {
	Alias
	Rev uint64
}

// CreateAlias stores a new alias; ErrExists if the name is taken.
func (s *Store) CreateAlias(ctx context.Context, a Alias) (uint64, error) {
	return record[Alias]{s.aliases}.create(ctx, versionKey(a.AccountID, a.Function, a.Name), a)
}

// GetAlias reads one alias; ErrNotFound if there is none.
func (s *Store) GetAlias(ctx context.Context, account, function, alias string) (AliasRevision, error) {
	a, rev, err := record[Alias]{s.aliases}.get(ctx, versionKey(account, function, alias))
	return AliasRevision{Alias: a, Rev: rev}, err
}

// UpdateAlias writes a if it is still at rev; ErrConflict otherwise.
func (s *Store) UpdateAlias(ctx context.Context, a Alias, rev uint64) (uint64, error) {
	return record[Alias]{s.aliases}.update(ctx, versionKey(a.AccountID, a.Function, a.Name), a, rev)
}

// DeleteAlias removes an alias if it is still at rev (0: any).
func (s *Store) DeleteAlias(ctx context.Context, account, function, alias string, rev uint64) error {
	return record[Alias]{s.aliases}.delete(ctx, versionKey(account, function, alias), rev)
}

// ListAliases returns a function's aliases by name.
func (s *Store) ListAliases(ctx context.Context, account, function string) ([]Alias, error) {
	r := record[Alias]{s.aliases}
	keys, err := r.keys(ctx, account+"."+function+".")
	if err != nil {
		return nil, err
	}
	out := make([]Alias, 0, len(keys))
	for _, k := range keys {
		a, _, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WatchAliases calls fn with every alias that changes (a) or is deleted
// (a nil) after the watch starts, until ctx ends. It blocks; the caller
// owns its goroutine.
func (s *Store) WatchAliases(ctx context.Context, fn func(account, function, alias string, a *Alias)) error {
	return watch(ctx, s.aliases, func(key string, value []byte) {
		account, function, alias, ok := splitKey3(key)
		if !ok {
			return
		}
		if value == nil {
			fn(account, function, alias, nil)
			return
		}
		var a Alias
		if json.Unmarshal(value, &a) == nil {
			fn(account, function, alias, &a)
		}
	})
}
