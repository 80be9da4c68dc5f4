package auth

import (
	"context"
	"regexp"
	"testing"
)

func TestNewAccountID(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]{11}$`)
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewAccountID()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(id) {
			t.Fatalf("account id %q is not 12 digits with a non-zero first", id)
		}
		seen[id] = true
	}
	if len(seen) < 990 {
		t.Fatalf("only %d distinct ids in 1000", len(seen))
	}
}

func TestNewAccessKey(t *testing.T) {
	idRE := regexp.MustCompile(`^EMBR[A-Z2-7]{16}$`)
	secretRE := regexp.MustCompile(`^[A-Za-z0-9+/]{40}$`)
	seen := map[string]bool{}
	for range 1000 {
		id, secret, err := NewAccessKey()
		if err != nil {
			t.Fatal(err)
		}
		if !idRE.MatchString(id) || !secretRE.MatchString(secret) {
			t.Fatalf("bad key %q / %q", id, secret)
		}
		if seen[id] || seen[secret] {
			t.Fatal("repeated key")
		}
		seen[id], seen[secret] = true, true
	}
}

func TestPrincipalContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := PrincipalFrom(ctx); ok {
		t.Fatal("principal in an empty context")
	}
	p := Principal{AccountID: testAccount, AccessKeyID: testAKID, Admin: true}
	got, ok := PrincipalFrom(WithPrincipal(ctx, p))
	if !ok || got != p {
		t.Fatalf("PrincipalFrom = %+v, %v", got, ok)
	}
}
