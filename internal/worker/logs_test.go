package worker

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The END and REPORT lines are Lambda's, to the character.
func TestEndReportLines(t *testing.T) {
	for _, c := range []struct {
		dur, init time.Duration
		mem       int
		used      int64
		status    string
	}{
		{dur: 613 * time.Microsecond, mem: 128, used: 8},
		{dur: 2*time.Second + 4567*time.Microsecond, init: 41234 * time.Microsecond, mem: 1024, used: 300},
		{dur: 3 * time.Second, mem: 128, used: 128, status: "\tStatus: timeout"},
		{dur: 999999 * time.Microsecond, init: time.Microsecond, mem: 10240, used: 1, status: "\tStatus: error\tError Type: Runtime.ExitError"},
	} {
		const rid = "8f5d1d6c-1a2b-4c3d-9e8f-0123456789ab"
		ms := float64(c.dur.Microseconds()) / 1000
		status := c.status
		if c.init > 0 {
			status = fmt.Sprintf("\tInit Duration: %.2f ms", float64(c.init.Microseconds())/1000) + status
		}
		want := fmt.Sprintf("END RequestId: %s\n", rid) +
			fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB%s\n",
				rid, ms, int64(ms)+1, c.mem, c.used, status)
		if got := string(appendEndReport([]byte("junk"), rid, c.dur, c.init, c.mem, c.used, c.status)); got != "junk"+want {
			t.Errorf("got  %q\nwant %q", got, "junk"+want)
		}
	}
}

// recordingLog is a LogStream that keeps what it is given.
type recordingLog struct {
	mu              sync.Mutex
	system, written []string
}

func (r *recordingLog) Write(_ time.Time, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, line)
}

func (r *recordingLog) System(_ time.Time, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.system = append(r.system, line)
}
func (*recordingLog) Begin() {}
func (*recordingLog) Close() {}

// Platform lines and the function's output reach the durable stream line
// by line, in order, with an unfinished line of the function's output
// completed before a platform line; Ember's own log gets the function's
// output at info level and the platform lines only at debug level.
func TestLogPipeLines(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	lg := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logBuf.Write(b)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	sink := &recordingLog{}
	p := newLogPipe(pr, lg, sink)
	go p.run()
	p.begin("r1")
	p.writeLines([]byte("START RequestId: r1 Version: $LATEST\n"))
	if _, err := pw.WriteString("one\ntwo, unfinished"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	p.writeLines([]byte("END RequestId: r1\nREPORT RequestId: r1\tDuration: 1.00 ms\n"))
	if _, err := pw.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	<-p.done
	wantSystem := []string{"START RequestId: r1 Version: $LATEST\n", "END RequestId: r1\n", "REPORT RequestId: r1\tDuration: 1.00 ms\n"}
	wantWritten := []string{"one\n", "two, unfinished", "three\n"}
	if fmt.Sprint(sink.system) != fmt.Sprint(wantSystem) || fmt.Sprint(sink.written) != fmt.Sprint(wantWritten) {
		t.Fatalf("system %q\nwritten %q", sink.system, sink.written)
	}
	tail := string(p.tail())
	if !strings.HasPrefix(tail, "START RequestId: r1") || !strings.Contains(tail, "one\ntwo, unfinishedEND RequestId: r1\n") ||
		!strings.HasSuffix(tail, "three\n") {
		t.Fatalf("tail %q", tail)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if got := logBuf.String(); !strings.Contains(got, "msg=one ") || !strings.Contains(got, `msg="two, unfinished"`) ||
		strings.Contains(got, "RequestId") {
		t.Fatalf("Ember's log:\n%s", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// BenchmarkPlatformLines is what the log costs a warm invoke of a function
// that prints nothing: START, then END and REPORT into the durable stream,
// and the tail kept for X-Amz-Log-Type: Tail.
func BenchmarkPlatformLines(b *testing.B) {
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	p := newLogPipe(pr, slog.New(slog.DiscardHandler), nopLog{})
	go p.run()
	defer func() { pw.Close(); <-p.done; pr.Close() }()
	const rid = "8f5d1d6c-1a2b-4c3d-9e8f-0123456789ab"
	var lines []byte
	b.ReportAllocs()
	for b.Loop() {
		p.begin(rid)
		lines = append(append(append(lines[:0], "START RequestId: "...), rid...), " Version: $LATEST\n"...)
		p.writeLines(lines)
		p.flush()
		lines = appendEndReport(lines[:0], rid, 613*time.Microsecond, 0, 128, 8, "")
		p.writeLines(lines)
		_ = p.tail()
	}
}
