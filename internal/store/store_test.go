package store_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/natsd"
	"github.com/emberfn/ember/internal/store"
)

func open(t *testing.T, dir string) (*store.Store, func()) {
	t.Helper()
	ns, err := natsd.Start(natsd.Config{StoreDir: dir, SyncEveryWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), nc, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return st, func() { nc.Close(); ns.Shutdown() }
}

func TestFunctionsCRUDAndPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, stop := open(t, dir)
	f := store.Function{AccountID: "111111111111", Name: "a", Runtime: "provided.al2023", RevisionID: "r1", CodeSHA256: "ab"}
	rev, err := st.CreateFunction(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateFunction(ctx, f); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	f.RevisionID = "r2"
	if _, err := st.UpdateFunction(ctx, f, rev); err != nil {
		t.Fatal(err)
	}
	f.RevisionID = "r3"
	if _, err := st.UpdateFunction(ctx, f, rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	for _, n := range []string{"c", "b", "d"} {
		g := f
		g.Name = n
		if _, err := st.CreateFunction(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	other := store.Function{AccountID: "222222222222", Name: "a"}
	if _, err := st.CreateFunction(ctx, other); err != nil {
		t.Fatal(err)
	}
	page, more, err := st.ListFunctions(ctx, "111111111111", "", 2)
	if err != nil || !more || len(page) != 2 || page[0].Name != "a" || page[1].Name != "b" {
		t.Fatalf("page 1: %v %v %+v", err, more, page)
	}
	page, more, err = st.ListFunctions(ctx, "111111111111", "b", 2)
	if err != nil || more || len(page) != 2 || page[0].Name != "c" || page[1].Name != "d" {
		t.Fatalf("page 2: %v %v %+v", err, more, page)
	}
	if err := st.PutCode(ctx, "111111111111", "ab", []byte("zipbytes")); err != nil {
		t.Fatal(err)
	}
	stop()

	st, stop = open(t, dir)
	defer stop()
	got, err := st.GetFunction(ctx, "111111111111", "a")
	if err != nil || got.RevisionID != "r2" {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	rc, size, err := st.GetCode(ctx, "111111111111", "ab")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "zipbytes" || size != 8 {
		t.Fatalf("code after restart: %q %d", b, size)
	}
	if _, _, err := st.GetCode(ctx, "222222222222", "ab"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account's code: %v, want ErrNotFound", err)
	}
	if used, err := st.CodeInUse(ctx, "111111111111", "ab"); err != nil || !used {
		t.Fatalf("CodeInUse: %v %v", used, err)
	}
	if err := st.DeleteFunction(ctx, "111111111111", "a", 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete at stale revision: %v", err)
	}
	if err := st.DeleteFunction(ctx, "111111111111", "a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetFunction(ctx, "111111111111", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted function: %v", err)
	}
	if err := st.DeleteCode(ctx, "111111111111", "ab"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetCode(ctx, "111111111111", "ab"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted code: %v", err)
	}
}

func TestWatchAccessKeys(t *testing.T) {
	st, stop := open(t, t.TempDir())
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	a := store.Account{ID: "123456789012", Name: "x"}
	if err := st.CreateAccount(ctx, a, store.AccessKey{ID: "K1", AccountID: a.ID}); err != nil {
		t.Fatal(err)
	}
	events := make(chan *store.KeyEvent, 10)
	done := make(chan error)
	go func() { done <- st.WatchAccessKeys(ctx, func(ev *store.KeyEvent) { events <- ev }) }()
	next := func() *store.KeyEvent {
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event")
			return nil
		}
	}
	if ev := next(); ev == nil || ev.ID != "K1" {
		t.Fatalf("first event %+v", ev)
	}
	if ev := next(); ev != nil {
		t.Fatalf("want end-of-initial marker, got %+v", ev)
	}
	b := store.Account{ID: "210987654321", Name: "y"}
	if err := st.CreateAccount(ctx, b, store.AccessKey{ID: "K2", AccountID: b.ID}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev == nil || ev.ID != "K2" || ev.Key.AccountID != b.ID {
		t.Fatalf("change event %+v", ev)
	}
	if err := st.CreateAccount(ctx, b, store.AccessKey{ID: "K3", AccountID: b.ID}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate account: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestVersionsAndAliases(t *testing.T) {
	ctx := context.Background()
	st, stop := open(t, t.TempDir())
	defer stop()
	const acct = "111111111111"
	f := store.Function{AccountID: acct, Name: "f", CodeSHA256: "aa", RevisionID: "r"}
	if _, err := st.CreateFunction(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateVersion(ctx, f); err == nil {
		t.Fatal("a version without a number was stored")
	}
	for _, n := range []string{"10", "2", "1"} {
		v := f
		v.Version, v.CodeSHA256 = n, "v"+n
		if _, err := st.CreateVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	other := f
	other.Name, other.Version = "f2", "1" // a name that f is a prefix of
	if _, err := st.CreateVersion(ctx, other); err != nil {
		t.Fatal(err)
	}
	v := f
	v.Version = "2"
	if _, err := st.CreateVersion(ctx, v); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second version 2: %v", err)
	}
	vs, err := st.ListVersions(ctx, acct, "f")
	if err != nil || len(vs) != 3 || vs[0].Version != "1" || vs[1].Version != "2" || vs[2].Version != "10" {
		t.Fatalf("versions %+v %v", vs, err)
	}
	if g, err := st.GetVersion(ctx, acct, "f", "10"); err != nil || g.CodeSHA256 != "v10" || g.VersionName() != "10" || g.VersionKey() != acct+".f:10" {
		t.Fatalf("version 10: %+v %v", g, err)
	}
	if used, _ := st.CodeInUse(ctx, acct, "v2"); !used {
		t.Fatal("a version's code is not in use")
	}
	if err := st.DeleteVersion(ctx, acct, "f", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetVersion(ctx, acct, "f", "2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted version: %v", err)
	}
	if used, _ := st.CodeInUse(ctx, acct, "v2"); used {
		t.Fatal("a deleted version's code is in use")
	}

	a := store.Alias{AccountID: acct, Function: "f", Name: "live", FunctionVersion: "1", Weights: map[string]float64{"10": 0.25}, RevisionID: "a1"}
	rev, err := st.CreateAlias(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAlias(ctx, a); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second alias: %v", err)
	}
	b := a
	b.Name, b.Weights = "beta", nil
	if _, err := st.CreateAlias(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetAlias(ctx, acct, "f", "live")
	if err != nil || got.Rev != rev || got.Weights["10"] != 0.25 || !got.References("10") || !got.References("1") || got.References("2") {
		t.Fatalf("alias %+v %v", got, err)
	}
	a.FunctionVersion = "10"
	if _, err := st.UpdateAlias(ctx, a, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateAlias(ctx, a, rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale alias update: %v", err)
	}
	as, err := st.ListAliases(ctx, acct, "f")
	if err != nil || len(as) != 2 || as[0].Name != "beta" || as[1].FunctionVersion != "10" {
		t.Fatalf("aliases %+v %v", as, err)
	}
	if err := st.DeleteAlias(ctx, acct, "f", "beta", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAlias(ctx, acct, "f", "beta"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted alias: %v", err)
	}
}

func TestWatchVersionsAndAliases(t *testing.T) {
	st, stop := open(t, t.TempDir())
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	type ev struct {
		kind, account, name, item string
		gone                      bool
	}
	events := make(chan ev, 10)
	done := make(chan error, 2)
	go func() {
		done <- st.WatchVersions(ctx, func(a, n, v string, f *store.Function) { events <- ev{"version", a, n, v, f == nil} })
	}()
	go func() {
		done <- st.WatchAliases(ctx, func(a, n, al string, x *store.Alias) { events <- ev{"alias", a, n, al, x == nil} })
	}()
	next := func() ev {
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event")
			return ev{}
		}
	}
	// The watches may start after the first writes: write until seen.
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; ; i++ {
		v := store.Function{AccountID: "111111111111", Name: "f", Version: strconv.Itoa(i)}
		if _, err := st.CreateVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.kind != "version" || e.account != "111111111111" || e.name != "f" || e.gone {
				t.Fatalf("version event %+v", e)
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no version event")
			}
			continue
		}
		if err := st.DeleteVersion(ctx, "111111111111", "f", v.Version); err != nil {
			t.Fatal(err)
		}
		if e := next(); e.item != v.Version || !e.gone {
			t.Fatalf("delete event %+v", e)
		}
		break
	}
	for {
		a := store.Alias{AccountID: "111111111111", Function: "f", Name: "live", FunctionVersion: "1"}
		_ = st.DeleteAlias(ctx, a.AccountID, a.Function, a.Name, 0)
		if _, err := st.CreateAlias(ctx, a); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.kind == "alias" && e.gone {
				continue // the delete of an earlier round
			}
			if e.kind != "alias" || e.item != "live" {
				t.Fatalf("alias event %+v", e)
			}
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no alias event")
			}
			continue
		}
		break
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// WatchFunctions reports every change of a $LATEST with its new
// configuration, and a delete as nil; with initial set it first reports
// the functions that exist; it ends without error when its context does.
func TestWatchFunctions(t *testing.T) {
	st, stop := open(t, t.TempDir())
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const acct = "111111111111"
	old := store.Function{AccountID: acct, Name: "old", RevisionID: "r0"}
	if _, err := st.CreateFunction(ctx, old); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		account, name, revision, greeting string
		gone                              bool
	}
	updates, all := make(chan ev, 100), make(chan ev, 100)
	done := make(chan error, 2)
	for _, w := range []struct {
		initial bool
		c       chan ev
	}{{false, updates}, {true, all}} {
		go func() {
			done <- st.WatchFunctions(ctx, w.initial, func(a, n string, f *store.Function) {
				e := ev{account: a, name: n, gone: f == nil}
				if f != nil {
					e.revision, e.greeting = f.RevisionID, f.Environment["GREETING"]
				}
				w.c <- e
			})
		}()
	}
	next := func(c chan ev) ev {
		t.Helper()
		select {
		case e := <-c:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event")
			return ev{}
		}
	}
	// The initial watch reports the existing function first.
	if e := next(all); e != (ev{account: acct, name: "old", revision: "r0"}) {
		t.Fatalf("initial event %+v", e)
	}
	// The updates-only watch may start after the first writes: update
	// until it reports one.
	f := store.Function{AccountID: acct, Name: "f", RevisionID: "r1", Environment: map[string]string{"GREETING": "v1"}}
	rev, err := st.CreateFunction(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 2; ; i++ {
		f.RevisionID, f.Environment = "r"+strconv.Itoa(i), map[string]string{"GREETING": "v" + strconv.Itoa(i)}
		if rev, err = st.UpdateFunction(ctx, f, rev); err != nil {
			t.Fatal(err)
		}
		var e ev
		select {
		case e = <-updates:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no update event")
			}
			continue
		}
		// The first event seen may be of an earlier write of f; from
		// then on every write is seen, in order.
		for e.revision != f.RevisionID {
			if e.account != acct || e.name != "f" || e.gone || e.greeting != "v"+strings.TrimPrefix(e.revision, "r") {
				t.Fatalf("update event %+v", e)
			}
			e = next(updates)
		}
		if e != (ev{account: acct, name: "f", revision: f.RevisionID, greeting: f.Environment["GREETING"]}) {
			t.Fatalf("update event %+v, want revision %s", e, f.RevisionID)
		}
		break
	}
	// A further update carries the new configuration; a delete is nil.
	f.RevisionID, f.Environment = "final", map[string]string{"GREETING": "last"}
	if rev, err = st.UpdateFunction(ctx, f, rev); err != nil {
		t.Fatal(err)
	}
	if e := next(updates); e != (ev{account: acct, name: "f", revision: "final", greeting: "last"}) {
		t.Fatalf("update event %+v", e)
	}
	if err := st.DeleteFunction(ctx, acct, "f", rev); err != nil {
		t.Fatal(err)
	}
	if e := next(updates); e != (ev{account: acct, name: "f", gone: true}) {
		t.Fatalf("delete event %+v", e)
	}
	// The initial watch saw the same changes after the existing function.
	var last ev
	for !last.gone {
		last = next(all)
		if last.name != "f" || last.account != acct {
			t.Fatalf("event %+v on the initial watch", last)
		}
	}
	// The updates-only watch never reported the function that existed
	// before it started.
	select {
	case e := <-updates:
		t.Fatalf("extra event %+v", e)
	default:
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
