package async

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/invoke"
)

// Events accepted at the same time are stored together (fewer writes than
// events), and each is then invoked exactly once.
func TestConcurrentAcceptsAreGroupedAndEachRunsOnce(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	const senders, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("ev-%d-%d", s, i)
				errs <- q.Enqueue(context.Background(), "123456789012", "fn", "", []byte(`{"n":1}`), id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	gs := q.GroupStats()
	t.Logf("%d events accepted: %d in %d groups", senders*each, gs.Grouped, gs.Groups)
	if gs.Groups == 0 || gs.Grouped < 2*gs.Groups {
		t.Fatalf("no group commit: %+v", gs)
	}
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		return &invoke.Result{Payload: []byte(`null`)}, nil
	}}
	defer run(t, q, inv)()
	waitUntil(t, "every event to run", func() bool {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		return len(inv.calls) == senders*each
	})
	waitUntil(t, "the queue to drain", func() bool {
		n, _, err := q.Depth(context.Background())
		return err == nil && n == 0
	})
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for id, n := range inv.calls {
		if n != 1 {
			t.Errorf("%s ran %d times", id, n)
		}
	}
	if got := q.Stats().Accepted; got != senders*each {
		t.Errorf("accepted %d, want %d", got, senders*each)
	}
}

// A group split twice (its ack lost in a crash) stores each event once.
func TestGroupSplitTwiceRunsEachEventOnce(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	var raws []json.RawMessage
	for i := range 5 {
		b, _ := json.Marshal(&event{RequestID: fmt.Sprintf("g-%d", i), Account: "123456789012", Function: "fn", Payload: []byte(`{}`), Accepted: time.Now().UTC()})
		raws = append(raws, b)
	}
	group, _ := json.Marshal(raws)
	ctx := context.Background()
	// The same group twice, as a redelivery after a crash would split it.
	for _, id := range []string{"first", "again"} {
		if _, err := q.js.Publish(ctx, inboxSubject, group, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		return &invoke.Result{Payload: []byte(`null`)}, nil
	}}
	defer run(t, q, inv)()
	waitUntil(t, "both copies split and every event run", func() bool {
		n, _, err := q.Depth(ctx)
		inv.mu.Lock()
		defer inv.mu.Unlock()
		return err == nil && n == 0 && len(inv.calls) == 5 && q.GroupStats().Split == 10
	})
	for i := range 5 {
		if n := inv.count(fmt.Sprintf("g-%d", i)); n != 1 {
			t.Errorf("g-%d ran %d times", i, n)
		}
	}
}
