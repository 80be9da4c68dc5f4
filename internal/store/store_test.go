package store_test

import (
	"context"
	"errors"
	"io"
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
