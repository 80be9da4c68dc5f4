package logs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Putter stores batches of events (the Store).
type Putter interface {
	Put(ctx context.Context, batches []Batch) (failed []Batch, err error)
}

// WriterConfig configures a Writer. Store is required.
type WriterConfig struct {
	Store Putter
	// FlushInterval is how often buffered events are stored (default
	// 200 ms); a buffer half full is stored at once.
	FlushInterval time.Duration
	// MaxBuffer bounds the bytes of events held in memory, buffered or
	// being stored (default 8 MiB). Beyond it events are lost, counted,
	// and a line in the log stream says how many.
	MaxBuffer int
	// MaxInvocationBytes bounds the output of one invocation that a
	// Stream keeps (default 1 MiB); the rest is dropped and a line says
	// how much. Platform lines (System) are not counted.
	MaxInvocationBytes int
	// PutTimeout bounds one store of a flush (default 10 s).
	PutTimeout time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// WriterStats counts events since the Writer was made.
type WriterStats struct {
	// Stored events, in the store.
	Stored uint64
	// Lost events: the buffer was full, the store failed, or the Writer
	// was closed.
	Lost uint64
	// Cut events: output of an invocation beyond MaxInvocationBytes.
	Cut uint64
}

// Writer buffers log events and stores them in batches from one goroutine
// of its own, so that writing a line never waits for storage. Memory is
// bounded; what cannot be kept is counted and reported in the log itself.
//
// Lock order: Stream.mu before Writer.mu; neither is held while storing.
type Writer struct {
	cfg WriterConfig
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	pending  map[string]*pendingStream // by account, group and stream
	held     int                       // bytes buffered or being stored
	lastWarn time.Time

	wake     chan struct{}
	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}

	stored, lost, cut atomic.Uint64
}

type pendingStream struct {
	account, group, stream string
	events                 []Event
	size                   int
	// lostEvents and lostBytes are what was lost since the last report.
	lostEvents, lostBytes int
}

// NewWriter makes a Writer and starts its flush goroutine; Close stops it.
func NewWriter(cfg WriterConfig) *Writer {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.MaxBuffer <= 0 {
		cfg.MaxBuffer = 8 << 20
	}
	if cfg.MaxInvocationBytes <= 0 {
		cfg.MaxInvocationBytes = 1 << 20
	}
	if cfg.PutTimeout <= 0 {
		cfg.PutTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Writer{
		cfg: cfg, log: cfg.Logger.With("component", "logs"),
		pending: map[string]*pendingStream{},
		wake:    make(chan struct{}, 1), flushReq: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Append queues events of one log stream; it never blocks. Events of an
// invalid account, group or stream name are lost.
func (w *Writer) Append(account, group, stream string, events ...Event) {
	if _, err := subject(account, group, stream); err != nil {
		w.lost.Add(uint64(len(events)))
		return
	}
	key := streamKey(account, group, stream)
	for _, e := range events {
		w.enqueue(key, account, group, stream, e)
	}
}

func streamKey(account, group, stream string) string {
	return account + "\x00" + group + "\x00" + stream
}

// enqueue adds one event, or counts it lost when the buffer is full.
func (w *Writer) enqueue(key, account, group, stream string, e Event) {
	e.Message = clip(e.Message)
	size := eventSize(e.Message)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.lost.Add(1)
		return
	}
	ps := w.pending[key]
	if ps == nil {
		ps = &pendingStream{account: account, group: group, stream: stream}
		w.pending[key] = ps
	}
	if w.held+size > w.cfg.MaxBuffer {
		ps.lostEvents++
		ps.lostBytes += len(e.Message)
		w.lost.Add(1)
		return
	}
	if ps.lostEvents > 0 {
		w.reportLostLocked(ps, e.Time)
	}
	ps.events = append(ps.events, e)
	ps.size += size
	w.held += size
	if w.held >= w.cfg.MaxBuffer/2 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// reportLostLocked adds the line that says what was lost. It is not
// counted against MaxBuffer: there is at most one per stream and flush.
func (w *Writer) reportLostLocked(ps *pendingStream, t time.Time) {
	msg := fmt.Sprintf("EMBER: %d log events (%d bytes) were lost here: the log buffer of this Ember node was full\n",
		ps.lostEvents, ps.lostBytes)
	ps.events = append(ps.events, Event{Time: t, Message: msg})
	size := eventSize(msg)
	ps.size += size
	w.held += size
	ps.lostEvents, ps.lostBytes = 0, 0
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.FlushInterval)
	defer tick.Stop()
	for {
		var ack chan struct{}
		select {
		case <-w.stop:
			w.flush()
			return
		case <-tick.C:
		case <-w.wake:
		case ack = <-w.flushReq:
		}
		w.flush()
		if ack != nil {
			close(ack)
		}
	}
}

// flush stores everything buffered. Parts the store did not take go back
// to the front of their streams for the next flush, if there is room.
func (w *Writer) flush() {
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return
	}
	taken := w.pending
	w.pending = map[string]*pendingStream{}
	now := w.cfg.Now()
	batches := make([]Batch, 0, len(taken))
	held := 0
	for _, ps := range taken {
		if ps.lostEvents > 0 {
			w.reportLostLocked(ps, now)
		}
		held += ps.size
		if len(ps.events) > 0 {
			batches = append(batches, Batch{Account: ps.account, Group: ps.group, Stream: ps.stream, Events: ps.events})
		}
	}
	w.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.PutTimeout)
	failed, err := w.cfg.Store.Put(ctx, batches)
	cancel()

	total, nfailed := 0, 0
	for _, b := range batches {
		total += len(b.Events)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held -= held
	for i := len(failed) - 1; i >= 0; i-- { // back to front keeps the order
		f := failed[i]
		nfailed += len(f.Events)
		key := streamKey(f.Account, f.Group, f.Stream)
		ps := w.pending[key]
		if ps == nil {
			ps = &pendingStream{account: f.Account, group: f.Group, stream: f.Stream}
			w.pending[key] = ps
		}
		size := 0
		for _, e := range f.Events {
			size += eventSize(e.Message)
		}
		if w.closed || w.held+size > w.cfg.MaxBuffer {
			for _, e := range f.Events {
				ps.lostEvents++
				ps.lostBytes += len(e.Message)
			}
			w.lost.Add(uint64(len(f.Events)))
			continue
		}
		ps.events = append(append([]Event(nil), f.Events...), ps.events...)
		ps.size += size
		w.held += size
	}
	w.stored.Add(uint64(total - nfailed))
	if err != nil && (now.Sub(w.lastWarn) > 10*time.Second || w.closed) {
		w.lastWarn = now
		w.log.Warn("storing function logs failed; will retry while the buffer has room", "events", nfailed, "err", err)
	}
}

// Flush stores what is buffered now and waits until that is done.
func (w *Writer) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case w.flushReq <- ack:
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stores what is buffered and stops the flush goroutine; events
// written afterwards are lost (and counted).
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ps := range w.pending {
		n += len(ps.events)
	}
	if n > 0 {
		w.lost.Add(uint64(n))
		w.log.Warn("function log events not stored at shutdown", "events", n)
	}
	w.pending = map[string]*pendingStream{}
	return nil
}

// Stats counts what the Writer stored, lost and cut.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Stored: w.stored.Load(), Lost: w.lost.Load(), Cut: w.cut.Load()}
}

// Open returns the writer of one log stream: one sandbox's log. A stream
// of an invalid name loses what is written to it.
func (w *Writer) Open(account, group, stream string) *Stream {
	_, err := subject(account, group, stream)
	if err != nil {
		w.log.Warn("function log stream not kept", "err", err)
	}
	return &Stream{w: w, key: streamKey(account, group, stream), account: account, group: group, name: stream, closed: err != nil}
}

// Stream is one log stream's writer. It bounds the output of each
// invocation: beyond WriterConfig.MaxInvocationBytes the rest of an
// invocation's output is dropped, and the next platform line (or the next
// invocation, or Close) is preceded by a line saying how much.
type Stream struct {
	w                    *Writer
	key                  string
	account, group, name string
	mu                   sync.Mutex
	used                 int
	cutLines, cutBytes   int
	closed               bool
}

// Write queues one line of the function's output; it never blocks.
func (s *Stream) Write(t time.Time, line string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.w.lost.Add(1)
		return
	}
	if s.cutLines > 0 || s.used+len(line) > s.w.cfg.MaxInvocationBytes {
		s.cutLines++
		s.cutBytes += len(line)
		s.mu.Unlock()
		s.w.cut.Add(1)
		return
	}
	s.used += len(line)
	s.mu.Unlock()
	s.w.enqueue(s.key, s.account, s.group, s.name, Event{Time: t, Message: line})
}

// System queues a platform line (START, END, REPORT, ...), which is never
// cut; it never blocks.
func (s *Stream) System(t time.Time, line string) {
	s.reportCut(t)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.w.lost.Add(1)
		return
	}
	s.w.enqueue(s.key, s.account, s.group, s.name, Event{Time: t, Message: line})
}

// Begin starts a new invocation: its output gets a new budget.
func (s *Stream) Begin() {
	s.reportCut(s.w.cfg.Now())
	s.mu.Lock()
	s.used = 0
	s.mu.Unlock()
}

// Close ends the stream (its sandbox is gone). What is buffered is still
// stored.
func (s *Stream) Close() {
	s.reportCut(s.w.cfg.Now())
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// reportCut writes the line saying how much output was dropped, if any.
func (s *Stream) reportCut(t time.Time) {
	s.mu.Lock()
	lines, bytes := s.cutLines, s.cutBytes
	s.cutLines, s.cutBytes = 0, 0
	s.mu.Unlock()
	if lines == 0 {
		return
	}
	s.w.enqueue(s.key, s.account, s.group, s.name, Event{Time: t, Message: fmt.Sprintf(
		"EMBER: %d lines (%d bytes) of this invocation's output were dropped: it wrote more than %d bytes\n",
		lines, bytes, s.w.cfg.MaxInvocationBytes)})
}
