package async

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Group commit of accepted events, and how the groups are run.
//
// Every write of the embedded server is synced to disk, one after the
// other: a disk that syncs 400 times a second accepts at most 400 events a
// second if each event is its own write. Event invokes that arrive while
// one is being stored are therefore stored together, as one message of the
// inbox stream (one synced write), and each of their callers gets its 202
// once that message is acknowledged. A lone event (no other waiting) is
// stored in the event stream directly.
//
// A group is run from the inbox as it is (groups.go): its events are
// invoked like the event stream's, and the group is acked once each of
// them has its outcome recorded (a retry after a function error, a
// destination record: stored as before) or is deferred (a throttle's
// backoff, a failed store of its outcome, a shutdown): the deferred
// events of a group are stored together as a new group. A successful
// event therefore costs no write of its own; the price is that a crash runs again the events of the
// groups that were running (at-least-once, as Lambda's queue is).
//
// No goroutine waits for work: the first caller that finds no commit
// running commits (its own event and whatever else is waiting); while
// events keep coming it hands the next commit to a goroutine of its own,
// which ends when nothing is left.

// Names that are part of the on-disk format: do not rename.
const (
	inboxStream   = "EMBER_ASYNC_INBOX"
	inboxSubject  = "async.inbox"
	inboxConsumer = "ember-async-splitter" // runs the groups (its name is older)
)

// Bounds of one group commit.
const (
	maxGroupEvents = 512
	maxGroupBytes  = 4 << 20 // the server's message limit is maxMsgSize
)

// accepting is one caller's event waiting to be stored.
type accepting struct {
	ev   *event
	data []byte // ev as JSON
	done chan error
}

// acceptor holds the events waiting for a group commit.
type acceptor struct {
	mu        sync.Mutex
	waiting   []*accepting
	running   bool // a commit loop is running
	groups    uint64
	grouped   uint64
	groupsRun uint64
	deferred  uint64
}

// store stores ev (as data) with the others waiting, and returns once it
// is stored or failed.
func (q *Queue) store(ctx context.Context, ev *event, data []byte) error {
	a := &accepting{ev: ev, data: data, done: make(chan error, 1)}
	acc := &q.acceptor
	acc.mu.Lock()
	acc.waiting = append(acc.waiting, a)
	lead := !acc.running
	acc.running = true
	acc.mu.Unlock()
	if lead {
		q.commitLoop(a)
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		// The caller is gone; the commit goes on and may store the event
		// (as a publish whose ack was lost would).
		return ctx.Err()
	}
}

// commitLoop commits what is waiting until own is done; if more is
// waiting then, a goroutine of its own carries on.
func (q *Queue) commitLoop(own *accepting) {
	for {
		group := q.takeGroup()
		if group == nil {
			return
		}
		q.commit(group)
		if own != nil && len(own.done) == 1 {
			// Our caller's event is stored: hand over if more came.
			acc := &q.acceptor
			acc.mu.Lock()
			more := len(acc.waiting) > 0
			if !more {
				acc.running = false
			}
			acc.mu.Unlock()
			if more {
				go q.commitLoop(nil)
			}
			return
		}
	}
}

// takeGroup takes the waiting events, up to the bounds of one commit; nil
// (and the loop ends) when none wait.
func (q *Queue) takeGroup() []*accepting {
	acc := &q.acceptor
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if len(acc.waiting) == 0 {
		acc.running = false
		return nil
	}
	n, size := 0, 0
	for n < len(acc.waiting) && n < maxGroupEvents && (n == 0 || size+len(acc.waiting[n].data) <= maxGroupBytes) {
		size += len(acc.waiting[n].data)
		n++
	}
	group := acc.waiting[:n:n]
	acc.waiting = acc.waiting[n:]
	if len(acc.waiting) == 0 {
		acc.waiting = nil
	}
	return group
}

// commit stores one group and tells its callers.
func (q *Queue) commit(group []*accepting) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTries*10*time.Second)
	defer cancel()
	var err error
	if len(group) == 1 {
		err = q.publishData(ctx, group[0].ev, group[0].data, group[0].ev.RequestID)
	} else {
		err = q.publishGroup(ctx, group)
	}
	for _, a := range group {
		a.done <- err
	}
}

// publishGroup stores the group as one inbox message: a JSON array of the
// events.
func (q *Queue) publishGroup(ctx context.Context, group []*accepting) error {
	if err := q.publishEvents(ctx, group, group[0].ev.RequestID+"/group"); err != nil {
		return err
	}
	acc := &q.acceptor
	acc.mu.Lock()
	acc.groups++
	acc.grouped += uint64(len(group))
	acc.mu.Unlock()
	return nil
}

// publishEvents stores events as one inbox message, with message id msgID.
func (q *Queue) publishEvents(ctx context.Context, group []*accepting, msgID string) error {
	size := 2
	for _, a := range group {
		size += len(a.data) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i, a := range group {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, a.data...)
	}
	b = append(b, ']')
	// The subject names the group's size, so that Depth counts events
	// from the stream's per-subject counts without reading the groups.
	msg := nats.NewMsg(inboxSubject + "." + strconv.Itoa(len(group)))
	msg.Data = b
	if err := q.publishRetry(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("async: storing %d events: %w", len(group), err)
	}
	return nil
}

// GroupStats says how the accepted events were stored and run: Groups
// inbox messages holding Grouped events (the rest were stored alone);
// GroupsRun groups run from the inbox (and acked), Deferred events of them
// stored again in a new group (groups.go).
type GroupStats struct{ Groups, Grouped, GroupsRun, Deferred uint64 }

// GroupStats returns the group counters.
func (q *Queue) GroupStats() GroupStats {
	acc := &q.acceptor
	acc.mu.Lock()
	defer acc.mu.Unlock()
	return GroupStats{Groups: acc.groups, Grouped: acc.grouped, GroupsRun: acc.groupsRun, Deferred: acc.deferred}
}

// openInbox creates or updates the inbox stream.
func openInbox(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        inboxStream,
		Description: "Ember asynchronous invocations accepted together, run from here (the rest of " + StreamName + ")",
		// async.inbox.N: a group of N events. The bare subject is that of
		// groups stored before their size was in it.
		Subjects:   []string{inboxSubject, inboxSubject + ".*"},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   replicas,
		MaxMsgSize: maxMsgSize,
		Duplicates: duplicateWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("async: stream %s: %w", inboxStream, err)
	}
	return st, nil
}
