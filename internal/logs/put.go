package logs

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Batch is events of one log stream, stored together.
type Batch struct {
	Account, Group, Stream string
	Events                 []Event
}

// Put stores batches, each as one or more messages within the limits of
// a message, all published before any acknowledgement is awaited. It
// returns the parts that were not stored (for a retry) and the first error;
// batches with invalid names are dropped with ErrBadName.
func (s *Store) Put(ctx context.Context, batches []Batch) (failed []Batch, err error) {
	now := millis(time.Now())
	type inflight struct {
		b   Batch
		fut jetstream.PubAckFuture
	}
	var waits []inflight
	var errs []error
	for _, b := range batches {
		subj, serr := subject(b.Account, b.Group, b.Stream)
		if serr != nil {
			errs = append(errs, serr)
			continue
		}
		evs := make([]storedEvent, len(b.Events))
		for i, e := range b.Events {
			evs[i] = storedEvent{T: millis(e.Time), M: clip(e.Message)}
		}
		off := 0
		for _, part := range split(evs) {
			pb := Batch{Account: b.Account, Group: b.Group, Stream: b.Stream, Events: b.Events[off : off+len(part)]}
			off += len(part)
			fut, perr := s.js.PublishAsync(subj, encodeBatch(batch{Ingestion: now, Events: part}))
			if perr != nil {
				errs = append(errs, perr)
				failed = append(failed, pb)
				continue
			}
			waits = append(waits, inflight{pb, fut})
		}
	}
	for _, w := range waits {
		select {
		case <-w.fut.Ok():
		case e := <-w.fut.Err():
			errs = append(errs, e)
			failed = append(failed, w.b)
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			failed = append(failed, w.b)
		}
	}
	switch len(errs) {
	case 0:
		return nil, nil
	case 1:
		return failed, fmt.Errorf("logs: put: %w", errs[0])
	}
	return failed, fmt.Errorf("logs: put: %w (and %d more errors)", errs[0], len(errs)-1)
}
