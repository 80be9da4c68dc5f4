// Package auth holds accounts' keys and AWS Signature Version 4
// verification: it checks that a request was signed with an access key that
// Ember issued, generates account ids and access keys, seals secrets at rest
// and reads and writes AWS shared-credentials files.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"math/big"
)

// Key is what an access key id resolves to.
type Key struct {
	// AccountID is the 12-digit account that owns the key.
	AccountID string
	// Secret is the secret access key the requests are signed with.
	Secret string
	// Admin marks a key that may use Ember's administrative operations.
	Admin bool
}

// KeyLookup resolves access key ids; it is implemented by the account store.
type KeyLookup interface {
	// LookupKey returns the key for accessKeyID; ok is false if there is no
	// such key. An error means the lookup itself failed.
	LookupKey(ctx context.Context, accessKeyID string) (key Key, ok bool, err error)
}

// Principal is the authenticated caller of a request.
type Principal struct {
	AccountID   string
	AccessKeyID string
	Admin       bool
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal that WithPrincipal put in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// AccessKeyPrefix starts every access key id that NewAccessKey makes.
const AccessKeyPrefix = "EMBR"

// NewAccountID returns a random 12-digit account id whose first digit is not
// 0, read from crypto/rand.
func NewAccountID() (string, error) {
	// 100000000000 + [0, 900000000000) covers exactly the 12-digit numbers.
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000_000))
	if err != nil {
		return "", fmt.Errorf("auth: new account id: %w", err)
	}
	return fmt.Sprintf("%012d", n.Int64()+100_000_000_000), nil
}

// NewAccessKey returns a new access key id ("EMBR" and 16 characters of
// [A-Z2-7], 20 in all, like AWS's) and a 40-character secret of
// [A-Za-z0-9+/], like AWS's, both from crypto/rand.
func NewAccessKey() (id, secret string, err error) {
	var idBytes [10]byte // 80 bits = 16 base32 characters, no padding
	var secretBytes [30]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return "", "", fmt.Errorf("auth: new access key: %w", err)
	}
	if _, err := rand.Read(secretBytes[:]); err != nil {
		return "", "", fmt.Errorf("auth: new access key: %w", err)
	}
	id = AccessKeyPrefix + base32.StdEncoding.EncodeToString(idBytes[:])
	secret = base64.StdEncoding.EncodeToString(secretBytes[:]) // 240 bits = 40 characters, no padding
	return id, secret, nil
}
