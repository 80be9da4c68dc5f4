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
