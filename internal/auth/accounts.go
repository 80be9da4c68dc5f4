package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emberfn/ember/internal/lambdaapi"
	"github.com/emberfn/ember/internal/store"
)

// AccountStore is the durable state Accounts needs.
type AccountStore interface {
	CreateAccount(ctx context.Context, a store.Account, k store.AccessKey) error
	Account(ctx context.Context, id string) (store.Account, error)
	AccessKey(ctx context.Context, id string) (store.AccessKey, error)
	WatchAccessKeys(ctx context.Context, fn func(ev *store.KeyEvent)) error
}

// AccountsConfig configures Accounts. Store and Sealer are required.
type AccountsConfig struct {
	Store  AccountStore
	Sealer *Sealer
	Now    func() time.Time
	Logger *slog.Logger
}

// NewAccount is a freshly made account with its only copy of the secret.
type NewAccount struct {
	AccountID       string `json:"AccountId"`
	Name            string `json:"Name"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

// Accounts makes accounts and resolves access keys. It keeps every key in
// memory, kept current by a watch on the store, so verifying a request
// costs no store round trip; a key not yet seen is read from the store.
type Accounts struct {
	cfg   AccountsConfig
	log   *slog.Logger
	ready chan struct{}
	once  sync.Once

	mu     sync.RWMutex
	keys   map[string]Key // by access key id; secrets opened
	frozen string         // if set, why no account may be created
}

// ErrFrozen means this installation refuses new accounts.
var ErrFrozen = errors.New("auth: no new accounts")

// Freeze refuses every later CreateAccount, saying why.
func (a *Accounts) Freeze(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.frozen = why
}

// NewAccounts returns Accounts; call Run to keep its cache current.
func NewAccounts(cfg AccountsConfig) *Accounts {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Accounts{cfg: cfg, log: cfg.Logger.With("component", "auth"),
		ready: make(chan struct{}), keys: map[string]Key{}}
}

// Run follows the access keys in the store until ctx ends.
func (a *Accounts) Run(ctx context.Context) error {
	return a.cfg.Store.WatchAccessKeys(ctx, func(ev *store.KeyEvent) {
		if ev == nil {
			a.once.Do(func() { close(a.ready) })
			return
		}
		if ev.Deleted {
			a.mu.Lock()
			delete(a.keys, ev.ID)
			a.mu.Unlock()
			return
		}
		k, err := a.open(ctx, ev.Key)
		if err != nil {
			a.log.Error("cannot use access key", "access_key", ev.ID, "err", err)
			return
		}
		a.mu.Lock()
		a.keys[ev.ID] = k
		a.mu.Unlock()
	})
}

// WaitReady waits until Run has loaded every existing key.
func (a *Accounts) WaitReady(ctx context.Context) error {
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LookupKey implements KeyLookup.
func (a *Accounts) LookupKey(ctx context.Context, id string) (Key, bool, error) {
	a.mu.RLock()
	k, ok := a.keys[id]
	a.mu.RUnlock()
	if ok {
		return k, true, nil
	}
	if len(id) != 20 || id[:len(AccessKeyPrefix)] != AccessKeyPrefix {
		return Key{}, false, nil
	}
	sk, err := a.cfg.Store.AccessKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Key{}, false, nil
	}
	if err != nil {
		return Key{}, false, err
	}
	k, err = a.open(ctx, sk)
	if err != nil {
		return Key{}, false, err
	}
	return k, true, nil
}

func (a *Accounts) open(ctx context.Context, sk store.AccessKey) (Key, error) {
	secret, err := a.cfg.Sealer.Open(sk.SealedSecret)
	if err != nil {
		return Key{}, fmt.Errorf("auth: open secret of %s (is this the installation's master key?): %w", sk.ID, err)
	}
	acct, err := a.cfg.Store.Account(ctx, sk.AccountID)
	if err != nil {
		return Key{}, fmt.Errorf("auth: account of %s: %w", sk.ID, err)
	}
	return Key{AccountID: sk.AccountID, Secret: string(secret), Admin: acct.Admin}, nil
}

// CreateAccount makes an account with a new id and one access key.
func (a *Accounts) CreateAccount(ctx context.Context, name string, admin bool) (NewAccount, error) {
	a.mu.RLock()
	frozen := a.frozen
	a.mu.RUnlock()
	if frozen != "" {
		return NewAccount{}, lambdaapi.Errorf(lambdaapi.InvalidParameterValue, "%s: %s", ErrFrozen.Error(), frozen)
	}
	for attempt := 0; ; attempt++ {
		id, err := NewAccountID()
		if err != nil {
			return NewAccount{}, err
		}
		kid, secret, err := NewAccessKey()
		if err != nil {
			return NewAccount{}, err
		}
		sealed, err := a.cfg.Sealer.Seal([]byte(secret))
		if err != nil {
			return NewAccount{}, err
		}
		now := a.cfg.Now().UTC()
		err = a.cfg.Store.CreateAccount(ctx,
			store.Account{ID: id, Name: name, Admin: admin, Created: now},
			store.AccessKey{ID: kid, AccountID: id, SealedSecret: sealed, Created: now})
		if errors.Is(err, store.ErrExists) && attempt < 3 {
			continue // an id collision: draw again
		}
		if err != nil {
			return NewAccount{}, err
		}
		a.mu.Lock()
		a.keys[kid] = Key{AccountID: id, Secret: secret, Admin: admin}
		a.mu.Unlock()
		return NewAccount{AccountID: id, Name: name, AccessKeyID: kid, SecretAccessKey: secret}, nil
	}
}
