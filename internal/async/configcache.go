package async

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/store"
)

// configTTL is how long the pollers keep a function's event invoke config
// (configCache).
const configTTL = time.Second

// configCache keeps the event invoke configs the pollers read, each for
// configTTL: every event they ran read its function's from the bucket (a
// JetStream request; 5.4% of the process's CPU in a profile of `ember
// bench --only async`).
// This process's own writes (the API's, and the removal of a deleted
// function's) drop the entry at once, so a change made here applies to
// the next event run here; one made by another Ember of the cluster
// applies within configTTL. The API's reads go to the bucket.
type configCache struct {
	mu      sync.Mutex
	entries map[string]cachedConfig
	// gen counts the writes dropped: a read that began before one does
	// not store what it read.
	gen    uint64
	stores int
}

type cachedConfig struct {
	c     EventInvokeConfig
	found bool
	at    time.Time
}

// sweepEvery is how many stores (lookups that missed) go between two
// sweeps of expired entries (the configs of functions no longer invoked).
const sweepEvery = 1024

// config is getConfig through the cache.
func (q *Queue) config(ctx context.Context, account, name, qualifier string) (EventInvokeConfig, error) {
	key := configKey(account, name, qualifier)
	now := q.cfg.Now()
	e, gen, ok := q.configs.lookup(key, now)
	if ok {
		if !e.found {
			return EventInvokeConfig{}, store.ErrNotFound
		}
		return e.c, nil
	}
	c, err := q.getConfig(ctx, account, name, qualifier)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, err
	}
	q.configs.store(key, cachedConfig{c: c, found: err == nil, at: now}, gen)
	return c, err
}

// lookup returns key's entry if it has not expired at now, and the count
// of writes to pass to store.
func (cc *configCache) lookup(key string, now time.Time) (cachedConfig, uint64, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.entries[key]
	return e, cc.gen, ok && !e.expired(now)
}

// store keeps e as key's entry unless a write was dropped since the
// lookup that returned gen; every sweepEvery stores it removes the
// expired entries.
func (cc *configCache) store(key string, e cachedConfig, gen uint64) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.gen == gen {
		if cc.entries == nil {
			cc.entries = make(map[string]cachedConfig)
		}
		cc.entries[key] = e
	}
	if cc.stores++; cc.stores >= sweepEvery {
		cc.stores = 0
		for k, x := range cc.entries {
			if x.expired(e.at) {
				delete(cc.entries, k)
			}
		}
	}
}

func (e cachedConfig) expired(now time.Time) bool {
	return now.Sub(e.at) >= configTTL || now.Before(e.at)
}

// configsChanged drops the cached configs whose keys start with prefix
// (a function's: "account.name.").
func (q *Queue) configsChanged(prefix string) {
	cc := &q.configs
	cc.mu.Lock()
	for k := range cc.entries {
		if strings.HasPrefix(k, prefix) {
			delete(cc.entries, k)
		}
	}
	cc.gen++
	cc.mu.Unlock()
}

// configChanged drops the cached config of key: this process wrote it.
func (q *Queue) configChanged(key string) {
	cc := &q.configs
	cc.mu.Lock()
	delete(cc.entries, key)
	cc.gen++
	cc.mu.Unlock()
}
