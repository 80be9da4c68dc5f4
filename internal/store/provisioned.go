package store

import (
	"context"
	"errors"
	"time"
)

// Provisioned concurrency configurations live in bucket ember-provisioned
// under ACCOUNT.NAME.QUALIFIER, the qualifier as the caller gave it (a
// version number or an alias name).

// ProvisionedConfig is a function version's or alias's provisioned
// concurrency: how many initialised sandboxes the Worker Manager keeps.
type ProvisionedConfig struct {
	AccountID    string    `json:"account"`
	Function     string    `json:"function"`
	Qualifier    string    `json:"qualifier"`
	Requested    int       `json:"requested"`
	LastModified time.Time `json:"lastModified"`
}

// ProvisionedVersion is a published version and how many provisioned
// sandboxes it should have: what the control plane tells the Worker
// Manager (not stored).
type ProvisionedVersion struct {
	Function Function
	Count    int
}

// PutProvisioned creates or replaces a configuration.
func (s *Store) PutProvisioned(ctx context.Context, c ProvisionedConfig) error {
	r := record[ProvisionedConfig]{s.provisioned}
	key := versionKey(c.AccountID, c.Function, c.Qualifier)
	for attempt := 0; ; attempt++ {
		_, rev, err := r.get(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			_, err = r.create(ctx, key, c)
		case err == nil:
			_, err = r.update(ctx, key, c, rev)
		}
		if (errors.Is(err, ErrConflict) || errors.Is(err, ErrExists)) && attempt < 5 {
			continue
		}
		return err
	}
}

// GetProvisioned reads one configuration; ErrNotFound if there is none.
func (s *Store) GetProvisioned(ctx context.Context, account, function, qualifier string) (ProvisionedConfig, error) {
	c, _, err := record[ProvisionedConfig]{s.provisioned}.get(ctx, versionKey(account, function, qualifier))
	return c, err
}

// DeleteProvisioned removes a configuration (no error if it is gone).
func (s *Store) DeleteProvisioned(ctx context.Context, account, function, qualifier string) error {
	return record[ProvisionedConfig]{s.provisioned}.delete(ctx, versionKey(account, function, qualifier), 0)
}

// ListProvisioned returns the configurations of one function of an
// account, or (function "") of all its functions, or (account "" too) of
// every account, sorted by key.
func (s *Store) ListProvisioned(ctx context.Context, account, function string) ([]ProvisionedConfig, error) {
	r := record[ProvisionedConfig]{s.provisioned}
	prefix := ""
	if account != "" {
		prefix = account + "."
		if function != "" {
			prefix += function + "."
		}
	}
	keys, err := r.keys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]ProvisionedConfig, 0, len(keys))
	for _, k := range keys {
		c, _, err := r.get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
