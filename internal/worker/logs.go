package worker

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// tailSize is how much of an invocation's log X-Amz-Log-Type: Tail returns.
const tailSize = 4096

// logPipe collects a sandbox's stdout and stderr (one pipe, so their order
// is kept) into the log of the current phase (init or one invocation),
// and copies each line to the worker's log with the function and request.
type logPipe struct {
	r    *os.File
	log  *slog.Logger
	done chan struct{}

	mu       sync.Mutex
	consumed int64
	cur      []byte // the current phase's log, trimmed to its tail
	partial  []byte // an unfinished line
	request  string
}

func newLogPipe(r *os.File, log *slog.Logger) *logPipe {
	p := &logPipe{r: r, log: log, done: make(chan struct{})}
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
			p.appendLocked(buf[:n])
			p.consumed += int64(n)
			p.mu.Unlock()
		}
		if err != nil {
			p.mu.Lock()
			p.consumed = 1 << 62 // nothing more will come: release waiters
			p.mu.Unlock()
			return
		}
	}
}

func (p *logPipe) appendLocked(b []byte) {
	p.cur = append(p.cur, b...)
	if len(p.cur) > 4*tailSize {
		p.cur = append(p.cur[:0], p.cur[len(p.cur)-tailSize:]...)
	}
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.log.Info(string(p.partial[:i]), "request_id", p.request, "stream", "function")
		p.partial = p.partial[i+1:]
	}
	if len(p.partial) > 8<<10 { // an endless line: log it in pieces
		p.log.Info(string(p.partial), "request_id", p.request, "stream", "function")
		p.partial = p.partial[:0]
	}
}

// write adds a platform line (START, END, REPORT) to the log.
func (p *logPipe) write(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.appendLocked([]byte(line))
}

// begin starts a new phase (an invocation) and returns the log so far.
func (p *logPipe) begin(request string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.cur
	p.cur = nil
	p.request = request
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
	deadline := time.Now().Add(100 * time.Millisecond)
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
