package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Account is a tenant: it owns functions and access keys.
type Account struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Admin   bool      `json:"admin,omitempty"`
	Created time.Time `json:"created"`
	// ConcurrencyLimit is the account's own concurrency limit (0: the
	// installation's default).
	ConcurrencyLimit int `json:"concurrencyLimit,omitempty"`
}

// AccessKey is one access key of an account. The secret is sealed (see
// auth.Sealer); the store never holds it in clear text.
type AccessKey struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account"`
	SealedSecret []byte    `json:"sealedSecret"`
	Created      time.Time `json:"created"`
}

// CreateAccount stores a new account with its first access key.
func (s *Store) CreateAccount(ctx context.Context, a Account, k AccessKey) error {
	if _, err := (record[Account]{s.accounts}).create(ctx, a.ID, a); err != nil {
		return err
	}
	if _, err := (record[AccessKey]{s.keys}).create(ctx, k.ID, k); err != nil {
		_ = (record[Account]{s.accounts}).delete(ctx, a.ID, 0)
		return err
	}
	return nil
}

// Account returns one account.
func (s *Store) Account(ctx context.Context, id string) (Account, error) {
	a, _, err := record[Account]{s.accounts}.get(ctx, id)
	return a, err
}

// Accounts lists every account, by id.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	r := record[Account]{s.accounts}
	keys, err := r.keys(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(keys))
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
	return out, nil
}

// SetAccountLimit changes an account's concurrency limit.
func (s *Store) SetAccountLimit(ctx context.Context, id string, limit int) (Account, error) {
	r := record[Account]{s.accounts}
	for attempt := 0; ; attempt++ {
		a, rev, err := r.get(ctx, id)
		if err != nil {
			return Account{}, err
		}
		a.ConcurrencyLimit = limit
		_, err = r.update(ctx, id, a, rev)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue
		}
		return a, err
	}
}

// WatchAccounts calls fn with every account, then with every change, until
// ctx ends. It blocks; the caller owns its goroutine.
func (s *Store) WatchAccounts(ctx context.Context, fn func(a Account)) error {
	w, err := s.accounts.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("store: watch accounts: %w", err)
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
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var a Account
			if json.Unmarshal(e.Value(), &a) == nil {
				fn(a)
			}
		}
	}
}

// AccessKey returns one access key.
func (s *Store) AccessKey(ctx context.Context, id string) (AccessKey, error) {
	k, _, err := record[AccessKey]{s.keys}.get(ctx, id)
	return k, err
}

// KeyEvent is a change to the access keys: Deleted is set when the key was
// removed.
type KeyEvent struct {
	Key     AccessKey
	ID      string
	Deleted bool
}

// WatchAccessKeys calls fn with every existing access key, then with nil
// once they have all been sent, then with every change, until ctx ends.
// It blocks; the caller owns the goroutine it runs on.
func (s *Store) WatchAccessKeys(ctx context.Context, fn func(ev *KeyEvent)) error {
	w, err := s.keys.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("store: watch keys: %w", err)
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
				fn(nil)
				continue
			}
			ev := &KeyEvent{ID: e.Key()}
			if e.Operation() != jetstream.KeyValuePut {
				ev.Deleted = true
			} else if err := json.Unmarshal(e.Value(), &ev.Key); err != nil {
				continue
			}
			fn(ev)
		}
	}
}

// Meta reads an installation fact ("" if unset).
func (s *Store) Meta(ctx context.Context, key string) (string, error) {
	e, err := s.meta.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: meta %s: %w", key, err)
	}
	return string(e.Value()), nil
}

// SetMeta records an installation fact once; ErrExists if already set.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.meta.Create(ctx, key, []byte(value))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: %s", ErrExists, key)
	}
	if err != nil {
		return fmt.Errorf("store: meta %s: %w", key, err)
	}
	return nil
}
