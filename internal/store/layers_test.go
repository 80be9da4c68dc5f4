package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/emberfn/ember/internal/store"
)

func TestLayerVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, stop := open(t, dir)
	const acct, other = "111111111111", "222222222222"
	publish := func(account, name, sha string) store.LayerVersion {
		t.Helper()
		n, err := st.NextLayerVersion(ctx, account, name)
		if err != nil {
			t.Fatal(err)
		}
		l := store.LayerVersion{AccountID: account, Name: name, Version: n, CodeSHA256: sha}
		if err := st.CreateLayerVersion(ctx, l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	for i := 0; i < 11; i++ {
		publish(acct, "lib", "aa")
	}
	publish(acct, "a-first", "bb")
	publish(other, "lib", "cc")
	if err := st.CreateLayerVersion(ctx, store.LayerVersion{AccountID: acct, Name: "lib", Version: 3}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a stored number again: %v", err)
	}
	vs, err := st.ListLayerVersions(ctx, acct, "lib")
	if err != nil || len(vs) != 11 || vs[0].Version != 1 || vs[10].Version != 11 {
		t.Fatalf("versions of lib: %v %+v", err, vs)
	}
	all, err := st.ListLayerVersions(ctx, acct, "")
	if err != nil || len(all) != 12 || all[0].Name != "a-first" {
		t.Fatalf("all layers: %v %+v", err, all)
	}
	// Numbers are never reused, even once every version is gone.
	for _, v := range vs {
		if err := st.DeleteLayerVersion(ctx, acct, "lib", v.Version); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteLayerVersion(ctx, acct, "lib", 1); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if _, err := st.GetLayerVersion(ctx, acct, "lib", 11); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted version: %v", err)
	}
	stop()
	st, stop = open(t, dir)
	defer stop()
	if l := publish(acct, "lib", "aa"); l.Version != 12 {
		t.Fatalf("after deletes and a restart the next version is %d, want 12", l.Version)
	}
	if got, err := st.GetLayerVersion(ctx, other, "lib", 1); err != nil || got.CodeSHA256 != "cc" {
		t.Fatalf("other account's layer: %+v %v", got, err)
	}

	// CodeInUse sees layer contents and the layers of functions.
	for sha, want := range map[string]bool{"aa": true, "bb": true, "cc": false, "dd": false} {
		if used, err := st.CodeInUse(ctx, acct, sha); err != nil || used != want {
			t.Fatalf("CodeInUse(%s) = %v %v, want %v", sha, used, err, want)
		}
	}
	f := store.Function{AccountID: acct, Name: "f", CodeSHA256: "ee",
		Layers: []store.FunctionLayer{{ARN: "arn:aws:lambda:us-east-1:111111111111:layer:gone:1", CodeSHA256: "dd"}}}
	if _, err := st.CreateFunction(ctx, f); err != nil {
		t.Fatal(err)
	}
	if used, err := st.CodeInUse(ctx, acct, "dd"); err != nil || !used {
		t.Fatalf("a function's layer: %v %v", used, err)
	}
	got, err := st.GetFunction(ctx, acct, "f")
	if err != nil || len(got.Layers) != 1 || got.Layers[0].CodeSHA256 != "dd" {
		t.Fatalf("function layers: %+v %v", got.Layers, err)
	}
}
