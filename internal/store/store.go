// Package store is Ember's typed access to NATS JetStream: KV buckets for
// accounts, access keys, functions, their published versions and aliases,
// layers and their versions, and the object store for code packages (function
// code and layer contents). It holds no state of its own beyond the handles.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors; callers test with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrConflict means the record changed since it was read.
	ErrConflict = errors.New("store: changed concurrently")
)

// Bucket names. They are part of the on-disk format: do not rename.
const (
	bucketMeta      = "ember-meta"
	bucketAccounts  = "ember-accounts"
	bucketKeys      = "ember-access-keys"
	bucketFunctions = "ember-functions"
	bucketVersions  = "ember-versions"
	bucketAliases   = "ember-aliases"
	bucketLayers    = "ember-layers"
	bucketLayerVers = "ember-layer-versions"
	bucketProvConc  = "ember-provisioned"
	objectCode      = "ember-code"
)

// Config configures the store.
type Config struct {
	// Replicas for every bucket (default 1; 3 in a NATS cluster).
	Replicas int
}

// Store is the handle on Ember's durable state.
type Store struct {
	js        jetstream.JetStream
	meta      jetstream.KeyValue
	accounts  jetstream.KeyValue
	keys      jetstream.KeyValue
	functions jetstream.KeyValue
	versions  jetstream.KeyValue
	aliases   jetstream.KeyValue
	layers    jetstream.KeyValue
	// layerVersions holds the layer versions; layers the last number of
	// each layer name.
	layerVersions jetstream.KeyValue
	provisioned   jetstream.KeyValue
	code          jetstream.ObjectStore
}

// Open creates the buckets if needed and returns the store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{js: js}
	kv := func(name, desc string) (jetstream.KeyValue, error) {
		b, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("store: bucket %s: %w", name, err)
		}
		return b, nil
	}
	if s.meta, err = kv(bucketMeta, "Ember installation facts"); err != nil {
		return nil, err
	}
	if s.accounts, err = kv(bucketAccounts, "Ember accounts"); err != nil {
		return nil, err
	}
	if s.keys, err = kv(bucketKeys, "Ember access keys (secrets sealed)"); err != nil {
		return nil, err
	}
	if s.functions, err = kv(bucketFunctions, "Ember functions by account.name"); err != nil {
		return nil, err
	}
	if s.versions, err = kv(bucketVersions, "Ember published function versions by account.name.version"); err != nil {
		return nil, err
	}
	if s.aliases, err = kv(bucketAliases, "Ember function aliases by account.name.alias"); err != nil {
		return nil, err
	}
	if s.layers, err = kv(bucketLayers, "Ember layer names by account.name: the last version number"); err != nil {
		return nil, err
	}
	if s.layerVersions, err = kv(bucketLayerVers, "Ember layer versions by account.name.version"); err != nil {
		return nil, err
	}
	if s.provisioned, err = kv(bucketProvConc, "Ember provisioned concurrency by account.name.qualifier"); err != nil {
		return nil, err
	}
	s.code, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      objectCode,
		Description: "Ember code packages and layer contents by account and sha256",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("store: object store %s: %w", objectCode, err)
	}
	return s, nil
}

// record reads and writes JSON values of one type in one bucket.
type record[T any] struct{ kv jetstream.KeyValue }

func (r record[T]) get(ctx context.Context, key string) (T, uint64, error) {
	var v T
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return v, 0, fmt.Errorf("store: get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("store: decode %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

func (r record[T]) create(ctx context.Context, key string, v T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := r.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%w: %s", ErrExists, key)
	}
	if err != nil {
		return 0, fmt.Errorf("store: create %s: %w", key, err)
	}
	return rev, nil
}

// update writes v if the key is still at revision rev.
func (r record[T]) update(ctx context.Context, key string, v T, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	nrev, err := r.kv.Update(ctx, key, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%w: %s", ErrConflict, key)
	}
	if err != nil {
		return 0, fmt.Errorf("store: update %s: %w", key, err)
	}
	return nrev, nil
}

// delete removes the key if it is still at revision rev (0: any).
func (r record[T]) delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := r.kv.Purge(ctx, key, opts...)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: %s", ErrConflict, key)
	}
	if err != nil {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}

// keys lists the keys under prefix ("" for all), sorted.
func (r record[T]) keys(ctx context.Context, prefix string) ([]string, error) {
	filter := ">"
	if prefix != "" {
		filter = prefix + ">"
	}
	l, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer l.Stop()
	var out []string
	for k := range l.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// watch calls fn with every change (value) or delete (nil) of a key of kv
// after the watch starts, until ctx ends. It blocks.
func watch(ctx context.Context, kv jetstream.KeyValue, fn func(key string, value []byte)) error {
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("store: watch %s: %w", kv.Bucket(), err)
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
			if e.Operation() != jetstream.KeyValuePut {
				fn(e.Key(), nil)
				continue
			}
			fn(e.Key(), e.Value())
		}
	}
}
