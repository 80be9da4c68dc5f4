package controlapi

import (
	"testing"

	"github.com/emberfn/ember/internal/store"
)

// TestOnePerVersion: entries of one version (a version provisioned through
// itself and an alias) become one, with the amounts added; the order of
// first appearance is kept.
func TestOnePerVersion(t *testing.T) {
	v := func(n string) store.Function { return store.Function{Name: "f", Version: n} }
	got := onePerVersion([]store.ProvisionedVersion{{Function: v("2"), Count: 1}, {Function: v("1"), Count: 3}, {Function: v("2"), Count: 2}})
	if len(got) != 2 || got[0].Function.Version != "2" || got[0].Count != 3 || got[1].Function.Version != "1" || got[1].Count != 3 {
		t.Fatalf("onePerVersion = %+v", got)
	}
	if got := onePerVersion(nil); len(got) != 0 {
		t.Fatalf("onePerVersion(nil) = %+v", got)
	}
}
