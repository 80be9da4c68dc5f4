package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Code packages are stored once per account and digest: the object name is
// ACCOUNT/SHA256HEX. Per-account names keep one tenant's deletes from
// touching another's packages.
func codeName(account, sha256hex string) string { return account + "/" + sha256hex }

// PutCode stores a package (idempotent: the same digest is written once).
func (s *Store) PutCode(ctx context.Context, account, sha256hex string, zip []byte) error {
	name := codeName(account, sha256hex)
	if _, err := s.code.GetInfo(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("store: code info: %w", err)
	}
	if _, err := s.code.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(zip)); err != nil {
		return fmt.Errorf("store: put code: %w", err)
	}
	return nil
}

// GetCode opens a stored package; the caller closes it.
func (s *Store) GetCode(ctx context.Context, account, sha256hex string) (io.ReadCloser, int64, error) {
	r, err := s.code.Get(ctx, codeName(account, sha256hex))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, fmt.Errorf("%w: code %s", ErrNotFound, sha256hex)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: get code: %w", err)
	}
	info, err := r.Info()
	if err != nil {
		r.Close()
		return nil, 0, fmt.Errorf("store: get code: %w", err)
	}
	return r, int64(info.Size), nil
}

// DeleteCode removes a stored package (no error if it is already gone).
func (s *Store) DeleteCode(ctx context.Context, account, sha256hex string) error {
	err := s.code.Delete(ctx, codeName(account, sha256hex))
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("store: delete code: %w", err)
	}
	return nil
}

// CodeObjects lists the digests of an account's stored packages.
func (s *Store) CodeObjects(ctx context.Context, account string) ([]string, error) {
	infos, err := s.code.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list code: %w", err)
	}
	var out []string
	prefix := account + "/"
	for _, i := range infos {
		if len(i.Name) > len(prefix) && i.Name[:len(prefix)] == prefix {
			out = append(out, i.Name[len(prefix):])
		}
	}
	return out, nil
}
