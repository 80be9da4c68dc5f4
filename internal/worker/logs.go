package worker

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tailSize is how much of an invocation's log X-Amz-Log-Type: Tail returns.
const tailSize = 4096

// LogStream takes a sandbox's log lines for durable storage (a
// logs.Stream). Its methods never block; they are called with the pipe's
// lock held.
type LogStream interface {
	// Write takes a line of the function's output (with its newline);
	// the stream bounds how much one invocation keeps.
	Write(t time.Time, line string)
	// System takes a platform line: START, END, REPORT, INIT_REPORT and
	// the timeout message.
	System(t time.Time, line string)
	// Begin says an invocation starts.
	Begin()
	// Close says the sandbox is gone and its output fully read.
	Close()
}

// nopLog is the LogStream of a worker without durable logs.
type nopLog struct{}

func (nopLog) Write(time.Time, string)  {}
func (nopLog) System(time.Time, string) {}
func (nopLog) Begin()                   {}
func (nopLog) Close()                   {}

// copiedLines is how many lines of one phase's output (init or one
// invocation) are copied to Ember's own log, at debug level.
const copiedLines = 100

// logPipe collects a sandbox's stdout and stderr (one pipe, so their order
// is kept) into the log of the current phase (init or one invocation) and
// into the sandbox's durable log stream. Ember's own log gets a copy of
// the first copiedLines lines of each phase, with the function and
// request, at debug level only: the lines are durable in the log stream,
// and a function's output must not flood the operator's log.
//
// Lock order: mu, then the LogStream's own locks.
type logPipe struct {
	r    *os.File
	log  *slog.Logger
	sink LogStream
	done chan struct{}

	mu       sync.Mutex
	consumed int64
	cur      []byte // the current phase's log, trimmed to its tail
	partial  []byte // an unfinished line
	request  string
	copied   int // lines of this phase copied to Ember's log
}

func newLogPipe(r *os.File, log *slog.Logger, sink LogStream) *logPipe {
	if sink == nil {
		sink = nopLog{}
	}
	p := &logPipe{r: r, log: log, sink: sink, done: make(chan struct{})}
	return p
}

// run reads until the sandbox's side of the pipe is closed (it died).
func (p *logPipe) run() {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.appendLocked(buf[:n], false)
			p.consumed += int64(n)
			p.mu.Unlock()
		}
		if err != nil {
			p.mu.Lock()
			p.consumed = 1 << 62   // nothing more will come: release waiters
			p.flushPartialLocked() // a last line without a newline is kept
			p.mu.Unlock()
			return
		}
	}
}

// appendLocked adds output to the log; system marks a platform line.
func (p *logPipe) appendLocked(b []byte, system bool) {
	p.cur = append(p.cur, b...)
	if len(p.cur) > 4*tailSize {
		p.cur = append(p.cur[:0], p.cur[len(p.cur)-tailSize:]...)
	}
	now := time.Now()
	p.partial = append(p.partial, b...)
	start := 0
	for {
		i := bytes.IndexByte(p.partial[start:], '\n')
		if i < 0 {
			break
		}
		line := string(p.partial[start : start+i+1])
		start += i + 1
		if system {
			// Platform lines (START, END, REPORT) are in the durable log
			// stream; Ember's own log has them only at debug level, so
			// that a warm invoke does not cost three lines of it.
			if p.log.Enabled(context.Background(), slog.LevelDebug) {
				p.log.Debug(line[:len(line)-1], "request_id", p.request, "stream", "platform")
			}
			p.sink.System(now, line)
		} else {
			p.copyLocked(line[:len(line)-1])
			p.sink.Write(now, line)
		}
	}
	// What is left of an unfinished line moves to the front: the buffer
	// is reused.
	p.partial = p.partial[:copy(p.partial, p.partial[start:])]
	if len(p.partial) > 8<<10 { // an endless line: log it in pieces
		p.flushPartialLocked()
	}
}

// flushPartialLocked logs an unfinished line of the function's output.
func (p *logPipe) flushPartialLocked() {
	if len(p.partial) == 0 {
		return
	}
	p.copyLocked(string(p.partial))
	p.sink.Write(time.Now(), string(p.partial))
	p.partial = p.partial[:0]
}

// copyLocked copies a line of the function's output to Ember's log at
// debug level, up to copiedLines per phase, then says once that the rest
// is only in the log stream.
func (p *logPipe) copyLocked(line string) {
	if p.copied > copiedLines || !p.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	p.copied++
	if p.copied > copiedLines {
		p.log.Debug("the rest of this output is in the function's log stream only", "request_id", p.request, "stream", "function", "copied_lines", copiedLines)
		return
	}
	p.log.Debug(line, "request_id", p.request, "stream", "function")
}

// write adds a platform line (START, END, REPORT) to the log, after the
// function's unfinished line if there is one.
func (p *logPipe) write(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushPartialLocked()
	p.appendLocked([]byte(line), true)
}

// writeLines adds platform lines, each ending in a newline, as write does;
// lines is copied and may be reused by the caller.
func (p *logPipe) writeLines(lines []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushPartialLocked()
	p.appendLocked(lines, true)
}

// begin starts a new phase (an invocation) and returns the log so far.
func (p *logPipe) begin(request string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.cur
	p.cur = nil
	p.request = request
	p.copied = 0
	p.sink.Begin()
	return prev
}

// tail is the last 4 KB of the current phase's log.
func (p *logPipe) tail() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.cur
	if len(t) > tailSize {
		t = t[len(t)-tailSize:]
	}
	return bytes.Clone(t)
}

// flush waits (briefly) until everything the sandbox has written so far
// has been read: output written before the runtime answered is in the
// pipe, and belongs to this invocation's log.
func (p *logPipe) flush() {
	pending := 0
	if rc, err := p.r.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			pending, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
		})
	}
	if pending <= 0 {
		return
	}
	deadline := time.Now().Add(time.Second)
	p.mu.Lock()
	target := p.consumed + int64(pending)
	for p.consumed < target && time.Now().Before(deadline) {
		p.mu.Unlock()
		// The reader is running; yield to it rather than wait on the
		// condition, which cannot time out.
		time.Sleep(50 * time.Microsecond)
		p.mu.Lock()
	}
	p.mu.Unlock()
}
