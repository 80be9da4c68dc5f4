package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Layers: bucket ember-layers holds one counter per layer name
// (ACCOUNT.NAME: the last version number published, so numbers are never
// reused, even after every version was deleted) and bucket
// ember-layer-versions the versions themselves (ACCOUNT.NAME.VERSION).
// A layer's content is a package in the code object store, named like
// function code (ACCOUNT/SHA256HEX) and shared with any package of the
// account that has the same bytes. Layer names hold no dots.

// LayerVersion is one published, immutable version of a layer.
type LayerVersion struct {
	AccountID               string    `json:"account"`
	Name                    string    `json:"name"`
	Version                 int       `json:"version"`
	Description             string    `json:"description,omitempty"`
	LicenseInfo             string    `json:"licenseInfo,omitempty"`
	CompatibleRuntimes      []string  `json:"compatibleRuntimes,omitempty"`
	CompatibleArchitectures []string  `json:"compatibleArchitectures,omitempty"`
	CodeSHA256              string    `json:"codeSha256"`
	CodeSize                int64     `json:"codeSize"`
	UnzippedSize            int64     `json:"unzippedSize"`
	CreatedDate             time.Time `json:"createdDate"`
}

// FunctionLayer is a layer version as a function uses it: enough to run
// the function (and to size it) even after the version is deleted.
type FunctionLayer struct {
	ARN          string `json:"arn"` // the layer version's ARN
	CodeSHA256   string `json:"codeSha256"`
	CodeSize     int64  `json:"codeSize"`
	UnzippedSize int64  `json:"unzippedSize"`
}

// layerCounter is the record of a layer name in ember-layers.
type layerCounter struct {
	LastVersion int `json:"lastVersion"`
}

func layerKey(account, name string) string { return account + "." + name }

func layerVersionKey(account, name string, version int) string {
	return layerKey(account, name) + "." + strconv.Itoa(version)
}

// NextLayerVersion takes the next version number of a layer (1 for a new
// name). A number taken is never handed out again, even if no version is
// stored under it.
func (s *Store) NextLayerVersion(ctx context.Context, account, name string) (int, error) {
	r := record[layerCounter]{s.layers}
	key := layerKey(account, name)
	for attempt := 0; attempt < 10; attempt++ {
		c, rev, err := r.get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			if _, err := r.create(ctx, key, layerCounter{LastVersion: 1}); errors.Is(err, ErrExists) {
				continue
			} else if err != nil {
				return 0, err
			}
			return 1, nil
		}
		if err != nil {
			return 0, err
		}
		c.LastVersion++
		if _, err := r.update(ctx, key, c, rev); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return 0, err
		}
		return c.LastVersion, nil
	}
	return 0, fmt.Errorf("%w: layer %s", ErrConflict, key)
}

// CreateLayerVersion stores a layer version (its number taken with
// NextLayerVersion); ErrExists if that number is stored already.
func (s *Store) CreateLayerVersion(ctx context.Context, l LayerVersion) error {
	if l.Version < 1 {
		return errors.New("store: a layer version needs its number")
	}
	_, err := record[LayerVersion]{s.layerVersions}.create(ctx, layerVersionKey(l.AccountID, l.Name, l.Version), l)
	return err
}

// GetLayerVersion reads one layer version; ErrNotFound if there is none.
func (s *Store) GetLayerVersion(ctx context.Context, account, name string, version int) (LayerVersion, error) {
	l, _, err := record[LayerVersion]{s.layerVersions}.get(ctx, layerVersionKey(account, name, version))
	return l, err
}

// DeleteLayerVersion removes a layer version (no error if it is gone).
func (s *Store) DeleteLayerVersion(ctx context.Context, account, name string, version int) error {
	return record[LayerVersion]{s.layerVersions}.delete(ctx, layerVersionKey(account, name, version), 0)
}

// ListLayerVersions returns the versions of an account's layers, by layer
// name and then version number; name "" lists every layer of the account.
func (s *Store) ListLayerVersions(ctx context.Context, account, name string) ([]LayerVersion, error) {
	r := record[LayerVersion]{s.layerVersions}
	prefix := account + "."
	if name != "" {
		prefix = layerKey(account, name) + "."
	}
	keys, err := r.keys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]LayerVersion, 0, len(keys))
	for _, k := range keys {
		l, _, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].Name, out[j].Name); c != 0 {
			return c < 0
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// layersUse reports whether any layer version of the account has the
// package with that digest as its content.
func (s *Store) layersUse(ctx context.Context, account, sha256hex string) (bool, error) {
	ls, err := s.ListLayerVersions(ctx, account, "")
	if err != nil {
		return false, fmt.Errorf("store: code in use: %w", err)
	}
	for _, l := range ls {
		if l.CodeSHA256 == sha256hex {
			return true, nil
		}
	}
	return false, nil
}
