package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/store"
)

// TestConfigCache: the pollers' read of an event invoke config is kept
// for configTTL, a write made through this process drops it at once, one
// made elsewhere (straight to the bucket, as another Ember would) is seen
// once the entry expires, and expired entries are swept.
func TestConfigCache(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	q, stop := openTest(t, t.TempDir(), Config{Now: clock})
	defer stop()
	ctx := context.Background()
	key := configKey("111122223333", "fn", "")
	put := func(retries int) {
		t.Helper()
		b, _ := json.Marshal(EventInvokeConfig{MaximumRetryAttempts: &retries})
		if _, err := q.kv.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	retries := func() int {
		t.Helper()
		e, err := q.effectiveConfig(ctx, "111122223333", "fn", "$LATEST")
		if err != nil {
			t.Fatal(err)
		}
		return e.retries
	}

	if got := retries(); got != DefaultRetries {
		t.Fatalf("no config: %d retries, want the default %d", got, DefaultRetries)
	}
	put(0) // as another Ember: no configChanged
	if got := retries(); got != DefaultRetries {
		t.Fatalf("a config written elsewhere was read at once (%d): the absence was not kept", got)
	}
	advance(configTTL)
	if got := retries(); got != 0 {
		t.Fatalf("after configTTL: %d retries, want 0", got)
	}
	put(1)
	if got := retries(); got != 0 {
		t.Fatalf("a config written elsewhere was read at once (%d): the entry was not kept", got)
	}
	q.configChanged(key) // as this process's API does after its write
	if got := retries(); got != 1 {
		t.Fatalf("after this process's write: %d retries, want 1", got)
	}
	if err := q.kv.Purge(ctx, key); err != nil {
		t.Fatal(err)
	}
	q.configChanged(key)
	if _, err := q.config(ctx, "111122223333", "fn", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after this process's delete: %v, want not found", err)
	}

	// A function deleted through another Ember, which removed its
	// configs from the bucket first: this one's DeleteConfigs lists none
	// and still drops what it cached.
	put(2)
	q.configChanged(key)
	if got := retries(); got != 2 {
		t.Fatalf("%d retries, want 2", got)
	}
	if err := q.kv.Purge(ctx, key); err != nil { // the other Ember
		t.Fatal(err)
	}
	if err := q.DeleteConfigs(ctx, "111122223333", "fn"); err != nil {
		t.Fatal(err)
	}
	if got := retries(); got != DefaultRetries {
		t.Fatalf("after DeleteConfigs of a function whose configs were already gone: %d retries, want the default", got)
	}

	// Expired entries go at the next sweep.
	for i := range 5 {
		if _, err := q.config(ctx, "111122223333", fmt.Sprintf("other-%d", i), ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	for range sweepEvery { // each one a miss: a store
		advance(configTTL)
		if _, err := q.config(ctx, "111122223333", "fn", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	q.configs.mu.Lock()
	n := len(q.configs.entries)
	q.configs.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d entries after a sweep, want 1 (the one still read)", n)
	}
}

// TestConfigCacheWriteDuringRead: a read that began before this process's
// write does not store what it read.
func TestConfigCacheWriteDuringRead(t *testing.T) {
	q := &Queue{}
	cc := &q.configs
	now := time.Now()
	retries := 2
	fresh := cachedConfig{c: EventInvokeConfig{MaximumRetryAttempts: &retries}, found: true, at: now}
	_, gen, ok := cc.lookup("k", now)
	if ok {
		t.Fatal("an empty cache found an entry")
	}
	cc.store("k", fresh, gen)
	e, gen, ok := cc.lookup("k", now)
	if !ok || *e.c.MaximumRetryAttempts != 2 {
		t.Fatalf("stored entry not found: %+v %v", e, ok)
	}
	// A read begins (gen), this process writes, the read ends.
	q.configChanged("k")
	cc.store("k", fresh, gen)
	if _, _, ok := cc.lookup("k", now); ok {
		t.Fatal("a read that began before a write stored what it read")
	}
	_, gen, _ = cc.lookup("k", now)
	cc.store("k", fresh, gen)
	if _, _, ok := cc.lookup("k", now.Add(configTTL)); ok {
		t.Fatal("an entry outlived configTTL")
	}
}

// TestConfigsChangedByPrefix: a function's entries go, another's stay.
func TestConfigsChangedByPrefix(t *testing.T) {
	q := &Queue{}
	now := time.Now()
	for _, k := range []string{"a.f.=LATEST", "a.f.1", "a.fg.=LATEST", "b.f.=LATEST"} {
		_, gen, _ := q.configs.lookup(k, now)
		q.configs.store(k, cachedConfig{at: now}, gen)
	}
	q.configsChanged("a.f.")
	for k, want := range map[string]bool{"a.f.=LATEST": false, "a.f.1": false, "a.fg.=LATEST": true, "b.f.=LATEST": true} {
		if _, _, ok := q.configs.lookup(k, now); ok != want {
			t.Errorf("%s cached: %v, want %v", k, ok, want)
		}
	}
}
