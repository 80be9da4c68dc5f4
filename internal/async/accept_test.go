package async

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
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
				errs <- q.Enqueue(context.Background(), "123456789012", "fn", "", []byte(`{"n":1}`), id, "")
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
	// The depth counts the events, not the groups that hold them.
	if n, _, err := q.Depth(context.Background()); err != nil || n != senders*each {
		t.Fatalf("depth %d (%v), want %d events", n, err, senders*each)
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
	// A group's run is counted just after its ack, which is what empties
	// the inbox: wait for both.
	waitUntil(t, "the queue to drain and every group to be counted as run", func() bool {
		n, _, err := q.Depth(context.Background())
		return err == nil && n == 0 && q.GroupStats().GroupsRun >= gs.Groups
	})
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for id, n := range inv.calls {
		if n != 1 {
			t.Errorf("%s ran %d times", id, n)
		}
	}
	if gs := q.GroupStats(); gs.GroupsRun != gs.Groups || gs.Deferred != 0 {
		t.Errorf("every group should have run from the inbox, none deferred: %+v", gs)
	}
	if got := q.Stats().Accepted; got != senders*each {
		t.Errorf("accepted %d, want %d", got, senders*each)
	}
}

// publishGroup stores events of fn with these request ids as one inbox
// message, as the accept path's group commit does.
func publishTestGroup(t *testing.T, q *Queue, msgID string, ids ...string) {
	t.Helper()
	var raws []json.RawMessage
	for _, id := range ids {
		b, _ := json.Marshal(&event{RequestID: id, Account: "123456789012", Function: "fn", Payload: []byte(`{}`), Accepted: time.Now().UTC()})
		raws = append(raws, b)
	}
	group, _ := json.Marshal(raws)
	if _, err := q.js.Publish(context.Background(), inboxSubject, group, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

// The events of a group reach the same outcomes as events stored alone
// (TestThrottlesFunctionErrorsAndDrops): those that do not finish in the
// group (throttled, a platform error) are deferred to a new group, a
// retry goes to the event stream, and every group is acked.
func TestGroupOutcomes(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01})
	defer stop()
	inv := outcomesInvoker()
	publishTestGroup(t, q, "group-1", "throttled", "platform", "failing", "gone", "fine")
	defer run(t, q, inv)()
	waitUntil(t, "every outcome", func() bool {
		s := q.Stats()
		return s.Succeeded == 3 && s.Dropped == 1 && s.Gone == 1
	})
	s := q.Stats()
	if inv.count("throttled") != 3 || inv.count("platform") != 2 || inv.count("failing") != 3 || inv.count("fine") != 1 || inv.count("gone") != 1 {
		t.Fatalf("calls %v", inv.calls)
	}
	if s.Throttled != 2 || s.Retries != 2 || s.FunctionErrors != 3 {
		t.Fatalf("stats %+v", s)
	}
	waitUntil(t, "an empty queue", func() bool { n, _, _ := q.Depth(context.Background()); return n == 0 })
	// throttled (twice) and platform were deferred, in new groups of the
	// inbox (failing's retries are retries, stored in the event stream):
	// at least three groups ran (more if a group came back when one of its
	// events was due and another not yet).
	if gs := q.GroupStats(); gs.GroupsRun < 3 || gs.Deferred < 3 {
		t.Fatalf("group stats %+v", gs)
	}
}

// A shutdown while a group runs stores the group's unfinished events on
// their own (those interrupted and those not started) and acks the group:
// the next start runs each of them once, and none of those that finished.
func TestShutdownDuringGroupDefersTheRest(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{Concurrency: 2})
	defer stop()
	ids := []string{"g-0", "g-1", "g-2", "g-3", "g-4", "g-5", "g-6", "g-7"}
	var (
		mu      sync.Mutex
		calls   = map[string]int{}
		hanging atomic.Int32
	)
	inv := invokerFunc(func(ctx context.Context, _, _, _ string, _ []byte, id, _ string) (*invoke.Result, string, error) {
		mu.Lock()
		calls[id]++
		mu.Unlock()
		if id == "g-0" || id == "g-1" {
			return &invoke.Result{Payload: []byte(`null`)}, "$LATEST", nil
		}
		hanging.Add(1)
		<-ctx.Done()
		return nil, "", ctx.Err()
	})
	publishTestGroup(t, q, "group-1", ids...)
	stopRun := run(t, q, inv)
	waitUntil(t, "two events to succeed and two to hang", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return q.Stats().Succeeded == 2 && hanging.Load() == 2 && len(calls) == 4
	})
	stopRun()
	// The group is acked, and a new one holds the six.
	in, err := q.inbox.Info(context.Background())
	if err != nil || in.State.Msgs != 1 || in.State.FirstSeq != 2 {
		t.Fatalf("want only the new group in the inbox: %+v %v", in.State, err)
	}
	// Its subject names its size.
	last, err := q.inbox.GetLastMsgForSubject(context.Background(), inboxSubject+".6")
	if err != nil {
		t.Fatal(err)
	}
	var rest []event
	if err := json.Unmarshal(last.Data, &rest); err != nil {
		t.Fatal(err)
	}
	var restIDs []string
	for _, ev := range rest {
		restIDs = append(restIDs, ev.RequestID)
	}
	if fmt.Sprint(restIDs) != fmt.Sprint(ids[2:]) {
		t.Fatalf("the new group holds %v, want %v", restIDs, ids[2:])
	}
	if gs := q.GroupStats(); gs.Deferred != 6 || gs.GroupsRun != 1 {
		t.Fatalf("group stats %+v", gs)
	}
	again := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		return &invoke.Result{Payload: []byte(`null`)}, nil
	}}
	defer run(t, q, again)()
	waitUntil(t, "the six to run", func() bool {
		again.mu.Lock()
		defer again.mu.Unlock()
		return len(again.calls) == 6
	})
	waitUntil(t, "an empty queue", func() bool { n, _, _ := q.Depth(context.Background()); return n == 0 })
	for _, id := range ids {
		want := 1
		if id == "g-0" || id == "g-1" {
			want = 0
		}
		if n := again.count(id); n != want {
			t.Errorf("%s ran %d times after the restart, want %d", id, n, want)
		}
	}
}

// A group delivered twice (its ack lost in a crash) runs its events again:
// at least once, never lost.
func TestGroupDeliveredTwiceRunsAgain(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{})
	defer stop()
	ids := []string{"g-0", "g-1", "g-2", "g-3", "g-4"}
	for _, id := range []string{"first", "again"} {
		publishTestGroup(t, q, id, ids...)
	}
	// Groups on the bare subject (stored before their subject named their
	// size, as publishTestGroup does) count as one event each.
	if n, _, err := q.Depth(context.Background()); err != nil || n != 2 {
		t.Fatalf("depth %d (%v), want 2", n, err)
	}
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		return &invoke.Result{Payload: []byte(`null`)}, nil
	}}
	defer run(t, q, inv)()
	waitUntil(t, "both copies run", func() bool {
		n, _, err := q.Depth(context.Background())
		return err == nil && n == 0 && q.GroupStats().GroupsRun == 2
	})
	for _, id := range ids {
		if n := inv.count(id); n != 2 {
			t.Errorf("%s ran %d times", id, n)
		}
	}
}

// Throttled events of a group cost one write per backoff round, whatever
// their number: they are deferred together as a new group of the inbox,
// never to the event stream one by one; once the throttle lifts each runs
// once.
func TestThrottledGroupDefersInOneWrite(t *testing.T) {
	q, stop := openTest(t, t.TempDir(), Config{TimeScale: 0.01})
	defer stop()
	var open atomic.Bool
	inv := &fakeInvoker{calls: map[string]int{}, answer: func(string, int) (*invoke.Result, error) {
		if !open.Load() {
			return nil, throttle
		}
		return &invoke.Result{Payload: []byte(`null`)}, nil
	}}
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("t-%d", i))
	}
	publishTestGroup(t, q, "group-1", ids...)
	defer run(t, q, inv)()
	waitUntil(t, "three rounds of throttles", func() bool { return q.Stats().Throttled >= 3*40 })
	open.Store(true)
	waitUntil(t, "every event to run", func() bool { return q.Stats().Succeeded == 40 })
	waitUntil(t, "an empty queue", func() bool { n, _, _ := q.Depth(context.Background()); return n == 0 })
	in, err := q.inbox.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := q.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rounds := q.Stats().Throttled / 40
	t.Logf("%d throttles in %d rounds: %d groups written, %d events written alone", q.Stats().Throttled, rounds, in.State.LastSeq, ev.State.LastSeq)
	if ev.State.LastSeq != 0 {
		t.Errorf("%d events written to the event stream one by one", ev.State.LastSeq)
	}
	// About one group per round: a round's events are deferred to times a
	// few ms apart (they run in waves of the limiter's size), so a group
	// can come back when some are due and others not yet, and split. One
	// write per throttled event would be 40 a round; allow 1 per 4.
	if throttles := q.Stats().Throttled; in.State.LastSeq*4 > throttles {
		t.Errorf("%d groups written for %d throttles in %d rounds", in.State.LastSeq, throttles, rounds)
	}
	for _, id := range ids {
		if n := inv.count(id); n < 4 {
			t.Errorf("%s called %d times, want its throttles and one run", id, n)
		}
	}
}
