package logs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// clockSlack is how far an event's timestamp may lie before the time its
// batch was stored (the writer's flush delay and retries, clocks of other
// hosts): searches by time start that much earlier, and stop that much
// later, than asked. An event stored later than that after its timestamp
// is missed by searches that start after it.
const clockSlack = 2 * time.Minute

// position is an event's place: its message's sequence in the stream and
// its index in the message. Positions order the events of a log stream.
type position struct {
	seq uint64
	idx int
}

func (p position) less(q position) bool {
	return p.seq < q.seq || p.seq == q.seq && p.idx < q.idx
}

func (p position) String() string { return fmt.Sprintf("%d-%d", p.seq, p.idx) }

func parsePosition(s string) (position, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return position{}, false
	}
	seq, err1 := strconv.ParseUint(a, 10, 64)
	idx, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || idx < 0 || idx > maxBatchEvents {
		return position{}, false
	}
	return position{seq, idx}, true
}

// eventID is an event's id in FilterLogEvents: unique in the stream and
// stable, which `aws logs tail --follow` relies on.
func eventID(p position) string { return fmt.Sprintf("%020d%05d", p.seq, p.idx) }

// message is one stored batch as read.
type message struct {
	seq     uint64
	subject string
	stored  time.Time
	size    int
	b       batch
}

// next returns the first message on filter at or after seq, nil if none.
func (s *Store) next(ctx context.Context, filter string, seq uint64) (*message, error) {
	raw, err := s.stream.GetMsg(ctx, max(seq, 1), jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs: read: %w", err)
	}
	return decodeMessage(raw)
}

// decodeMessage reads a stored batch; one that cannot be read (written by
// something else than Ember) reads as empty, so it hides nothing else.
func decodeMessage(raw *jetstream.RawStreamMsg) (*message, error) {
	b, err := decodeBatch(raw.Data)
	if err != nil {
		b = batch{}
	}
	return &message{seq: raw.Sequence, subject: raw.Subject, stored: raw.Time, size: len(raw.Data), b: b}, nil
}

// last returns the last message of a subject, nil if none.
func (s *Store) last(ctx context.Context, subj string) (*message, error) {
	raw, err := s.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logs: read: %w", err)
	}
	return decodeMessage(raw)
}

// seqFromTime is the sequence of the first message stored at or after t
// (one past the last if none): a binary search, as the stream's messages
// are stored in time order.
func (s *Store) seqFromTime(ctx context.Context, t time.Time) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := s.next(ctx, subjectPrefix+">", mid)
		if err != nil {
			return 0, err
		}
		switch {
		case m == nil || m.seq >= hi:
			hi = mid
		case m.stored.Before(t):
			lo = m.seq + 1
		default:
			hi = mid
		}
	}
	return lo, nil
}

// step is what a scan's visitor says of an event.
type step int

const (
	take step = iota // consume it and go on
	stop             // do not consume it; more may follow (a page is full)
	done             // do not consume it; nothing more is wanted
)

// scan visits the events of the messages on filter from position from on,
// in order. It returns the position of the first event not consumed and
// whether the end was reached (no more messages, or the visitor said done).
// It stops after reading about budget bytes, at a message boundary.
func (s *Store) scan(ctx context.Context, filter string, from position, budget int,
	visit func(m *message, idx int) step) (position, bool, error) {
	pos := from
	read := 0
	for {
		m, err := s.next(ctx, filter, pos.seq)
		if err != nil {
			return pos, false, err
		}
		if m == nil {
			return pos, true, nil
		}
		if m.seq != pos.seq {
			pos = position{m.seq, 0}
		}
		for i := pos.idx; i < len(m.b.Events); i++ {
			switch visit(m, i) {
			case stop:
				return position{m.seq, i}, false, nil
			case done:
				return position{m.seq, i}, true, nil
			}
		}
		pos = position{m.seq + 1, 0}
		read += m.size
		if read >= budget {
			return pos, false, nil
		}
	}
}

// scanBudget bounds the bytes one API call reads, so that a search of a
// large group answers in bounded time (with a token to go on).
const scanBudget = 32 << 20

// readEvent is an event as the API returns it.
type readEvent struct {
	pos       position
	stream    string
	timestamp int64
	ingestion int64
	message   string
}

func eventOf(m *message, idx int) readEvent {
	e := m.b.Events[idx]
	return readEvent{pos: position{m.seq, idx}, timestamp: e.T, ingestion: m.b.Ingestion, message: e.M}
}

// window filters events by time (ms, inclusive; 0: unbounded).
type window struct{ start, end int64 }

func (w window) has(ts int64) bool {
	return (w.start == 0 || ts >= w.start) && (w.end == 0 || ts <= w.end)
}

// backward returns up to limit events (and at most maxBytes) of subj that
// come before end, in order. It reads windows of growing size backwards
// from end, as JetStream reads only forwards.
func (s *Store) backward(ctx context.Context, subj string, end position, limit, maxBytes int, w window) ([]readEvent, error) {
	var out []readEvent
	bytes := 0
	floor := int64(0)
	if w.start != 0 {
		floor = w.start - clockSlack.Milliseconds()
	}
	upper := end
	span := uint64(64)
	for upper.seq > 1 || upper.idx > 0 {
		lo := uint64(1)
		if upper.seq > span {
			lo = upper.seq - span
		}
		var chunk []readEvent
		reachedFloor := false
		msgs, lastSeq := 0, uint64(0)
		_, _, err := s.scan(ctx, subj, position{lo, 0}, 1<<62, func(m *message, idx int) step {
			p := position{m.seq, idx}
			if !p.less(upper) {
				return done
			}
			if m.seq != lastSeq {
				msgs, lastSeq = msgs+1, m.seq
			}
			if floor != 0 && m.stored.UnixMilli() < floor {
				reachedFloor = true
			}
			if e := eventOf(m, idx); w.has(e.timestamp) {
				chunk = append(chunk, e)
			}
			return take
		})
		if err != nil {
			return nil, err
		}
		// Keep the newest of the chunk that fit, in front of what we have.
		for i := len(chunk) - 1; i >= 0; i-- {
			sz := eventSize(chunk[i].message)
			if len(out) >= limit || bytes+sz > maxBytes {
				reverse(out)
				return out, nil
			}
			out = append(out, chunk[i])
			bytes += sz
		}
		if lo == 1 || reachedFloor {
			break
		}
		upper = position{lo, 0}
		if msgs < 16 { // sparse here: look further back at once
			span *= 4
		}
	}
	reverse(out)
	return out, nil
}

func reverse(es []readEvent) {
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
}

// groupInfo and streamInfo describe what the store holds.
type groupInfo struct {
	name     string
	creation int64
}

type streamInfo struct {
	name                  string
	creation, first, last int64
	lastIngestion         int64
	lastSeq               uint64
}

// subjects lists the subjects under filter with their message counts.
func (s *Store) subjects(ctx context.Context, filter string) (map[string]uint64, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	return info.State.Subjects, nil
}

// groups lists an account's log groups by name.
func (s *Store) groups(ctx context.Context, account string) ([]string, error) {
	subs, err := s.subjects(ctx, accountFilter(account))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for subj := range subs {
		if g, _, ok := parseSubject(subj); ok {
			seen[g] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out, nil
}

// groupCreation is the time of the group's oldest stored batch.
func (s *Store) groupCreation(ctx context.Context, account, group string) (int64, error) {
	m, err := s.next(ctx, groupFilter(account, group), 1)
	if err != nil || m == nil {
		return 0, err
	}
	return m.stored.UnixMilli(), nil
}

// streams lists a group's log streams by name; nil if the group has none.
func (s *Store) streams(ctx context.Context, account, group string) ([]string, error) {
	subs, err := s.subjects(ctx, groupFilter(account, group))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(subs))
	for subj := range subs {
		if _, st, ok := parseSubject(subj); ok {
			out = append(out, st)
		}
	}
	sort.Strings(out)
	return out, nil
}

// describeStream describes one log stream; ok is false if it holds nothing.
func (s *Store) describeStream(ctx context.Context, account, group, name string) (streamInfo, bool, error) {
	subj, err := subject(account, group, name)
	if err != nil {
		return streamInfo{}, false, nil
	}
	lm, err := s.last(ctx, subj)
	if err != nil || lm == nil {
		return streamInfo{}, false, err
	}
	fm, err := s.next(ctx, subj, 1)
	if err != nil || fm == nil {
		return streamInfo{}, false, err
	}
	si := streamInfo{name: name, creation: fm.stored.UnixMilli(), lastIngestion: lm.b.Ingestion, lastSeq: lm.seq}
	if n := len(fm.b.Events); n > 0 {
		si.first = fm.b.Events[0].T
		si.creation = min(si.creation, si.first)
	}
	if n := len(lm.b.Events); n > 0 {
		si.last = lm.b.Events[n-1].T
	}
	return si, true, nil
}

// groupSize is what storedBytes has counted of a group: the bytes of its
// stored batches from sequence first (the group's oldest then) up to next.
type groupSize struct {
	first, next uint64
	bytes       int64
}

// storedBytes is how many bytes an account's log group holds in the log
// stream (its batches as stored), for DescribeLogGroups' storedBytes. It
// counts incrementally: each call reads only batches not counted before,
// at most *budget bytes of them (spent from *budget), so a call on a large
// group answers in bounded time with a count that catches up over later
// calls. Once retention removed the group's oldest batch, it counts again
// from the new oldest.
func (s *Store) storedBytes(ctx context.Context, account, group string, budget *int) (int64, error) {
	filter := groupFilter(account, group)
	fm, err := s.next(ctx, filter, 1)
	if err != nil {
		return 0, err
	}
	s.sizesMu.Lock()
	gs := s.sizes[filter]
	if fm == nil {
		delete(s.sizes, filter)
	}
	s.sizesMu.Unlock()
	if fm == nil {
		return 0, nil
	}
	if gs.first != fm.seq {
		gs = groupSize{first: fm.seq, next: fm.seq}
	}
	for *budget > 0 {
		m := fm
		if m == nil || m.seq < gs.next {
			if m, err = s.next(ctx, filter, gs.next); err != nil {
				return 0, err
			}
		}
		fm = nil
		if m == nil {
			break
		}
		gs.bytes += int64(m.size)
		gs.next = m.seq + 1
		*budget -= m.size
	}
	s.sizesMu.Lock()
	if cur := s.sizes[filter]; cur.first != gs.first || cur.next <= gs.next {
		s.sizes[filter] = gs // not behind a concurrent count of the same
	}
	s.sizesMu.Unlock()
	return gs.bytes, nil
}
