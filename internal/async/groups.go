package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/emberfn/ember/internal/lambdaapi"
)

// Running the groups of accepted events (accept.go) from the inbox.
//
// A runner takes a group, invokes its events (each through handle, as an
// event of the event stream is), and acks the group once every event is
// done: succeeded (nothing to store), or its outcome stored (a retry, a
// destination record, a dead-letter message), or deferred. The events
// deferred (a throttle's backoff, a failed store, a shutdown, not due
// yet) are stored together as a new group of the inbox (one write), each
// with the time it is due (NotBefore); a group none of whose events is
// due is put back until the first is (a delayed nak: no write). A group
// whose deferred events cannot be stored is run again later, whole.

// delivery is one delivery of an event: a message of the event stream
// (jetstream.Msg), or an event of a group being run (member).
type delivery interface {
	Data() []byte
	Subject() string
	Ack() error
	Nak() error
	NakWithDelay(time.Duration) error
	InProgress() error
	Term() error
	Metadata() (*jetstream.MsgMetadata, error)
}

// groupRunner makes the inbox's consumer.
func (q *Queue) groupRunner(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := q.inbox.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:     inboxConsumer,
		Description: "Ember: runs the groups of accepted events",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     q.ackWait(),
		MaxDeliver:  -1,
		// Groups put back until due are pending too.
		MaxAckPending: 100000,
	})
	if err != nil {
		return nil, fmt.Errorf("async: group consumer: %w", err)
	}
	return cons, nil
}

// runGroups takes groups from the inbox and runs their events, as many at
// once as the limiter allows, until ctx ends; it then waits for the groups
// it runs. The next group is taken only once every due event of the one
// before has a place: the groups running are those with an event in
// flight, and one waiting for places.
func (q *Queue) runGroups(ctx context.Context, inv Invoker, cons jetstream.Consumer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		var msg jetstream.Msg
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err == nil {
			for m := range batch.Messages() {
				msg = m
			}
			err = batch.Error()
		}
		if msg == nil {
			if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
				q.log.Warn("fetching accepted groups", "err", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
			continue
		}
		q.runGroup(ctx, inv, msg, &wg)
	}
}

// member is one event of a group being run: a delivery whose ack marks it
// done and whose delayed nak defers it.
type member struct {
	q    *Queue
	data []byte
	ev   event // data decoded
	// What handle made of it, read by the group once handle returned:
	// done (outcome recorded), or deferred to deferUntil.
	done       bool
	deferred   bool
	deferUntil time.Time
}

func (m *member) Data() []byte    { return m.data }
func (m *member) Subject() string { return inboxSubject }
func (m *member) Ack() error      { m.done = true; return nil }
func (m *member) Term() error     { m.done = true; return nil }

// Nak (shutting down) leaves the event as it came.
func (m *member) Nak() error { return nil }

// NakWithDelay defers the event by d.
func (m *member) NakWithDelay(d time.Duration) error {
	m.deferred, m.deferUntil = true, m.q.cfg.Now().Add(d).UTC()
	return nil
}

// InProgress: the group keeps itself ours.
func (m *member) InProgress() error { return nil }

// Metadata: the deliveries of a deferred event (a throttle's backoff grows
// with them).
func (m *member) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: uint64(1 + m.ev.Deferrals)}, nil
}

// runGroup starts the events of one inbox message that are due, each in a
// place it waits for, and leaves the rest of the group's run to a
// goroutine of wg's.
func (q *Queue) runGroup(ctx context.Context, inv Invoker, msg jetstream.Msg, wg *sync.WaitGroup) {
	var raws []json.RawMessage
	if err := json.Unmarshal(msg.Data(), &raws); err != nil {
		q.malformed.Add(1)
		q.log.Error("dropping a malformed group of events", "err", err)
		_ = msg.Term()
		return
	}
	now := q.cfg.Now()
	members := make([]*member, len(raws))
	var due []*member
	var wait time.Duration = -1 // until the first event not due yet is
	for i, raw := range raws {
		m := &member{q: q, data: raw}
		members[i] = m
		if err := json.Unmarshal(raw, &m.ev); err != nil || !validToken(m.ev.Account) || m.ev.Function == "" {
			q.malformed.Add(1)
			q.log.Error("dropping a malformed event of a group", "err", err)
			m.done = true
		} else if nb := m.ev.NotBefore; !nb.IsZero() && now.Before(nb) {
			if d := nb.Sub(now); wait < 0 || d < wait {
				wait = d
			}
		} else {
			due = append(due, m)
		}
	}
	if len(due) == 0 {
		if wait >= 0 {
			_ = msg.NakWithDelay(wait) // back when the first is due
		} else {
			_ = msg.Ack() // nothing in it but malformed events
		}
		return
	}
	// Kept ours from here on, also while its events wait for places.
	stop := keepInProgress(msg, q.ackWait()/3)
	var run sync.WaitGroup
	for i, m := range due {
		if !q.limit.acquire(ctx) {
			if i == 0 {
				// Shutting down before any started: as it came.
				stop()
				_ = msg.Nak()
				return
			}
			break // shutting down: the rest is stored as it came
		}
		run.Add(1)
		go func() {
			defer run.Done()
			defer q.limit.release()
			q.handle(ctx, inv, m)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop()
		run.Wait()
		q.endGroup(msg, members)
	}()
}

// endGroup stores the group's events that are not done as a new group,
// then acks it.
func (q *Queue) endGroup(msg jetstream.Msg, members []*member) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTries*10*time.Second)
	defer cancel()
	var rest []*accepting
	for _, m := range members {
		if m.done {
			continue
		}
		data := []byte(m.data)
		if m.deferred {
			ev := m.ev
			ev.NotBefore = m.deferUntil
			ev.Deferrals++
			b, err := json.Marshal(&ev)
			if err != nil {
				q.log.Error("encoding a deferred event", "request_id", ev.RequestID, "err", err)
				_ = msg.NakWithDelay(time.Second)
				return
			}
			data = b
		}
		rest = append(rest, &accepting{ev: &m.ev, data: data})
	}
	if len(rest) > 0 {
		// A new id for each: a group run twice may defer other events.
		if err := q.publishEvents(ctx, rest, lambdaapi.NewRequestID()+"/deferred"); err != nil {
			// Run again later, whole: its events that ran run again.
			q.log.Warn("storing the deferred events of a group; it will run again", "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		q.countDeferred(uint64(len(rest)))
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// Redelivered later and run again.
		q.log.Warn("acking a group that ran", "err", err)
		return
	}
	acc := &q.acceptor
	acc.mu.Lock()
	acc.groupsRun++
	acc.mu.Unlock()
}

func (q *Queue) countDeferred(n uint64) {
	acc := &q.acceptor
	acc.mu.Lock()
	acc.deferred += n
	acc.mu.Unlock()
}

// keepInProgress tells the server every interval that msg is still being
// worked on, until the returned stop is called.
func keepInProgress(msg jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
