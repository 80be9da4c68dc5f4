package worker

import (
	"bytes"
	"encoding/json"
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
// completed before a platform line; Ember's own log at info level gets
// none of them (both are copied at debug level only: TestLogPipeCopyBound).
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
	if got := logBuf.String(); got != "" {
		t.Fatalf("Ember's log at info level:\n%s", got)
	}
}

// pipeLog runs a logPipe whose Ember log is a JSON handler at level,
// feeds it phases of n lines of output each, and returns Ember's log.
func pipeLog(t *testing.T, level slog.Level, phases ...int) []map[string]any {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var mu sync.Mutex
	lg := slog.New(slog.NewJSONHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	}), &slog.HandlerOptions{Level: level}))
	sink := &recordingLog{}
	p := newLogPipe(pr, lg, sink)
	go p.run()
	total := 0
	for i, n := range phases {
		p.begin(fmt.Sprintf("r%d", i))
		for j := range n {
			if _, err := fmt.Fprintf(pw, "line %d of r%d\n", j, i); err != nil {
				t.Fatal(err)
			}
		}
		total += n
		// The phase ends when the stream has all its lines.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			sink.mu.Lock()
			got := len(sink.written)
			sink.mu.Unlock()
			if got == total {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log stream has %d lines of %d", got, total)
			}
		}
	}
	pw.Close()
	<-p.done
	if len(sink.written) != total {
		t.Fatalf("the log stream got %d lines of %d", len(sink.written), total)
	}
	mu.Lock()
	defer mu.Unlock()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// A flood of output reaches Ember's log at debug level only, and at most
// copiedLines lines of it per invocation, then one line saying the rest is
// in the log stream; each invocation has its own bound.
func TestLogPipeCopyBound(t *testing.T) {
	if recs := pipeLog(t, slog.LevelInfo, 20000); len(recs) != 0 {
		t.Fatalf("a flood put %d lines into Ember's log at info level; first %v", len(recs), recs[0])
	}
	recs := pipeLog(t, slog.LevelDebug, 5000, 3, 5000)
	perRequest := map[string]int{}
	notices := map[string]int{}
	for _, r := range recs {
		if r["level"] != "DEBUG" || r["stream"] != "function" {
			t.Fatalf("line %v", r)
		}
		rid, _ := r["request_id"].(string)
		if strings.HasPrefix(r["msg"].(string), "the rest of this output is in the function's log stream only") {
			notices[rid]++
			continue
		}
		if want := fmt.Sprintf("line %d of %s", perRequest[rid], rid); r["msg"] != want {
			t.Fatalf("line %v; want %q", r, want)
		}
		perRequest[rid]++
	}
	if perRequest["r0"] != copiedLines || perRequest["r1"] != 3 || perRequest["r2"] != copiedLines ||
		notices["r0"] != 1 || notices["r1"] != 0 || notices["r2"] != 1 || len(recs) != 2*copiedLines+3+2 {
		t.Fatalf("lines copied per request %v, notices %v, %d lines in all", perRequest, notices, len(recs))
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
